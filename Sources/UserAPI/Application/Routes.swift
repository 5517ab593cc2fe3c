import HTTPTypes

/// Every route the service serves, one case each. `buildRouter` registers
/// them all (its handler switch must name every case), the 405 answer and
/// its `Allow` header, the metrics' route label, and the OpenAPI document
/// test all come from this list.
public enum Route: CaseIterable, Sendable {
    case status, version, openAPI, console, consoleAsset
    case healthz, readyz, metrics
    case listUsers, createUser, getUser, replaceUser, patchUser, deleteUser
    case userEvents, watchUsers

    public var method: HTTPRequest.Method {
        switch self {
        case .createUser: .post
        case .replaceUser: .put
        case .patchUser: .patch
        case .deleteUser: .delete
        default: .get
        }
    }

    /// The path template, as the router and the OpenAPI document write it.
    public var path: String {
        switch self {
        case .status: "/"
        case .version: "/version"
        case .openAPI: "/openapi.yaml"
        case .healthz: "/healthz"
        case .readyz: "/readyz"
        case .metrics: "/metrics"
        case .console: "/console"
        case .consoleAsset: "/console/{file}"
        case .userEvents: "/users/events"
        case .watchUsers: "/users/watch"
        case .listUsers, .createUser: "/users"
        case .getUser, .replaceUser, .patchUser, .deleteUser: "/users/{id}"
        }
    }

    /// Probes and metrics: served on the management port when there is one,
    /// never shed under load, and they know nothing about users.
    public var isManagement: Bool { self == .healthz || self == .readyz || self == .metrics }

    /// Who may call a route.
    public enum Access: Sendable {
        /// Anyone: probes, metrics, and `/` (which shows details only to a token holder when reads are protected).
        case open
        /// A read token when `auth.protect_reads` is on, anyone otherwise.
        case read
        /// A read-write token.
        case write
    }

    public var access: Access {
        switch self {
        // The console is static files; the WebSocket checks its token itself (browsers send it in a message).
        case .status, .healthz, .readyz, .metrics, .console, .consoleAsset, .watchUsers: .open
        case .version, .openAPI, .listUsers, .getUser, .userEvents: .read
        case .createUser, .replaceUser, .patchUser, .deleteUser: .write
        }
    }

    /// The distinct templates, in declaration order: the metrics' route labels.
    static let templates: [String] = allCases.map(\.path).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }

    /// The methods `path` answers among `routes` (HEAD with every GET), or nil when none matches it.
    static func methods(matching path: String, among routes: [Route]) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        let matching = routes.filter { route in
            let parts = route.path.split(separator: "/")
            return parts.count == segments.count
                && zip(parts, segments).allSatisfy { part, segment in part.hasPrefix("{") || part == segment }
        }
        guard !matching.isEmpty else { return nil }
        return matching.flatMap { $0.method == .get ? [.get, .head] : [$0.method] }
    }
}
