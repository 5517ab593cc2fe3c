import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The whole service: router, storage, token reloading and (optionally) the
/// management listener. Tests and `userapi serve` build it the same way,
/// through `buildApplication`.
public struct UserAPIApplication: ApplicationProtocol {
    public typealias Responder = RouterResponder<AppRequestContext>

    public let responder: Responder
    public var configuration: ApplicationConfiguration
    public var logger: Logger
    public var services: [any Service]
    public let server: HTTPServerBuilder
    public var processesRunBeforeServerStart: [@Sendable () async throws -> Void]

    public let config: AppConfig
    public let state: AppState
    public let store: any UserStore
    public let tokens: TokenStore
    public let metrics: AppMetrics?

    init(
        responder: Responder, webSocketResponder: Responder, config: AppConfig, logger: Logger, services: [any Service],
        prelude: [@Sendable () async throws -> Void], state: AppState, store: any UserStore,
        tokens: TokenStore, metrics: AppMetrics?
    ) {
        self.responder = responder
        self.configuration = ApplicationConfiguration(
            address: .hostname(config.http.host, port: config.http.port), serverName: nil, backlog: 1024,
            availableConnectionsDelegate: config.http.maxConnections > 0
                ? MaximumAvailableConnections(config.http.maxConnections) : nil)
        self.logger = logger
        self.services = services
        let limits = RequestLimits(
            requestTimeout: .nanoseconds(Int64(config.http.requestTimeout.seconds * 1e9)),
            readTimeout: .nanoseconds(Int64(config.http.readTimeout.seconds * 1e9)))
        let clients = ConnectionsPerClient(limit: config.http.maxConnectionsPerClient)
        let configuration = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: .nanoseconds(Int64(config.http.idleTimeout.seconds * 1e9))),
            // Pings keep idle watchers' connections open through proxies, as SSE heartbeats do.
            ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: config.events.heartbeat)))
        self.server = HTTPServerBuilder { responder in
            HTTPServerChannel(
                http: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: configuration),
                limits: limits, clients: clients, metrics: metrics)
        }
        self.processesRunBeforeServerStart = prelude
        self.config = config
        self.state = state
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
    }

    /// The port the API listens on once running (useful with `http.port=0`).
    public var port: Int { state.port }

    public func onServerRunning(_ channel: any Channel) async {
        let port = channel.localAddress?.port ?? config.http.port
        state.listening(on: port)
        logger.notice(
            "listening",
            metadata: [
                "host": .string(config.http.host), "port": .stringConvertible(port),
                "storage": .string(store.location), "version": .string(BuildInfo.version),
            ])
        if config.memory.releaseStartupPages {
            MemoryTrim.releaseStartupPagesInBackground { [logger] released in
                logger.debug("memory: released start-up pages", metadata: ["mapped_bytes": .stringConvertible(released)])
            }
        }
    }
}

extension UserAPIApplication: CustomStringConvertible {
    /// What service lifecycle logs for this service: no configuration values.
    public var description: String { "userapi on \(config.http.host):\(config.http.port)" }
}
