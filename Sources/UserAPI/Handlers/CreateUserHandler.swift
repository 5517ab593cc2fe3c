import HTTPTypes
import Hummingbird

/// `POST /users`: validates, assigns a time-ordered id, stores durably, and
/// answers 201 with the user, its `Location` and `ETag`.
struct CreateUserHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.read(
            request, context: context, maxSize: deps.config.http.maxBodySize, accepting: [JSONBody.json])
        let fields = try UserValidation.validateDocument(body, current: nil)
        let created = try await deps.store.create(User.new(fields))
        return Responses.user(created, status: .created, headers: [.location: "/users/\(created.id)"])
    }
}
