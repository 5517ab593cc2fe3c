import HTTPTypes
import Hummingbird

/// `DELETE /users/{id}`: 204 once the row is gone; honours `If-Match`.
struct DeleteUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try UserRoutes.id(context)
        let ifMatch = request.headers[.ifMatch]
        try await deps.store.delete(id: id) { current in
            try UserRoutes.checkIfMatch(ifMatch, current)
        }
        return Response(status: .noContent)
    }
}
