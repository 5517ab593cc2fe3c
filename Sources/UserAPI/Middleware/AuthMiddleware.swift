import HTTPTypes
import Hummingbird

/// Requires an API token for writes (and for reads when `auth.protect_reads`).
/// Accepts `Authorization: Bearer <token>` and, for the clients of the service
/// this replaces, `X-Auth-Token: <token>`.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let tokens: TokenStore
    let protectReads: Bool

    static let xAuthToken = HTTPField.Name("X-Auth-Token")!

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let isRead = request.method == .get || request.method == .head
        if isRead && !protectReads { return try await next(request, context) }
        let accepted = tokens.tokens
        if accepted.isEmpty {
            throw Problem.unauthorized(
                "No API token is configured on this server, so \(isRead ? "reads" : "writes") are refused. "
                    + "Start it with AUTH_TOKENS=<token> (for example AUTH_TOKENS=$(openssl rand -hex 32)) "
                    + "or point auth.tokens_file at a file of tokens, then send Authorization: Bearer <token>.")
        }
        guard let presented = Self.presentedToken(request.headers) else {
            throw Problem.unauthorized(
                "This request needs an API token: send Authorization: Bearer <token> or X-Auth-Token: <token>.")
        }
        guard accepted.accepts(presented) else {
            throw Problem.unauthorized("The API token is not valid.")
        }
        return try await next(request, context)
    }

    static func presentedToken(_ headers: HTTPFields) -> Substring? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = parts[1].drop(while: { $0 == " " })
                return token.isEmpty ? nil : token
            }
            return nil
        }
        if let token = headers[xAuthToken], !token.isEmpty { return token[...] }
        return nil
    }
}
