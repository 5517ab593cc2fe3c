import Foundation
import Synchronization

/// Process-level state the handlers report: when it started and whether it
/// is draining (shutting down, so readiness must fail).
public final class AppState: Sendable {
    public let startedAt = ContinuousClock.now
    public let startedAtWall = Date()
    private let draining = Atomic<Bool>(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func beginDraining() { draining.store(true, ordering: .relaxed) }

    public var uptime: Duration { .now - startedAt }
}

/// What every handler may need, built once per application.
struct AppDependencies: Sendable {
    let config: AppConfig
    let store: any UserStore
    let tokens: TokenStore
    let metrics: AppMetrics?
    let state: AppState
    /// Requests counted towards `http.max_in_flight`, by the router and `EventLoopFastPath`.
    let inFlight: InFlightRequests
}
