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
        let now = Timestamp.nowMillis()
        let user = User(
            id: UserID.make(), name: fields.name, username: fields.username, email: fields.email,
            createdAt: now, updatedAt: now, version: 1)
        let created = try await deps.store.create(user)
        return Responses.user(created, status: .created, headers: [.location: "/users/\(created.id)"])
    }
}
