import HTTPTypes
import Hummingbird

/// `PUT /users/{id}`: full replacement of the writable fields. Read-only
/// fields may be sent back unchanged (GET-modify-PUT). Honours `If-Match` and `If-None-Match`.
struct ReplaceUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try UserRoutes.id(context)
        let body = try await JSONBody.read(
            request, context: context, maxSize: deps.config.http.maxBodySize, accepting: [JSONBody.json])
        let preconditions = UserRoutes.Preconditions(request)
        let user = try await deps.store.update(id: id) { current in
            // Invalid input is reported as such (422) whatever the precondition says.
            let fields = try UserValidation.validateDocument(body, current: current)
            try preconditions.check(current)
            return fields
        }
        return Responses.user(user)
    }
}
