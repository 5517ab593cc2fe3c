import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Prometheus
import ServiceLifecycle
import Synchronization

/// `UserStore` on PostgreSQL through postgres-nio's pooled `PostgresClient`.
///
/// Failure behaviour is designed for outages of a managed database: every
/// call has a deadline (`database.statement_timeout`), connection-level
/// failures become `StoreError.unavailable` (503, never a 500 with a driver
/// message), and after such a failure new requests fail fast for a moment
/// instead of piling up behind a dead pool; the readiness probe keeps trying
/// and closes the breaker as soon as the database answers again.
public final class PostgresUserStore: UserStore {
    public let backend = "postgres"
    public let location: String

    private let client: PostgresClient
    private let logger: Logger
    private let timeout: Duration
    /// How long a request may wait for a pooled connection. Short, because a
    /// long wait means the database is down or the pool is exhausted, and
    /// either way a quick 503 serves the client better than a slow one.
    private let acquireTimeout: Duration
    private let breaker = CircuitBreaker(openFor: .seconds(1))
    private let deadlines = DeadlineTimer()
    private let pool: PoolGauges

    static let columns = "id, name, username, email, created_at, updated_at, version"
    /// Arbitrary constant naming the migration lock among all advisory locks.
    static let migrationLockKey: Int64 = 0x7573_6572_6170_6931

    private init(
        client: PostgresClient, location: String, timeout: Duration, acquireTimeout: Duration, logger: Logger,
        pool: PoolGauges
    ) {
        self.client = client
        self.location = location
        self.timeout = timeout
        self.acquireTimeout = acquireTimeout
        self.logger = logger
        self.pool = pool
    }

    public static func make(
        url: DatabaseURL.PostgresURL, config: AppConfig.Database, logger: Logger, metrics: AppMetrics?
    ) throws -> PostgresUserStore {
        var password = url.password
        if let file = config.passwordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError(
                    key: "database.password_file", value: file, source: nil, reason: "cannot read the password file")
            }
            password = text.trimmingCharacters(in: ["\n", "\r"])
        }
        let tls = try Self.tls(mode: config.tlsMode, sslModeInURL: url.sslMode, caFile: config.tlsCAFile)
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: password, database: url.database, tls: tls)
        configuration.options.maximumConnections = config.poolSize
        // Idle connections are closed after 10 s and not pinged. postgres-nio arms a timer (a
        // Task.sleep) for the idle timeout and one for the keep-alive each time a connection goes
        // idle; reuse cancels them, but on Linux a cancelled sleep holds its libdispatch timer
        // until it would have fired. With the defaults (60 s, 30 s) a run paced at 900 req/s grew
        // by 13 MB every 10 s; with these settings it stays at 26 MB (bench/README.md). Without
        // pings, a connection that died while idle fails on its next use (503 for that request);
        // closing idle ones after 10 s keeps that window short.
        // minimumConnections stays 0: above 0, this postgres-nio version trips a precondition
        // (PoolStateMachine.ConnectionGroup.createNewDemandConnectionIfPossible) when a request
        // arrives while the database is down and the pool is below its minimum.
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = config.connectTimeout
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = config.idleConnectionTimeout
        // Server-side bound as well, so an abandoned query does not keep running.
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(config.statementTimeout.milliseconds)"),
            ("application_name", "userapi"),
        ]
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let gauges = PoolGauges(max: config.poolSize, metrics: metrics)
        let location = "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"
        return PostgresUserStore(
            client: client, location: location, timeout: config.statementTimeout,
            acquireTimeout: min(config.acquireTimeout, config.statementTimeout), logger: logger, pool: gauges)
    }

    static func tls(mode: AppConfig.Database.TLSMode, sslModeInURL: String?, caFile: String?) throws
        -> PostgresClient.Configuration.TLS
    {
        // database.tls_mode wins; a libpq-style ?sslmode= in the URL is honoured when tls_mode is left at disable.
        var effective = mode
        if mode == .disable, let sslMode = sslModeInURL {
            switch sslMode {
            case "require", "verify-ca": effective = .require
            case "verify-full": effective = .verifyFull
            default: break
            }
        }
        switch effective {
        case .disable:
            return .disable
        case .require:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            return .require(tls)
        case .verifyFull:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw ConfigurationError(
                        key: "database.tls_ca_file", value: caFile, source: nil, reason: "cannot read the CA bundle")
                }
                tls.trustRoots = .file(caFile)
            }
            return .require(tls)
        }
    }

    // MARK: Plumbing

    /// Runs `body` on a pooled connection within the deadline, translating
    /// connection trouble into `StoreError.unavailable`.
    private func withConnection<T: Sendable>(
        probe: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        if !probe, breaker.isOpen {
            throw StoreError.unavailable(reason: "postgres recently failed; failing fast")
        }
        let client = self.client
        let pool = self.pool
        let lease = ConnectionLease()
        let leased = lease.started
        do {
            let value = try await deadlines.withDeadline(
                timeout, untilStarted: acquireTimeout, started: leased, onAbandon: { lease.abandon() }
            ) {
                pool.waiting(+1)
                defer { if !leased.isSet { pool.waiting(-1) } }
                return try await client.withConnection { connection in
                    // The pool can hand out a connection just after the call was given up (its
                    // lease does not check for cancellation): give it back unused.
                    guard lease.hold(connection) else { throw DeadlineExceeded() }
                    defer { lease.release() }
                    pool.waiting(-1)
                    pool.inUse(+1)
                    defer { pool.inUse(-1) }
                    return try await body(connection)
                }
            }
            breaker.recordSuccess()
            return value
        } catch is DeadlineExceeded {
            breaker.recordFailure()
            if lease.wasAbandoned {
                logger.warning(
                    "postgres did not answer within the statement timeout; closed the connection",
                    metadata: ["timeout": "\(timeout)"])
            }
            throw StoreError.unavailable(
                reason: leased.isSet
                    ? "postgres did not answer within \(timeout)"
                    : "no database connection became available within \(acquireTimeout)")
        } catch let error as PSQLError {
            if Self.isUnavailable(error) {
                breaker.recordFailure()
                logger.warning("postgres unavailable", metadata: ["error": "\(Self.describe(error))"])
                throw StoreError.unavailable(reason: Self.describe(error))
            }
            throw error
        }
    }

    /// Runs `body` inside BEGIN/COMMIT, rolling back when it throws. Errors
    /// are passed through unwrapped (postgres-nio's own helper wraps them).
    private func withTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T)
        async throws -> T
    {
        let logger = self.logger
        return try await withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let value = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return value
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    static func isUnavailable(_ error: PSQLError) -> Bool {
        switch error.code {
        case .server:
            // 08: connection exception, 57: operator intervention (shutdown, statement timeout),
            // 53: insufficient resources, 40001/40P01: serialization failure or deadlock.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57") || state.hasPrefix("53") || state.hasPrefix("40")
        case .queryCancelled, .clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown,
            .poolClosed, .sslUnsupported, .failedToAddSSLHandler:
            return true
        default:
            return false
        }
    }

    static func describe(_ error: PSQLError) -> String {
        if let message = error.serverInfo?[.message] {
            return "\(error.code): \(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
        }
        return "\(error.code)"
    }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    static func uuid(_ id: String) -> UUID? { UUID(uuidString: id) }

    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    static func users(_ rows: PostgresRowSequence) async throws -> [User] {
        var users: [User] = []
        for try await (id, name, username, email, created, updated, version) in rows.decode(
            (UUID, String, String, String, Date, Date, Int64).self)
        {
            users.append(
                User(
                    id: id.uuidString.lowercased(), name: name, username: username, email: email,
                    createdAt: millis(created), updatedAt: millis(updated), version: version))
        }
        return users
    }

    // MARK: UserStore

    public func run() async throws {
        // The pool runs until graceful shutdown cancels it; by then the HTTP
        // server has stopped, so no request is cut off.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.deadlines.run() }
                await self.client.run()
                group.cancelAll()
            }
        }
    }

    public func shutdown() async {}

    public func migrate() async throws -> MigrationReport {
        let logger = self.logger
        return try await withDeadline(.seconds(300)) {
            try await self.client.withConnection { conn in
                try await conn.query("BEGIN", logger: logger)
                do {
                    // Migrations may outlive the request statement timeout, and replicas
                    // starting together wait here for the first one to finish.
                    try await conn.query("SET LOCAL statement_timeout = '5min'", logger: logger)
                    try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                    try await conn.query(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                        logger: logger)
                    var current = 0
                    for try await v in try await conn.query(
                        "SELECT coalesce(max(version), 0)::integer FROM schema_migrations", logger: logger
                    ).decode(Int.self) {
                        current = v
                    }
                    var applied: [Int] = []
                    for migration in Schema.migrations where migration.version > current {
                        for statement in migration.postgres {
                            try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await conn.query(
                            "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                            logger: logger)
                        applied.append(migration.version)
                    }
                    try await conn.query("COMMIT", logger: logger)
                    return MigrationReport(applied: applied, current: max(current, applied.last ?? 0))
                } catch {
                    _ = try? await conn.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    public func schemaVersion() async throws -> Int {
        let logger = self.logger
        return try await withConnection { conn in
            var exists = false
            for try await e in try await conn.query(
                "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger
            ).decode(Bool.self) {
                exists = e
            }
            guard exists else { return 0 }
            var version = 0
            for try await v in try await conn.query(
                "SELECT coalesce(max(version), 0)::integer FROM schema_migrations", logger: logger
            ).decode(Int.self) {
                version = v
            }
            return version
        }
    }

    public func ping() async throws {
        let logger = self.logger
        try await withConnection(probe: true) { conn in
            _ = try await conn.query("SELECT 1", logger: logger)
        }
    }

    public func list(_ query: UserListQuery) async throws -> [User] {
        let logger = self.logger
        return try await withConnection { conn in
            var sql = PostgresQuery(unsafeSQL: "SELECT \(Self.columns) FROM users WHERE true")
            var bindings = PostgresBindings()
            if let after = query.after, let uuid = Self.uuid(after) {
                bindings.append(uuid)
                sql = PostgresQuery(unsafeSQL: sql.sql + " AND id > $\(bindings.count)")
            }
            if let username = query.username {
                bindings.append(username)
                sql = PostgresQuery(unsafeSQL: sql.sql + " AND username = $\(bindings.count)")
            }
            if let email = query.email {
                bindings.append(User.emailKey(email))
                sql = PostgresQuery(unsafeSQL: sql.sql + " AND email_key = $\(bindings.count)")
            }
            bindings.append(query.limit)
            let final = PostgresQuery(unsafeSQL: sql.sql + " ORDER BY id LIMIT $\(bindings.count)", binds: bindings)
            return try await Self.users(try await conn.query(final, logger: logger))
        }
    }

    public func get(id: String) async throws -> User? {
        guard let uuid = Self.uuid(id) else { return nil }
        let logger = self.logger
        return try await withConnection { conn in
            try await Self.users(
                try await conn.query(
                    "SELECT id, name, username, email, created_at, updated_at, version FROM users WHERE id = \(uuid)",
                    logger: logger)
            ).first
        }
    }

    public func create(_ user: User) async throws -> User {
        guard let uuid = Self.uuid(user.id) else { throw StoreError.unavailable(reason: "invalid id") }
        let logger = self.logger
        do {
            return try await withConnection { conn in
                try await conn.query(
                    """
                    INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version)
                    VALUES (\(uuid), \(user.name), \(user.username), \(user.email), \(user.emailKey),
                            \(Self.date(user.createdAt)), \(Self.date(user.updatedAt)), \(user.version))
                    """, logger: logger)
                return user
            }
        } catch  where Self.isUniqueViolation(error) {
            throw try await conflict(for: user, excluding: nil)
        }
    }

    public func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        guard let uuid = Self.uuid(id) else { throw StoreError.notFound }
        let logger = self.logger
        let attempted = Mutex<User?>(nil)
        do {
            return try await withTransaction { conn in
                guard
                    let current = try await Self.users(
                        try await conn.query(
                            "SELECT id, name, username, email, created_at, updated_at, version FROM users WHERE id = \(uuid) FOR UPDATE",
                            logger: logger)
                    ).first
                else { throw StoreError.notFound }
                let fields = try change(current)
                if fields == UserFields(current) { return current }
                var updated = current
                updated.name = fields.name
                updated.username = fields.username
                updated.email = fields.email
                updated.updatedAt = max(Timestamp.nowMillis(), current.updatedAt)
                updated.version = current.version + 1
                attempted.withLock { $0 = updated }
                try await conn.query(
                    """
                    UPDATE users SET name = \(updated.name), username = \(updated.username), email = \(updated.email),
                        email_key = \(updated.emailKey), updated_at = \(Self.date(updated.updatedAt)), version = \(updated.version)
                    WHERE id = \(uuid)
                    """, logger: logger)
                return updated
            }
        } catch  where Self.isUniqueViolation(error) {
            guard let user = attempted.withLock({ $0 }) else { throw error }
            throw try await conflict(for: user, excluding: id)
        }
    }

    public func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        guard let uuid = Self.uuid(id) else { throw StoreError.notFound }
        let logger = self.logger
        try await withTransaction { conn in
            guard
                let current = try await Self.users(
                    try await conn.query(
                        "SELECT id, name, username, email, created_at, updated_at, version FROM users WHERE id = \(uuid) FOR UPDATE",
                        logger: logger)
                ).first
            else { throw StoreError.notFound }
            try check(current)
            try await conn.query("DELETE FROM users WHERE id = \(uuid)", logger: logger)
        }
    }

    public func importUsers(_ users: [User]) async throws -> Int {
        guard !users.isEmpty else { return 0 }
        let logger = self.logger
        let current = Mutex<User?>(nil)
        do {
            return try await withTransaction { conn in
                var written = 0
                for user in users {
                    guard let uuid = Self.uuid(user.id) else { continue }
                    current.withLock { $0 = user }
                    let rows = try await conn.query(
                        """
                        INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version)
                        VALUES (\(uuid), \(user.name), \(user.username), \(user.email), \(user.emailKey),
                                \(Self.date(user.createdAt)), \(Self.date(user.updatedAt)), \(user.version))
                        ON CONFLICT (id) DO UPDATE SET name = excluded.name, username = excluded.username,
                            email = excluded.email, email_key = excluded.email_key, created_at = excluded.created_at,
                            updated_at = excluded.updated_at, version = excluded.version
                        WHERE users.version < excluded.version
                        RETURNING id
                        """, logger: logger)
                    for try await _ in rows { written += 1 }
                }
                return written
            }
        } catch  where Self.isUniqueViolation(error) {
            guard let user = current.withLock({ $0 }) else { throw error }
            throw ImportConflict(id: user.id, error: try await conflict(for: user, excluding: user.id))
        }
    }

    public func count() async throws -> Int {
        let logger = self.logger
        return try await withConnection { conn in
            var n = 0
            for try await c in try await conn.query("SELECT count(*)::bigint FROM users", logger: logger).decode(Int.self) {
                n = c
            }
            return n
        }
    }

    private func conflict(for user: User, excluding id: String?) async throws -> StoreError {
        let logger = self.logger
        let exclude = id.flatMap(Self.uuid) ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let (username, emailKey) = (user.username, user.emailKey)
        let fields = try await withConnection { conn -> [String] in
            var fields: Set<String> = []
            for try await (u, e) in try await conn.query(
                "SELECT username, email_key FROM users WHERE (username = \(username) OR email_key = \(emailKey)) AND id <> \(exclude)",
                logger: logger
            ).decode((String, String).self) {
                if u == username { fields.insert("username") }
                if e == emailKey { fields.insert("email") }
            }
            return fields.sorted { $0 == "username" && $1 == "email" }
        }
        return .conflict(fields: fields.isEmpty ? ["id"] : fields)
    }
}

/// Fails fast for a short while after the database stopped answering, so a
/// dead database costs each request microseconds, not a full timeout.
final class CircuitBreaker: Sendable {
    private let openFor: Duration
    private let openUntil = Mutex<ContinuousClock.Instant?>(nil)

    init(openFor: Duration) {
        self.openFor = openFor
    }

    var isOpen: Bool {
        openUntil.withLock { until in
            guard let until else { return false }
            return ContinuousClock.now < until
        }
    }

    func recordFailure() { openUntil.withLock { $0 = .now + openFor } }
    func recordSuccess() { openUntil.withLock { $0 = nil } }
}

/// Connection pool usage as seen from the service: leases in use and
/// requests waiting for one (postgres-nio keeps its own pool counters private).
final class PoolGauges: Sendable {
    private let inUseGauge: Prometheus.Gauge?
    private let waitingGauge: Prometheus.Gauge?
    private let counts = Mutex<(inUse: Int, waiting: Int)>((0, 0))

    init(max: Int, metrics: AppMetrics?) {
        inUseGauge = metrics?.gauge(
            "userapi_db_pool_connections_in_use", help: "Database connections currently leased by requests.")
        waitingGauge = metrics?.gauge(
            "userapi_db_pool_waiting_requests", help: "Requests waiting for a database connection.")
        metrics?.gauge("userapi_db_pool_connections_max", help: "Configured maximum database connections.").set(
            Double(max))
    }

    func inUse(_ delta: Int) {
        let value = counts.withLock { c in
            c.inUse += delta
            return c.inUse
        }
        inUseGauge?.set(Double(value))
    }

    func waiting(_ delta: Int) {
        let value = counts.withLock { c in
            c.waiting += delta
            return c.waiting
        }
        waitingGauge?.set(Double(value))
    }
}

/// Set once a request holds a pooled connection; switches its deadline from
/// the acquire timeout to the statement timeout.
final class LeaseFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// The connection one storage call holds, so that its deadline (or its
/// caller's cancellation) can close it.
///
/// Why: postgres-nio's `query` does not honour task cancellation; it waits
/// for the server's answer. When the server stops answering without closing
/// the connection (network partition, frozen host, a failover that leaves the
/// old address silent), the call and its pooled connection would stay stuck
/// until the kernel gives up on the socket, minutes later, and with every
/// connection stuck the pool could serve nothing even after the database is
/// back. Closing the connection at the deadline fails the query at once and
/// makes the pool open a fresh one.
final class ConnectionLease: Sendable {
    private struct State {
        var connection: PostgresConnection?
        /// The call was given up: its deadline passed or its caller was
        /// cancelled (whether or not it held a connection then).
        var givenUp = false
        /// Giving up closed the connection this call held.
        var abandoned = false
    }

    let started = LeaseFlag()
    private let state = Mutex(State())

    /// Records the connection the call got; false when the call has already
    /// been given up, and then it must not use the connection.
    func hold(_ connection: PostgresConnection) -> Bool {
        let inTime = state.withLock { s in
            guard !s.givenUp else { return false }
            s.connection = connection
            return true
        }
        if inTime { started.set() }
        return inTime
    }

    /// The call is done with the connection; from here on the pool may give
    /// it to another call, so the deadline must no longer touch it.
    func release() {
        state.withLock { $0.connection = nil }
    }

    /// The call is given up: close the connection if it still holds one (a
    /// query on it may never end otherwise). Closing under the lock means
    /// `release()` cannot hand the connection back to the pool between the
    /// check and the close. After `release()` there is nothing to close.
    func abandon() {
        state.withLock { s in
            s.givenUp = true
            guard let connection = s.connection else { return }
            s.abandoned = true
            s.connection = nil
            connection.close().whenComplete { _ in }
        }
    }

    var wasAbandoned: Bool { state.withLock { $0.abandoned } }
}

extension PostgresUserStore {
    /// Whether this store's connections are encrypted, as the server sees them
    /// (`pg_stat_ssl`). For tests and diagnostics.
    package func connectionUsesTLS() async throws -> Bool {
        let logger = self.logger
        return try await withConnection { conn in
            var encrypted = false
            for try await ssl in try await conn.query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger
            ).decode(Bool.self) {
                encrypted = ssl
            }
            return encrypted
        }
    }
}
