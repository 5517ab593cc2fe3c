import HTTPTypes
import Hummingbird

/// `DELETE /users/{id}`: 204 once the row is gone; honours `If-Match` and `If-None-Match`.
struct DeleteUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try UserRoutes.id(context)
        let preconditions = UserRoutes.Preconditions(request)
        try await deps.store.delete(id: id) { try preconditions.check($0) }
        return Response(status: .noContent)
    }
}
