import HTTPTypes
import Hummingbird
import Logging
import NIOHTTP1

/// Turns every error into an `application/problem+json` answer with the right
/// status. Client mistakes never become 500s; unexpected errors are logged
/// with the request id and answered without internal details.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    /// The routes this router serves, for 405 answers.
    let routes: [Route]

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.problem(for: error, request: request, context: context, routes: routes)
                .response(requestID: context.requestID)
        }
    }

    static func problem(for error: any Error, request: Request, context: Context, routes: [Route]) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let failure as ValidationFailed:
            return .validation(failure.errors)
        case let malformed as MalformedJSON:
            return .malformedJSON(malformed.detail)
        case StoreError.notFound:
            return .notFound("No user has this id.")
        case StoreError.conflict(let fields):
            return .conflict(fields: fields)
        case StoreError.overloaded:
            context.logger.warning("storage: write queue full, shedding request")
            return .unavailable("The server has too many writes queued; retry shortly.", retryAfter: 1)
        case StoreError.unavailable(let reason):
            context.logger.warning("storage unavailable", metadata: ["reason": .string(reason)])
            if reason == "the disk is full" {
                return .unavailable("The database cannot take writes: the disk is full.", retryAfter: 30)
            }
            return .unavailable("The database is unavailable; retry shortly.", retryAfter: 2)
        case let httpError as any HTTPResponseError where httpError.status == .notFound:
            // The router found no endpoint: a known path with another method is a 405.
            if let allowed = Route.methods(matching: request.uri.path, among: routes), !allowed.contains(request.method) {
                return .methodNotAllowed(request.method, allowed: allowed.map(\.rawValue))
            }
            return .notFound("There is nothing at \(request.uri.path); see /openapi.yaml for the routes.")
        case let httpError as any HTTPResponseError where httpError.status == .contentTooLarge:
            return Problem(
                .contentTooLarge, type: "content-too-large", title: "Content too large",
                detail: "The request body is too large.")
        case let httpError as any HTTPResponseError where (400..<500).contains(httpError.status.code):
            return Problem(
                httpError.status, type: "bad-request", title: httpError.status.reasonPhrase,
                detail: "The request could not be handled: \(httpError.status.reasonPhrase).")
        case HTTPParserError.invalidEOFState:
            // The client closed its connection before the body it announced had
            // arrived. Nobody will read this answer; it is still the client's
            // fault (400 in metrics and the access log), not a server error.
            context.logger.info("client closed the connection before the request body was complete")
            return .incompleteBody()
        default:
            context.logger.error("unhandled error", metadata: ["error": .string(String(describing: error))])
            return .internalError()
        }
    }
}
