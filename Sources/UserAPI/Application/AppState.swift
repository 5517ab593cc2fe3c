import Foundation
import Synchronization

/// Process-level state the handlers report: when it started and whether it
/// is draining (shutting down, so readiness must fail).
public final class AppState: Sendable {
    public let startedAt = ContinuousClock.now
    private let draining = Atomic<Bool>(false)
    private let boundPort = Atomic<Int>(0)
    private let drainHooks = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// The API listener is open on `port`.
    func listening(on port: Int) { boundPort.store(port, ordering: .relaxed) }

    /// The API port once it listens, 0 before.
    public var port: Int { boundPort.load(ordering: .relaxed) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Readiness turns 503; the server keeps serving for the drain delay.
    public func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }

    /// The drain delay is over (load balancers have stopped sending new
    /// connections here): whatever asked to know runs, e.g. the feed ends
    /// its streams so watchers resume on another replica.
    public func drainDelayOver() {
        for hook in drainHooks.withLock({ $0 }) { hook() }
    }

    func onDrainDelayOver(_ hook: @escaping @Sendable () -> Void) { drainHooks.withLock { $0.append(hook) } }

    public var uptime: Duration { .now - startedAt }
}

/// What every handler may need, built once per application.
struct AppDependencies: Sendable {
    let config: AppConfig
    let store: any UserStore
    let tokens: TokenStore
    let auth: Authenticator
    let metrics: AppMetrics?
    let state: AppState
    /// API requests being served, against `http.max_in_flight`.
    let inFlight: InFlightRequests
    let health: HealthHandlers
    let feed: EventFeed
}
