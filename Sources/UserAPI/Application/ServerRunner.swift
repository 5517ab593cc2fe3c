import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Runs the application until SIGTERM/SIGINT, then shuts down in phases:
///
/// 1. readiness turns 503 at once (`DrainService`), while the server keeps
///    serving for `shutdown.drain_delay` so load balancers and Kubernetes
///    endpoints stop routing here;
/// 2. the listener closes and in-flight requests get up to `shutdown.timeout`;
/// 3. storage finishes queued writes and closes; the process exits 0.
///
/// A second signal exits immediately. Hummingbird's `runService()` has no
/// deadline, hence this explicit `ServiceGroup`.
public enum ServerRunner {
    public static func run(_ app: UserAPIApplication, extraServices: [any Service] = [], logger: Logger) async throws {
        let drain = DrainService(state: app.state, delay: app.config.shutdown.drainDelay, logger: logger)
        // Services shut down in reverse order: drain first, then the app
        // (server, then storage), then extras such as the trace exporter.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = extraServices.map { .init(service: $0) }
        services.append(.init(service: app))
        services.append(.init(service: drain))
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = app.config.shutdown.drainDelay + app.config.shutdown.timeout
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await exitOnSecondSignal(logger: logger) }
            tasks.addTask {
                do {
                    try await group.run()
                } catch let error as IOError where error.errnoCode == EADDRINUSE {
                    throw ListenError(
                        address: "\(app.config.http.host):\(app.config.http.port)",
                        reason: "the address is already in use (another process listens there)")
                }
                logger.notice("stopped")
            }
            // Whichever finishes first (normally the service group) ends the run.
            defer { StdoutSink.shared.flush() }
            try await tasks.next()
            tasks.cancelAll()
        }
    }

    /// The first SIGTERM/SIGINT starts the graceful shutdown (handled by the
    /// service group); a second one means "now": exit without waiting.
    static func exitOnSecondSignal(logger: Logger) async {
        var seen = 0
        for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
            seen += 1
            if seen >= 2 {
                logger.warning("second \(signal) received, exiting immediately")
                StdoutSink.shared.flush()
                exit(signal == .sigint ? 130 : 143)
            }
        }
    }
}

/// First service to receive graceful shutdown: flips readiness to 503 and
/// holds the shutdown for the drain delay while the server keeps serving.
struct DrainService: Service {
    let state: AppState
    let delay: Duration
    let logger: Logger

    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled (e.g. startup failed): nothing is serving, nothing to drain
        }
        state.beginDraining()
        logger.notice(
            "shutdown: readiness is now 503; still serving during the drain delay",
            metadata: ["drain_delay_s": "\(delay.seconds)"])
        try? await Task.sleep(for: delay)
        logger.notice("shutdown: drain delay over; closing the listener, the feed's streams and finishing in-flight requests")
        state.drainDelayOver()
    }
}

/// The server could not open its listening socket.
public struct ListenError: Error, CustomStringConvertible {
    public var address: String
    public var reason: String
    public var description: String { "cannot listen on \(address): \(reason)" }
}
