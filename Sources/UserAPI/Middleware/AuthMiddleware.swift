import Hummingbird

/// Requires an API token on the routes behind it (see `Route.access` and
/// `Authenticator`). Accepts `Authorization: Bearer <token>` and, for the
/// clients of the service this replaces, `X-Auth-Token: <token>`.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let auth: Authenticator

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        try auth.authorize(request, context: context)
        return try await next(request, context)
    }
}
