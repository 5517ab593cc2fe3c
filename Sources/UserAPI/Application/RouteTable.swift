import HTTPTypes

/// The routes the service answers, by template. Registration in
/// `buildRouter` and the 405/`Allow` logic both come from this table, so
/// they cannot disagree; the OpenAPI test checks the document against it too.
public enum RouteTable {
    public struct Route: Sendable {
        public let template: String
        /// The documented methods; HEAD is implied by GET (the router answers it).
        public let methods: [HTTPRequest.Method]

        /// What a 405's `Allow` header lists: the methods, with HEAD after GET.
        var allowed: [HTTPRequest.Method] {
            methods.flatMap { $0 == .get ? [.get, .head] : [$0] }
        }
    }

    public static let routes: [Route] = [
        Route(template: "/", methods: [.get]),
        Route(template: "/version", methods: [.get]),
        Route(template: "/healthz", methods: [.get]),
        Route(template: "/readyz", methods: [.get]),
        Route(template: "/metrics", methods: [.get]),
        Route(template: "/openapi.yaml", methods: [.get]),
        Route(template: "/users", methods: [.get, .post]),
        Route(template: "/users/{id}", methods: [.get, .put, .patch, .delete]),
    ]

    /// The route whose template matches `path` (ignoring a trailing slash), if any.
    static func match(path: String) -> Route? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.first { route in
            let parts = route.template.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count == segments.count else { return false }
            return zip(parts, segments).allSatisfy { part, segment in part.hasPrefix("{") || part == segment }
        }
    }
}
