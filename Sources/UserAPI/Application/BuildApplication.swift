import Hummingbird
import Logging
import ServiceLifecycle

/// Builds the complete service from validated configuration: opens storage,
/// loads tokens, wires routes and middleware. Nothing listens until the
/// returned application runs.
public func buildApplication(_ config: AppConfig, logger: Logger) async throws -> UserAPIApplication {
    // Before the store's thread pool and the event loops start allocating.
    MemoryTrim.limitMallocArenas(config.memory.mallocArenas)
    let state = AppState()
    let metrics = config.metrics.enabled ? AppMetrics(version: BuildInfo.version, commit: BuildInfo.commit) : nil
    let tokens = try TokenStore(
        plainTokens: config.auth.tokens, filePath: config.auth.tokensFile,
        reloadInterval: config.auth.reloadInterval, logger: logger)
    if tokens.tokens.isEmpty {
        logger.warning(
            "auth: no API token configured; every write will be refused with 401 until AUTH_TOKENS or auth.tokens_file is set")
    }
    let backend = try await StoreFactory.make(config, logger: logger, metrics: metrics)
    let store: any UserStore =
        metrics.map { InstrumentedUserStore(base: backend, metrics: $0, tracing: config.tracing.enabled) } ?? backend
    metrics?.declareStorageErrors(backend: backend.backend)

    let deps = AppDependencies(
        config: config, store: store, tokens: tokens, metrics: metrics, state: state,
        inFlight: InFlightRequests(limit: config.http.maxInFlight))
    let router = buildRouter(deps, tracing: config.tracing.enabled, logger: logger)

    let heartbeat = ExecutorHeartbeat()
    let fastPath = EventLoopFastPath.Shared(
        heartbeat: heartbeat, metrics: metrics, accessLog: AccessLog(config: config, logger: logger),
        tracing: config.tracing.enabled,
        users: backend.hasUserCache
            ? .init(store: store, tokens: tokens, protectReads: config.auth.protectReads) : nil,
        lists: backend.listsWithoutTask
            ? .init(store: store, tokens: tokens, protectReads: config.auth.protectReads, inFlight: deps.inFlight) : nil,
        creates: backend.createsWithoutTask
            ? .init(store: store, tokens: tokens, maxBodySize: config.http.maxBodySize) : nil)
    var services: [any Service] = [tokens, StorageService(store: backend), heartbeat]
    if let metrics, config.metrics.port != 0 {
        services.append(MetricsServer.make(metrics: metrics, host: config.http.host, port: config.metrics.port, logger: logger))
    }
    let prelude: @Sendable () async throws -> Void = {
        try await StoreFactory.prepareSchema(backend, migrate: config.database.migrateOnStart, logger: logger)
    }
    return UserAPIApplication(
        responder: router.buildResponder(), config: config, logger: logger, services: services,
        prelude: [prelude], state: state, store: store, tokens: tokens, metrics: metrics, fastPath: fastPath)
}

/// Runs a store's background work (connection pool, write queue) for as long
/// as the application runs, and closes it after the HTTP server has stopped:
/// services shut down in reverse order, and this one comes before the server.
struct StorageService: Service {
    let store: any UserStore

    func run() async throws {
        try await store.run()
    }
}

enum MetricsServer {
    /// A second listener that serves only `/metrics`, so the API port can be
    /// public while metrics stay on an internal port.
    static func make(metrics: AppMetrics, host: String, port: Int, logger: Logger) -> some Service {
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.get("/metrics", use: MetricsHandler(metrics: metrics).handle)
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port)),
            logger: logger)
    }
}
