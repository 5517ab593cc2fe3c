import HTTPTypes
import Hummingbird

/// `PATCH /users/{id}`: JSON merge patch (RFC 7386), sent as
/// `application/merge-patch+json` or `application/json`. Honours `If-Match` and `If-None-Match`.
/// The patch is applied to the row read inside the write transaction, so
/// concurrent patches to different fields never undo each other.
struct PatchUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try UserRoutes.id(context)
        let patch = try await JSONBody.read(
            request, context: context, maxSize: deps.config.http.maxBodySize,
            accepting: [JSONBody.mergePatch, JSONBody.json])
        let preconditions = UserRoutes.Preconditions(request)
        let user = try await deps.store.update(id: id) { current in
            // Invalid input is reported as such (422) whatever the precondition says.
            let fields = try UserValidation.applyMergePatch(patch, to: current)
            try preconditions.check(current)
            return fields
        }
        return Responses.user(user)
    }
}
