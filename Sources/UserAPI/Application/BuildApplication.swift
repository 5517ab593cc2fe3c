import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Builds the complete service from validated configuration: opens storage,
/// loads tokens, wires routes and middleware. Nothing listens until the
/// returned application runs.
public func buildApplication(_ config: AppConfig, logger: Logger) async throws -> UserAPIApplication {
    // Before the event loops and storage threads start allocating.
    MemoryTrim.limitMallocArenas(config.memory.mallocArenas)
    let state = AppState()
    let metrics = config.metrics.enabled ? AppMetrics(version: BuildInfo.version, commit: BuildInfo.commit) : nil
    let tokens = try TokenStore(
        plainTokens: config.auth.tokens, filePath: config.auth.tokensFile,
        reloadInterval: config.auth.reloadInterval, logger: logger)
    if tokens.tokens.isEmpty {
        let refused = config.auth.protectReads ? "every read and write of users" : "every write"
        logger.warning(
            "auth: no API token configured; \(refused) will be refused with 401 until AUTH_TOKENS or auth.tokens_file is set")
    }
    let backend = try await StoreFactory.make(config, logger: logger, metrics: metrics)
    let store: any UserStore =
        metrics.map { InstrumentedUserStore(base: backend, metrics: $0, tracing: config.tracing.enabled) } ?? backend
    metrics?.declareStorageErrors(backend: backend.backend)
    metrics?.declareFeed()

    let auth = Authenticator(
        tokens: tokens, protectReads: config.auth.protectReads, failuresPerMinute: config.auth.failureLimit,
        metrics: metrics)
    let inFlight = InFlightRequests(limit: config.http.maxInFlight)
    let health = HealthHandlers(
        state: state,
        dependencies: [
            .init(name: "storage", check: { try await store.ping() }),
            .init(name: "capacity", check: { if inFlight.isFull { throw InFlightRequests.Full() } }),
        ],
        showsDetails: { auth.showsDetails($0) })
    let feed = EventFeed(store: store, settings: config.events, metrics: metrics, logger: logger)
    state.onDrainDelayOver { feed.close() }
    let deps = AppDependencies(
        config: config, store: store, tokens: tokens, auth: auth, metrics: metrics, state: state,
        inFlight: inFlight, health: health, feed: feed)
    let router = buildRouter(deps, routes: Route.served(management: false, config: config), logger: logger)

    var services: [any Service] = [tokens, StorageService(store: backend), feed, HeapTrimService()]
    if config.http.managementPort != 0 {
        let management = buildRouter(deps, routes: Route.served(management: true, config: config), logger: logger)
        services.append(ManagementServer.make(router: management, config: config, logger: logger))
    }
    let prelude: @Sendable () async throws -> Void = {
        // A SIGTERM while the database is still out of reach ends the start at once.
        try await cancelWhenGracefulShutdown {
            try await StoreFactory.prepareSchema(
                backend, migrate: config.database.migrateOnStart, connectAttempts: config.database.connectAttempts,
                logger: logger)
        }
        feed.start()
    }
    return UserAPIApplication(
        responder: router.buildResponder(), webSocketResponder: buildWebSocketRouter(deps, logger: logger).buildResponder(),
        config: config, logger: logger, services: services,
        prelude: [prelude], state: state, store: store, tokens: tokens, metrics: metrics)
}

/// Runs a store's background work (connection pool, group commit) for as
/// long as the application runs, and closes it after the HTTP server has
/// stopped: services shut down in reverse order, and this one comes before the server.
struct StorageService: Service {
    let store: any UserStore

    func run() async throws {
        try await store.run()
    }
}

enum ManagementServer {
    /// A second listener for probes and metrics, so they answer while the API
    /// port is flooded, and the API port can be public while metrics stay
    /// internal. It runs on an event loop of its own, so a flood of API
    /// connections does not delay accepting and reading probes.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func make(router: Router<AppRequestContext>, config: AppConfig, logger: Logger) -> some Service {
        Application(
            router: router,
            configuration: .init(address: .hostname(config.http.host, port: config.http.managementPort)),
            eventLoopGroupProvider: .shared(eventLoops), logger: logger)
    }
}
