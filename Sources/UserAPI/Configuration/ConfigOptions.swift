/// The table of configuration keys: one place that defines each key's parser,
/// help text and whether it is secret. Loading, `userapi config` and the
/// table in docs/configuration.md all come from it.
struct ConfigOption: Sendable {
    typealias Apply = @Sendable (inout AppConfig, String) throws(ConfigValueParser.Invalid) -> Void
    typealias Render = @Sendable (AppConfig) -> String?

    let key: String
    let help: String
    let secret: Bool
    let apply: Apply
    let render: Render

    init(_ key: String, secret: Bool = false, help: String, apply: @escaping Apply, render: @escaping Render) {
        self.key = key
        self.secret = secret
        self.help = help
        self.apply = apply
        self.render = render
    }
}

private func seconds(_ d: Duration) -> String {
    let ms = d.milliseconds
    return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
}

extension ConfigOption {
    static let all: [ConfigOption] = [
        ConfigOption(
            "http.host", help: "Address to listen on (the container image sets 0.0.0.0).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.http.host = try ConfigValueParser.host(v) },
            render: { $0.http.host }),
        ConfigOption(
            "http.port", help: "TCP port for the API (0 picks a free port).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.http.port = try ConfigValueParser.int(v, in: 0...65535) },
            render: { "\($0.http.port)" }),
        ConfigOption(
            "http.max_body_size", help: "Largest accepted request body; larger ones get 413.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.maxBodySize = try ConfigValueParser.size(v, in: 64...(64 << 20))
            },
            render: { "\($0.http.maxBodySize)" }),
        ConfigOption(
            "http.idle_timeout", help: "Close connections idle between requests this long.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.idleTimeout = try ConfigValueParser.duration(v, in: 1...3600)
            },
            render: { seconds($0.http.idleTimeout) }),
        ConfigOption(
            "http.request_timeout",
            help: "A request must arrive in full (head and body) within this of its first byte, or the connection is closed.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.requestTimeout = try ConfigValueParser.duration(v, in: 1...3600)
            },
            render: { seconds($0.http.requestTimeout) }),
        ConfigOption(
            "http.read_timeout", help: "Close a connection that pauses this long in the middle of sending a request.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.readTimeout = try ConfigValueParser.duration(v, in: 1...3600)
            },
            render: { seconds($0.http.readTimeout) }),
        ConfigOption(
            "http.max_in_flight", help: "Requests served at once before new ones get a fast 503 (0 = no limit).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.maxInFlight = try ConfigValueParser.int(v, in: 0...1_000_000)
            },
            render: { "\($0.http.maxInFlight)" }),
        ConfigOption(
            "http.max_connections", help: "Connections accepted at once (more wait in the backlog; bounds memory). 0 = no limit.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.maxConnections = try ConfigValueParser.int(v, in: 0...1_000_000)
            },
            render: { "\($0.http.maxConnections)" }),
        ConfigOption(
            "http.max_connections_per_client",
            help: "Connections one client address may hold open (0 = no limit); behind a proxy every client is the proxy.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.maxConnectionsPerClient = try ConfigValueParser.int(v, in: 0...1_000_000)
            },
            render: { "\($0.http.maxConnectionsPerClient)" }),
        ConfigOption(
            "http.management_port",
            help: "Also serve /healthz, /readyz and /metrics on this port, and only there (0 = no separate port).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.http.managementPort = try ConfigValueParser.int(v, in: 0...65535)
            },
            render: { "\($0.http.managementPort)" }),
        ConfigOption(
            "database.url", secret: true,
            help: "sqlite:<path> (embedded, default) or postgres://user@host:5432/db.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.url = try ConfigValueParser.databaseURL(v) },
            render: { DatabaseURL.redacted($0.database.url) }),
        ConfigOption(
            "database.password_file", help: "File holding the PostgreSQL password (a mounted Secret).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.passwordFile = try ConfigValueParser.nonEmpty(v) },
            render: { $0.database.passwordFile }),
        ConfigOption(
            "database.pool_size", help: "Most PostgreSQL connections per replica (opened on demand, closed after 10 s idle).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.poolSize = try ConfigValueParser.int(v, in: 1...500) },
            render: { "\($0.database.poolSize)" }),
        ConfigOption(
            "database.connect_timeout", help: "Give up connecting to PostgreSQL after this long.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.connectTimeout = try ConfigValueParser.duration(v, in: 0.1...300)
            },
            render: { seconds($0.database.connectTimeout) }),
        ConfigOption(
            "database.connect_attempts",
            help: "Tries to reach PostgreSQL at start, a second apart and each within connect_timeout, before exiting (74).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.connectAttempts = try ConfigValueParser.int(v, in: 1...1000)
            },
            render: { "\($0.database.connectAttempts)" }),
        ConfigOption(
            "database.statement_timeout", help: "Abort a PostgreSQL statement (and answer 503) after this long.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.statementTimeout = try ConfigValueParser.duration(v, in: 0.1...300)
            },
            render: { seconds($0.database.statementTimeout) }),
        ConfigOption(
            "database.acquire_timeout",
            help: "Longest wait for a PostgreSQL connection when all are in use, before answering 503.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.acquireTimeout = try ConfigValueParser.duration(v, in: 0.05...300)
            },
            render: { seconds($0.database.acquireTimeout) }),
        ConfigOption(
            "database.tls_mode", help: "PostgreSQL TLS: disable, require, or verify-full (checks the CA and host name).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.tlsMode = try ConfigValueParser.choice(v, AppConfig.Database.TLSMode.self)
            },
            render: { $0.database.tlsMode.rawValue }),
        ConfigOption(
            "database.tls_ca_file", help: "PEM bundle of CAs trusted for verify-full (e.g. the RDS bundle).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.tlsCAFile = try ConfigValueParser.nonEmpty(v) },
            render: { $0.database.tlsCAFile }),
        ConfigOption(
            "database.migrate_on_start", help: "Apply pending migrations at startup (under a lock, safe with replicas).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.migrateOnStart = try ConfigValueParser.bool(v) },
            render: { "\($0.database.migrateOnStart)" }),
        ConfigOption(
            "database.sqlite.synchronous",
            help: "full: fsync every commit (durable on power loss); normal: faster, crash-safe only.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.sqliteSynchronous = try ConfigValueParser.choice(v, SQLiteSettings.Synchronous.self)
            },
            render: { $0.database.sqliteSynchronous.rawValue }),
        ConfigOption(
            "database.sqlite.busy_timeout", help: "Wait this long for another process's SQLite lock.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.sqliteBusyTimeout = try ConfigValueParser.duration(v, in: 0...300)
            },
            render: { seconds($0.database.sqliteBusyTimeout) }),
        ConfigOption(
            "database.sqlite.readers", help: "SQLite reader connections (reads run beside the single writer).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.sqliteReaders = try ConfigValueParser.int(v, in: 1...64)
            },
            render: { "\($0.database.sqliteReaders)" }),
        ConfigOption(
            "database.sqlite.check_on_start",
            help: "Run PRAGMA quick_check when opening the file; a damaged file stops the start (74).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.database.sqliteCheckOnStart = try ConfigValueParser.bool(v) },
            render: { "\($0.database.sqliteCheckOnStart)" }),
        ConfigOption(
            "database.max_queued_writes", help: "Writes waiting for the database before new ones get a fast 503.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.database.maxQueuedWrites = try ConfigValueParser.int(v, in: 1...1_000_000)
            },
            render: { "\($0.database.maxQueuedWrites)" }),
        ConfigOption(
            "auth.tokens", secret: true, help: "Comma-separated API tokens (at least 16 characters; ro:<token> for read-only).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.auth.tokens = v },
            render: { $0.auth.tokens.map { _ in "REDACTED" } }),
        ConfigOption(
            "auth.tokens_file",
            help:
                "File of tokens (one per line, sha256:<hex> for a digest, ro: in front for read-only); re-read when it changes.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.auth.tokensFile = try ConfigValueParser.nonEmpty(v) },
            render: { $0.auth.tokensFile }),
        ConfigOption(
            "auth.protect_reads", help: "Require a token for reads too (probes, metrics and a bare / stay open).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.auth.protectReads = try ConfigValueParser.bool(v) },
            render: { "\($0.auth.protectReads)" }),
        ConfigOption(
            "auth.failure_limit",
            help:
                "Failed authentications per client address and minute; past it the address gets 429 for the rest of the minute (0 = no limit).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.auth.failureLimit = try ConfigValueParser.int(v, in: 0...1_000_000)
            },
            render: { "\($0.auth.failureLimit)" }),
        ConfigOption(
            "auth.reload_interval", help: "How often the tokens file is checked for changes.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.auth.reloadInterval = try ConfigValueParser.duration(v, in: 0.1...3600)
            },
            render: { seconds($0.auth.reloadInterval) }),
        ConfigOption(
            "events.retention", help: "Keep feed events this long; a since older than what is kept gets 410.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.events.retention = try ConfigValueParser.duration(v, in: 60...(366 * 24 * 3600))
            },
            render: { seconds($0.events.retention) }),
        ConfigOption(
            "events.max_rows", help: "Keep at most this many feed events (the newest).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.events.maxRows = try ConfigValueParser.int(v, in: 100...100_000_000)
            },
            render: { "\($0.events.maxRows)" }),
        ConfigOption(
            "events.max_watchers", help: "Feed streams and WebSockets open at once; more get 503 (WebSocket close 1013).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.events.maxWatchers = try ConfigValueParser.int(v, in: 0...1_000_000)
            },
            render: { "\($0.events.maxWatchers)" }),
        ConfigOption(
            "events.max_lag",
            help: "Events a live watcher may fall behind before it is disconnected (it resumes with its last seq).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.events.maxLag = try ConfigValueParser.int(v, in: 1...1_000_000)
            },
            render: { "\($0.events.maxLag)" }),
        ConfigOption(
            "events.heartbeat", help: "Idle feed streams get a comment (SSE) or a ping (WebSocket) this often.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.events.heartbeat = try ConfigValueParser.duration(v, in: 1...300)
            },
            render: { seconds($0.events.heartbeat) }),
        ConfigOption(
            "log.level", help: "trace, debug, info, notice, warning, error or critical.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.log.level = try ConfigValueParser.logLevel(v) },
            render: { $0.log.level.rawValue }),
        ConfigOption(
            "log.format", help: "text or json (default: text on a terminal, json otherwise).",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.log.format = try ConfigValueParser.choice(v, AppConfig.Log.Format.self)
            },
            render: { $0.log.format.rawValue }),
        ConfigOption(
            "log.access", help: "Log one line per request.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.log.access = try ConfigValueParser.bool(v) },
            render: { "\($0.log.access)" }),
        ConfigOption(
            "shutdown.drain_delay", help: "After SIGTERM, keep serving (readiness 503) this long before closing the listener.",
            apply: { c, v throws(ConfigValueParser.Invalid) in
                c.shutdown.drainDelay = try ConfigValueParser.duration(v, in: 0...300)
            },
            render: { seconds($0.shutdown.drainDelay) }),
        ConfigOption(
            "shutdown.timeout", help: "Then give in-flight requests this long to finish.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.shutdown.timeout = try ConfigValueParser.duration(v, in: 0...600)
            },
            render: { seconds($0.shutdown.timeout) }),
        ConfigOption(
            "metrics.enabled", help: "Serve Prometheus metrics at /metrics.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.metrics.enabled = try ConfigValueParser.bool(v) },
            render: { "\($0.metrics.enabled)" }),
        ConfigOption(
            "memory.release_startup_pages",
            help: "Once ready, return the binary's start-up-only pages to the kernel (lower resident memory).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.memory.releaseStartupPages = try ConfigValueParser.bool(v) },
            render: { "\($0.memory.releaseStartupPages)" }),
        ConfigOption(
            "memory.malloc_arenas",
            help: "At most this many glibc malloc arenas (0 = glibc's default, 8 per core); fewer arenas, less resident memory.",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.memory.mallocArenas = try ConfigValueParser.int(v, in: 0...64) },
            render: { "\($0.memory.mallocArenas)" }),
        ConfigOption(
            "tracing.enabled", help: "Export OpenTelemetry traces over OTLP/HTTP (also on with OTEL_TRACES_EXPORTER=otlp).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.tracing.enabled = try ConfigValueParser.bool(v) },
            render: { "\($0.tracing.enabled)" }),
        ConfigOption(
            "instance.name", help: "Name reported by / and in logs (default: $HOSTNAME, the pod name).",
            apply: { c, v throws(ConfigValueParser.Invalid) in c.instanceName = try ConfigValueParser.nonEmpty(v) },
            render: { $0.instanceName }),
    ]
}
