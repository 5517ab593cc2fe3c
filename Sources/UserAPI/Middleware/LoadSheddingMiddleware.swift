import Hummingbird
import Synchronization

/// Caps the API requests served at once. Past the cap a request gets an
/// immediate 503 with `Retry-After` instead of queueing until every client
/// times out. Probes and metrics are not behind it (see `buildRouter`): an
/// overloaded replica must not look dead to the kubelet, or it gets
/// restarted while busy.
struct LoadSheddingMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let requests: InFlightRequests

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard requests.enter() else {
            throw Problem.unavailable("The server is at its limit of \(requests.limit) concurrent requests; retry shortly.")
        }
        defer { requests.leave() }
        return try await next(request, context)
    }
}

/// The API requests being served, against `http.max_in_flight`.
final class InFlightRequests: Sendable {
    /// 0: no limit.
    let limit: Int
    private let count = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts a request in, unless that would pass the limit; `leave()` when
    /// it has been answered.
    func enter() -> Bool {
        let current = count.wrappingAdd(1, ordering: .relaxed).newValue
        guard limit == 0 || current <= limit else {
            count.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// At the limit: new API requests are being shed.
    var isFull: Bool { limit > 0 && count.load(ordering: .relaxed) >= limit }

    struct Full: Error, CustomStringConvertible {
        var description: String { "the server is at its limit of concurrent requests" }
    }

    func leave() {
        count.wrappingSubtract(1, ordering: .relaxed)
    }
}
