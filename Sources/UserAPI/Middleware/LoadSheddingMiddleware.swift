import Hummingbird
import Synchronization

/// Caps the requests served at once. Past the cap a request gets an
/// immediate 503 with `Retry-After` instead of queueing until every client
/// times out. Probes and metrics are exempt: an overloaded replica must not
/// look dead to the kubelet, or it gets restarted while busy.
struct LoadSheddingMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let limit: Int
    private let counter = Counter()

    final class Counter: Sendable {
        let inFlight = Atomic<Int>(0)
    }

    init(limit: Int) {
        self.limit = limit
    }

    static func isExempt(_ path: String) -> Bool {
        path == "/healthz" || path == "/readyz" || path == "/metrics"
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if Self.isExempt(request.uri.path) { return try await next(request, context) }
        let current = counter.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        defer { counter.inFlight.wrappingSubtract(1, ordering: .relaxed) }
        guard current <= limit else {
            throw Problem.unavailable("The server is at its limit of \(limit) concurrent requests; retry shortly.")
        }
        return try await next(request, context)
    }
}
