import HTTPTypes
import Hummingbird

/// `GET /users/{id}`: the user with a strong `ETag`; 304 when the client's
/// `If-None-Match` copy is current.
struct GetUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try UserRoutes.id(context)
        guard let user = try await deps.store.get(id: id) else { throw StoreError.notFound }
        if EntityTags.noneMatchSatisfiedByCurrent(request.headers[.ifNoneMatch], current: user) {
            var headers = HTTPFields()
            Responses.userHeaders(user, into: &headers)
            return Response(status: .notModified, headers: headers)
        }
        return Responses.user(user)
    }
}

enum UserRoutes {
    /// The `{id}` path parameter in canonical form; anything that is not a
    /// UUID cannot name a user, so it is a 404 like any unknown id.
    static func id(_ context: AppRequestContext) throws -> String {
        guard let raw = context.parameters.get("id"), let id = UserID.canonical(raw) else {
            throw StoreError.notFound
        }
        return id
    }

    /// The preconditions of a write (RFC 9110 §13.1): `If-Match` must name
    /// the current version (an empty one names none), and `If-None-Match`
    /// must not (`*` matches any existing user, so a PUT "only if absent" is refused).
    struct Preconditions: Sendable {
        var ifMatch: String?
        var ifNoneMatch: String?

        init(_ request: Request) {
            ifMatch = request.headers[.ifMatch]
            ifNoneMatch = request.headers[.ifNoneMatch]
        }

        /// Throws 412 when they do not hold for `current`.
        func check(_ current: User) throws {
            guard EntityTags.ifMatch(ifMatch, current: current) else {
                throw Problem.preconditionFailed(
                    "If-Match \(ifMatch ?? "") does not match the current version \(current.etag); fetch the user again and retry."
                )
            }
            if EntityTags.noneMatchSatisfiedByCurrent(ifNoneMatch, current: current) {
                throw Problem.preconditionFailed(
                    "If-None-Match \(ifNoneMatch ?? "") matches the current version \(current.etag); the user exists and was not changed."
                )
            }
        }
    }
}
