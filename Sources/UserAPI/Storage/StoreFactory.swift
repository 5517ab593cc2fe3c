import Logging

/// Opens the store `database.url` names and brings its schema up to date.
public enum StoreFactory {
    /// `waitForLock`: how long to wait for another process to let go of a
    /// SQLite file (the server refuses at once; one-off commands wait).
    public static func make(
        _ config: AppConfig, logger: Logger, metrics: AppMetrics? = nil, waitForLock: Duration = .zero
    ) async throws -> any UserStore {
        switch try DatabaseURL.parse(config.database.url) {
        case .sqlite(let path):
            var settings = SQLiteSettings(path: path)
            settings.synchronous = config.database.sqliteSynchronous
            settings.busyTimeout = config.database.sqliteBusyTimeout
            settings.readers = config.database.sqliteReaders
            settings.maxQueuedWrites = config.database.maxQueuedWrites
            settings.checkOnOpen = config.database.sqliteCheckOnStart
            let store = try await SQLiteUserStore.open(settings, logger: logger, waitForLock: waitForLock)
            if let metrics {
                let depth = metrics.gauge(
                    "userapi_sqlite_write_queue_depth", help: "Writes waiting for the SQLite writer connection.")
                metrics.onScrape { depth.set(Double(store.queuedWrites)) }
            }
            return store
        case .postgres(let url):
            return try PostgresUserStore.make(url: url, config: config.database, logger: logger, metrics: metrics)
        }
    }

    /// Runs migrations (`database.migrate_on_start`, the default) or checks
    /// that someone did: serving on an outdated schema would fail on every request.
    static func prepareSchema(
        _ store: any UserStore, migrate: Bool, connectAttempts: Int = 1, logger: Logger
    ) async throws {
        if let postgres = store as? PostgresUserStore {
            try await postgres.waitUntilReachable(attempts: connectAttempts)
        }
        if migrate {
            let report = try await store.migrate()
            if report.applied.isEmpty {
                logger.info("storage: schema is current", metadata: ["version": "\(report.current)"])
            } else {
                logger.notice(
                    "storage: migrations applied",
                    metadata: ["applied": "\(report.applied)", "version": "\(report.current)"])
            }
        } else {
            let version = try await store.schemaVersion()
            guard version >= Schema.latestVersion else {
                throw StoreError.schemaOutdated(found: version, required: Schema.latestVersion)
            }
        }
    }
}
