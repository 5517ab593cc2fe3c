import Foundation
import Synchronization

/// Process-level state the handlers report: when it started and whether it
/// is draining (shutting down, so readiness must fail).
public final class AppState: Sendable {
    public let startedAt = ContinuousClock.now
    private let draining = Atomic<Bool>(false)
    private let boundPort = Atomic<Int>(0)

    public init() {}

    /// The API listener is open on `port`.
    func listening(on port: Int) { boundPort.store(port, ordering: .relaxed) }

    /// The API port once it listens, 0 before.
    public var port: Int { boundPort.load(ordering: .relaxed) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func beginDraining() { draining.store(true, ordering: .relaxed) }

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
}
