import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Prometheus
import ServiceLifecycle
import Synchronization

/// `UserStore` on PostgreSQL through postgres-nio's pooled `PostgresClient`,
/// on the server's event loops. Request-path statements are prepared once per
/// connection (`PostgresPreparedStatement`).
///
/// Failures of a managed database become `StoreError.unavailable` (503, never
/// a 500 with a driver message). The server bounds each statement
/// (`statement_timeout`); a connection whose server stops answering
/// altogether is closed at the same deadline or when the caller is
/// cancelled, and the pool opens a fresh one. While the database is
/// unreachable, postgres-nio's pool fails waiting requests once connecting
/// has failed for `database.connect_timeout`.
public final class PostgresUserStore: UserStore {
    public let backend = "postgres"
    public let location: String

    private let client: PostgresClient
    /// The same settings for one connection outside the pool (`connectDirectly`).
    private let direct: PostgresConnection.Configuration
    private let logger: Logger
    private let timeout: TimeAmount
    private let acquireTimeout: Duration
    private let maxConnections: Int
    private let pool: PoolGauges
    private let eventLoops: any EventLoopGroup
    /// After a connection-level failure, calls fail at once for a second
    /// instead of each waiting for a dead database.
    private let breaker = CircuitBreaker(openFor: .seconds(1))
    public let changes = ChangeSignal()
    /// The NOTIFY channel every write's event is announced on.
    static let eventChannel = "userapi_events"

    /// Arbitrary constant naming the migration lock among all advisory locks.
    static let migrationLockKey: Int64 = 0x7573_6572_6170_6931

    private init(
        client: PostgresClient, direct: PostgresConnection.Configuration, location: String,
        config: AppConfig.Database, logger: Logger, pool: PoolGauges, eventLoops: any EventLoopGroup
    ) {
        self.eventLoops = eventLoops
        self.client = client
        self.direct = direct
        self.location = location
        self.timeout = .nanoseconds(Int64(config.statementTimeout.seconds * 1e9))
        self.acquireTimeout = config.acquireTimeout
        self.maxConnections = config.poolSize
        self.logger = logger
        self.pool = pool
    }

    public static func make(
        url: DatabaseURL.PostgresURL, config: AppConfig.Database, logger: Logger, metrics: AppMetrics?,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
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
            host: url.host, port: url.port, username: url.user, password: password, database: url.database,
            tls: tls.map { .require($0) } ?? .disable)
        configuration.options.maximumConnections = config.poolSize
        configuration.options.connectTimeout = config.connectTimeout
        // Each time a connection goes idle, the pool arms a timer (a Task.sleep) for the idle
        // timeout and one for the keep-alive; on Linux a sleep that is cancelled by the next
        // lease holds its timer until it would have fired, so long timeouts grow memory under
        // load. Hence no keep-alive pings and a short idle timeout: a connection that died while
        // idle fails its next statement (a 503), and idle ones are closed after 10 s.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = config.idleConnectionTimeout
        // Server-side bound as well, so an abandoned statement does not keep running.
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(config.statementTimeout.milliseconds)"),
            ("application_name", "userapi"),
        ]
        let client = PostgresClient(configuration: configuration, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
        var direct = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: password, database: url.database,
            tls: try tls.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable)
        direct.options.connectTimeout = TimeAmount.nanoseconds(Int64(config.connectTimeout.seconds * 1e9))
        let location = "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"
        return PostgresUserStore(
            client: client, direct: direct, location: location, config: config, logger: logger,
            pool: PoolGauges(max: config.poolSize, metrics: metrics), eventLoops: eventLoopGroup)
    }

    /// The TLS settings for `mode`, or nil for plain text.
    static func tls(mode: AppConfig.Database.TLSMode, sslModeInURL: String?, caFile: String?) throws -> TLSConfiguration? {
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
            return nil
        case .require:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            return tls
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
            return tls
        }
    }

    /// Opens and closes one connection outside the pool, throwing the driver's
    /// own error (refused, TLS, authentication): the pool only says that
    /// connecting failed, not why.
    package func connectDirectly() async throws {
        let connection = try await PostgresConnection.connect(configuration: direct, id: 0, logger: logger)
        try await connection.close()
    }

    /// Tries a connection up to `attempts` times, a second apart; logs each
    /// failure with its cause and throws the last one as unavailable.
    func waitUntilReachable(attempts: Int) async throws {
        for attempt in 1...max(1, attempts) {
            do {
                try await connectDirectly()
                return
            } catch let error as CancellationError {
                throw error
            } catch {
                let cause = Self.describeConnectFailure(error)
                guard attempt < attempts else {
                    logger.error(
                        "postgres: cannot connect, giving up", metadata: ["attempts": "\(attempts)", "error": "\(cause)"])
                    throw StoreError.unavailable(reason: "cannot connect to \(location) after \(attempts) attempts: \(cause)")
                }
                logger.warning(
                    "postgres: cannot connect yet, retrying", metadata: ["attempt": "\(attempt)", "error": "\(cause)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The driver's reason for a failed connection, without the password.
    static func describeConnectFailure(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        return error.underlying.map { "\($0)" } ?? "\(error.code)"
    }

    // MARK: Plumbing

    /// Runs `body` on a pooled connection, in a task of its own, and answers
    /// with the first of: its result; a 503 when no connection is leased within
    /// `database.acquire_timeout` (the pool may be full, or reconnecting to a
    /// server that is down or frozen, and waits for either without a limit); a
    /// 503 at the statement timeout; the caller's cancellation. The last two
    /// close the connection: postgres-nio's queries do not end on cancellation,
    /// and a server that stopped answering would hold them until the kernel
    /// gives up on the socket. The caller never waits for the driver to notice
    /// (a query written to a channel that has just closed is never completed).
    /// Both deadlines are timers on NIO's event loops, cancelled when the call ends.
    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws
        -> T
    {
        if breaker.isOpen { throw StoreError.unavailable(reason: "postgres failed a moment ago; failing fast") }
        let call = PooledCall<T>()
        let work = Task { await self.run(call, body) }
        let acquiring = eventLoops.any().scheduleTask(in: .nanoseconds(Int64(acquireTimeout.seconds * 1e9))) {
            guard call.abandonIfWaiting() else { return }
            call.answer(.failure(DeadlineExceeded()))
            work.cancel()
        }
        defer { acquiring.cancel() }
        do {
            do {
                return try await withTaskCancellationHandler {
                    try await call.value()
                } onCancel: {
                    call.answer(.failure(CancellationError()))
                    work.cancel()
                    call.abandon()?.close().whenComplete { _ in }
                }
            } catch {
                // Gone from the pool before the caller goes on: a call that comes next
                // gets a new connection instead of waiting for this one.
                if let connection = call.abandonedConnection { _ = try? await connection.close().get() }
                throw error
            }
        } catch is DeadlineExceeded {
            throw StoreError.unavailable(reason: "no database connection became available within \(acquireTimeout)")
        } catch StoreError.unavailable(let reason) {
            breaker.recordFailure()
            throw StoreError.unavailable(reason: reason)
        }
    }

    /// The task of one call: leases a connection, runs `body` on it under the
    /// statement timeout and answers with what it returns or throws.
    private func run<T: Sendable>(_ call: PooledCall<T>, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async
    {
        let (logger, timeout) = (self.logger, self.timeout)
        do {
            let value = try await leased { connection in
                guard call.lease(connection) else { throw CancellationError() }
                let deadline = connection.eventLoop.scheduleTask(in: timeout) {
                    guard call.abandon() != nil else { return }
                    logger.warning("postgres did not answer within the statement timeout; closed the connection")
                    call.answer(
                        .failure(StoreError.unavailable(reason: "postgres did not answer within \(Self.describe(timeout))")))
                    connection.close().whenComplete { _ in }
                }
                defer { deadline.cancel() }
                let result: Result<T, any Error>
                do { result = .success(try await body(connection)) } catch { result = .failure(error) }
                // Closed, not only closing, before it goes back: the pool must not lend it again.
                if call.isAbandoned { _ = try? await connection.close().get() }
                return try result.get()
            }
            call.answer(.success(value))
        } catch {
            call.answer(.failure(error))
        }
    }

    private func leased<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        pool.waiting(+1)
        var leased = false
        defer { if !leased { pool.waiting(-1) } }
        do {
            return try await client.withConnection { connection in
                leased = true
                pool.waiting(-1)
                pool.inUse(+1)
                defer { pool.inUse(-1) }
                // The pool can hand out a connection that a deadline closed a moment ago.
                if connection.isClosed { throw StoreError.unavailable(reason: "the pooled connection had just closed") }
                return try await body(connection)
            }
        } catch let error as PSQLError {
            // Abandoned calls closed their connection on purpose; nobody hears of it.
            try Task.checkCancellation()
            if Self.isUnavailable(error) {
                logger.warning("postgres unavailable", metadata: ["error": "\(Self.describe(error))"])
                throw StoreError.unavailable(reason: Self.describe(error))
            }
            throw error
        } catch let error as StoreError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            try Task.checkCancellation()
            // The pool's own errors (e.g. it gave up connecting): no connection to be had.
            logger.warning("postgres unavailable", metadata: ["error": "\(error)"])
            throw StoreError.unavailable(reason: "no database connection: \(error)")
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

    static func describe(_ time: TimeAmount) -> String { "\(time.nanoseconds / 1_000_000)ms" }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    // MARK: UserStore

    public func run() async throws {
        // The pool runs until graceful shutdown cancels it; by then the HTTP
        // server has stopped, so no request is cut off.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.listenForEvents() }
                await self.client.run()
                group.cancelAll()
            }
        }
    }

    /// LISTENs on a connection of its own (outside the pool) and wakes the
    /// feed for every replica's commits; reconnects after a second when the
    /// connection is lost. The feed reads the events table, so a notification
    /// missed meanwhile delays an event, never loses it.
    private func listenForEvents() async {
        let (changes, logger) = (self.changes, self.logger)
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: direct, id: 1, logger: logger)
                do {
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: Self.eventChannel) { notifications in
                            changes.notify()  // events may have come while nobody listened
                            for try await _ in notifications { changes.notify() }
                        }
                    } onCancel: {
                        connection.close().whenComplete { _ in }
                    }
                } catch {
                    // A connection must be closed, not only released, before it goes away.
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                logger.debug("postgres: event listener lost its connection", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    public func shutdown() async {}

    public func migrate() async throws -> MigrationReport {
        let logger = self.logger
        return try await client.withConnection { conn in
            try await conn.query("BEGIN", logger: logger)
            do {
                // Migrations may outlive the request statement timeout, and replicas
                // starting together wait here for the first one to finish.
                try await conn.query("SET LOCAL statement_timeout = '5min'", logger: logger)
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                try await conn.query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    logger: logger)
                let current =
                    try await conn.query(
                        "SELECT coalesce(max(version), 0)::integer FROM schema_migrations", logger: logger
                    ).collect().first?.decode(Int.self) ?? 0
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

    public func schemaVersion() async throws -> Int {
        let logger = self.logger
        return try await withConnection { conn in
            let exists =
                try await conn.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            guard exists else { return 0 }
            return try await conn.query("SELECT coalesce(max(version), 0)::integer FROM schema_migrations", logger: logger)
                .collect().first?.decode(Int.self) ?? 0
        }
    }

    public func ping() async throws {
        let logger = self.logger
        try await withConnection { conn in
            _ = try await conn.query("SELECT 1", logger: logger).collect()
        }
    }

    public func list(_ query: UserListQuery) async throws -> [User] {
        // username and the email key are unique: such a filter matches at most one user.
        let filtered: [User]
        if let username = query.username {
            filtered = try await one(SelectUserByUsername(username: username))
        } else if let email = query.email {
            filtered = try await one(SelectUserByEmailKey(emailKey: User.emailKey(email)))
        } else if let (from, to) = query.searchRange {
            let after = try query.after.map { try Self.uuid($0) } ?? UUID(uuid: UUID.zero)
            let statement = SearchUsers(from: from, to: to, after: after, limit: query.limit)
            let logger = self.logger
            return try await withConnection { conn in try await conn.execute(statement, logger: logger).collectAll() }
        } else {
            let after = try query.after.map { try Self.uuid($0) } ?? UUID(uuid: UUID.zero)
            let statement = ListUsers(after: after, limit: query.limit)
            let logger = self.logger
            return try await withConnection { conn in try await conn.execute(statement, logger: logger).collectAll() }
        }
        return filtered.filter { user in
            user.id > (query.after ?? "") && (query.email.map { user.emailKey == User.emailKey($0) } ?? true)
        }
    }

    public func get(id: String) async throws -> User? {
        guard let uuid = UUID(uuidString: id) else { return nil }
        return try await one(SelectUser(id: uuid)).first
    }

    private func one<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws -> [User]
    where Statement.Row == User {
        let logger = self.logger
        return try await withConnection { conn in
            try await conn.execute(statement, logger: logger).collectAll()
        }
    }

    public func create(_ user: User) async throws -> User {
        let statement = InsertUser(user: user, event: .recording(.created, user))
        let logger = self.logger
        do {
            try await withConnection { conn in
                _ = try await conn.execute(statement, logger: logger).collectAll()
            }
            return user
        } catch  where Self.isUniqueViolation(error) {
            throw try await conflict(for: user)
        }
    }

    /// Optimistic: the write applies only to the version `change` saw; if
    /// someone changed the user in between, it runs again on the newer one.
    public func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        while true {
            guard let current = try await get(id: id) else { throw StoreError.notFound }
            let updated = current.updated(with: try change(current))
            if updated == current { return current }
            let statement = UpdateUser(user: updated, expectedVersion: current.version, event: .recording(.updated, updated))
            let logger = self.logger
            do {
                let rows = try await withConnection { conn in try await conn.execute(statement, logger: logger).collectAll() }
                if rows.count == 1 { return updated }
            } catch  where Self.isUniqueViolation(error) {
                throw try await conflict(for: updated)
            }
        }
    }

    public func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        while true {
            guard let current = try await get(id: id), let uuid = UUID(uuidString: id) else { throw StoreError.notFound }
            try check(current)
            let statement = DeleteUser(id: uuid, expectedVersion: current.version, at: Timestamp.nowMillis())
            let logger = self.logger
            let rows = try await withConnection { conn in try await conn.execute(statement, logger: logger).collectAll() }
            if rows.count == 1 { return }
        }
    }

    public func importUsers(_ users: [User]) async throws -> Int {
        guard !users.isEmpty else { return 0 }
        let logger = self.logger
        let current = Mutex<User?>(nil)
        do {
            return try await withConnection { conn in
                try await conn.query("BEGIN", logger: logger)
                do {
                    var written = 0
                    for user in users {
                        current.withLock { $0 = user }
                        written += try await conn.execute(UpsertUser(user: user), logger: logger).collectAll().count
                    }
                    try await conn.query("COMMIT", logger: logger)
                    return written
                } catch {
                    _ = try? await conn.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch  where Self.isUniqueViolation(error) {
            guard let user = current.withLock({ $0 }) else { throw error }
            throw ImportConflict(id: user.id, error: try await conflict(for: user))
        }
    }

    public func events(after seq: Int64, limit: Int) async throws -> [UserEvent] {
        let statement = SelectEvents(after: seq, limit: limit)
        let logger = self.logger
        return try await withConnection { conn in try await conn.execute(statement, logger: logger).collectAll() }
    }

    public func eventBounds() async throws -> EventBounds {
        let logger = self.logger
        return try await withConnection { conn in
            let row = try await conn.query(
                "SELECT (SELECT min(seq) FROM events), (SELECT seq FROM event_counter)", logger: logger
            ).collect().first
            let (oldest, latest) = try row?.decode((Int64?, Int64).self) ?? (nil, Int64(0))
            return EventBounds(oldest: oldest, latest: latest)
        }
    }

    public func pruneEvents(before cutoff: Int64, keep: Int) async throws -> Int {
        let logger = self.logger
        let (cutoffDate, keep) = (PostgresUserRow.date(cutoff), Int64(keep))
        return try await withConnection { conn in
            try await conn.query(
                "DELETE FROM events WHERE at < \(cutoffDate) OR seq <= (SELECT seq FROM event_counter) - \(keep) RETURNING seq",
                logger: logger
            ).collect().count
        }
    }

    public func count() async throws -> Int {
        let logger = self.logger
        return try await withConnection { conn in
            try await conn.query("SELECT count(*)::bigint FROM users", logger: logger).collect().first?.decode(Int.self) ?? 0
        }
    }

    private func conflict(for user: User) async throws -> StoreError {
        let logger = self.logger
        let (username, emailKey, id) = (user.username, user.emailKey, try Self.uuid(user.id))
        let taken = try await withConnection { conn in
            try await conn.query(
                "SELECT username, email_key FROM users WHERE (username = \(username) OR email_key = \(emailKey)) AND id <> \(id)",
                logger: logger
            ).decode((String, String).self).collectAll()
        }
        return UserColumns.conflicts(of: user, with: taken.map { (username: $0.0, emailKey: $0.1) })
    }

    static func uuid(_ id: String) throws -> UUID {
        guard let uuid = UUID(uuidString: id) else { throw StoreError.notFound }
        return uuid
    }

    /// Whether this store's connections are encrypted, as the server sees them
    /// (`pg_stat_ssl`). For tests and diagnostics.
    package func connectionUsesTLS() async throws -> Bool {
        let logger = self.logger
        return try await withConnection { conn in
            try await conn.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
        }
    }

    /// Connections leased by calls right now. For tests.
    package var leasedConnections: Int { pool.inUse }

    /// Calls waiting for a connection right now. For tests.
    package var waitingCalls: Int { pool.waiting }

    /// The server process behind one pooled connection. For tests.
    package func backendPID() async throws -> Int {
        let logger = self.logger
        return try await withConnection { conn in
            try await conn.query("SELECT pg_backend_pid()", logger: logger).collect().first?.decode(Int.self) ?? 0
        }
    }

    /// Holds a pooled connection until `body` returns: for tests of what a
    /// stuck connection does to the pool.
    package func holdingConnection<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withConnection { _ in try await body() }
    }

    /// `body` on a pooled connection, as every call runs. For tests of the driver's corner cases.
    package func onPooledConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws
        -> T
    {
        try await withConnection(body)
    }
}

// MARK: Rows and statements

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
}

/// One call's progress, shared by its caller, its task and its deadlines:
/// whether it holds a connection, and its answer.
final class PooledCall<T: Sendable>: Sendable {
    private enum Phase {
        case waiting
        case leased(PostgresConnection)
        /// With the connection it held, if any, which whoever abandoned it closes.
        case abandoned(PostgresConnection?)
    }
    private let phase = Mutex<Phase>(.waiting)
    private let outcome = FirstOutcome<T>()

    func answer(_ result: Result<T, any Error>) { outcome.deliver(result) }

    func value() async throws -> T { try await outcome.value() }

    /// Gives the call `connection`; false if it was abandoned meanwhile.
    func lease(_ connection: PostgresConnection) -> Bool {
        phase.withLock { phase in
            guard case .waiting = phase else { return false }
            phase = .leased(connection)
            return true
        }
    }

    /// Abandons the call if it is still waiting for a connection.
    func abandonIfWaiting() -> Bool {
        phase.withLock { phase in
            guard case .waiting = phase else { return false }
            phase = .abandoned(nil)
            return true
        }
    }

    /// Abandons the call; returns its connection if it held one and was not abandoned before.
    func abandon() -> PostgresConnection? {
        phase.withLock { phase in
            switch phase {
            case .waiting:
                phase = .abandoned(nil)
                return nil
            case .leased(let connection):
                phase = .abandoned(connection)
                return connection
            case .abandoned:
                return nil
            }
        }
    }

    var isAbandoned: Bool { phase.withLock { if case .abandoned = $0 { true } else { false } } }

    /// The connection the call held when it was abandoned.
    var abandonedConnection: PostgresConnection? {
        phase.withLock { if case .abandoned(let connection) = $0 { connection } else { nil } }
    }
}

/// The first of several racing results, for one caller waiting on it; later ones are dropped.
final class FirstOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case delivered(Result<T, any Error>)
        case taken
    }
    private let state = Mutex<State>(.pending)

    func deliver(_ result: Result<T, any Error>) {
        let waiter: CheckedContinuation<T, any Error>? = state.withLock { state in
            switch state {
            case .pending:
                state = .delivered(result)
                return nil
            case .waiting(let continuation):
                state = .taken
                return continuation
            case .delivered, .taken:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<T, any Error>? = state.withLock { state in
                guard case .delivered(let result) = state else {
                    state = .waiting(continuation)
                    return nil
                }
                state = .taken
                return result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

extension AsyncSequence {
    /// Every element, in order.
    func collectAll() async throws -> [Element] {
        var elements: [Element] = []
        for try await element in self { elements.append(element) }
        return elements
    }
}

extension UUID {
    static let zero: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

/// The `users` row of a user, by `UserColumns`: both ways, by column name.
enum PostgresUserRow {
    static let select = "SELECT \(UserColumns.list) FROM users"
    static let insert = "INSERT INTO users (\(UserColumns.list)) VALUES (\(UserColumns.placeholders(numbered: true)))"

    static func bindings(_ user: User) throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: UserColumns.names.count)
        bindings.append(try PostgresUserStore.uuid(user.id))
        for field in UserFields.all { bindings.append(field.get(user.fields)) }
        bindings.append(user.emailKey)
        bindings.append(date(user.createdAt))
        bindings.append(date(user.updatedAt))
        bindings.append(user.version)
        return bindings
    }

    static func user(_ row: PostgresRow) throws -> User {
        let cells = row.makeRandomAccess()
        var fields = UserFields()
        for field in UserFields.all { field.set(try cells[field.name].decode(String?.self), in: &fields) }
        return User(
            id: try cells["id"].decode(UUID.self).uuidString.lowercased(), fields: fields,
            createdAt: millis(try cells["created_at"].decode(Date.self)),
            updatedAt: millis(try cells["updated_at"].decode(Date.self)), version: try cells["version"].decode(Int64.self))
    }

    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
}

struct SelectUser: PostgresPreparedStatement {
    static let sql = PostgresUserRow.select + " WHERE id = $1"
    let id: UUID
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(id)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> User { try PostgresUserRow.user(row) }
}

struct SelectUserByUsername: PostgresPreparedStatement {
    static let sql = PostgresUserRow.select + " WHERE username = $1"
    let username: String
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(username)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> User { try PostgresUserRow.user(row) }
}

struct SelectUserByEmailKey: PostgresPreparedStatement {
    static let sql = PostgresUserRow.select + " WHERE email_key = $1"
    let emailKey: String
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(emailKey)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> User { try PostgresUserRow.user(row) }
}

struct ListUsers: PostgresPreparedStatement {
    static let sql = PostgresUserRow.select + " WHERE id > $1 ORDER BY id LIMIT $2"
    let after: UUID
    let limit: Int
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(after)
        bindings.append(limit)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> User { try PostgresUserRow.user(row) }
}

struct SearchUsers: PostgresPreparedStatement {
    static let sql =
        PostgresUserRow.select
        + #" WHERE ((lower(name) COLLATE "C" >= $1 AND lower(name) COLLATE "C" < $2)"#
        + #" OR (username COLLATE "C" >= $1 AND username COLLATE "C" < $2)"#
        + #" OR (email_key COLLATE "C" >= $1 AND email_key COLLATE "C" < $2)) AND id > $3 ORDER BY id LIMIT $4"#
    let from: String
    let to: String
    let after: UUID
    let limit: Int
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(from)
        bindings.append(to)
        bindings.append(after)
        bindings.append(limit)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> User { try PostgresUserRow.user(row) }
}

/// A change and its event in one statement, so neither is ever without the
/// other. The event's seq comes from `event_counter`, whose row lock is held
/// to the commit: seqs are handed out in commit order. Every replica hears
/// of it through NOTIFY (sent at the commit). Answers the seq when the change
/// was made; no row when the user's version had moved on.
enum EventStatement {
    static func sql(change: String, kind: UserEvent.Kind, id: String, user: String, at: String) -> String {
        """
        WITH u AS (\(change) RETURNING id),
        c AS (UPDATE event_counter SET seq = seq + 1 WHERE EXISTS (SELECT 1 FROM u) RETURNING seq),
        e AS (INSERT INTO events (seq, type, user_id, "user", at)
              SELECT c.seq, '\(kind.rawValue)', \(id), \(user), \(at) FROM c RETURNING seq)
        SELECT seq, pg_notify('\(PostgresUserStore.eventChannel)', '')::text AS notified FROM e
        """
    }

    static func seq(_ row: PostgresRow) throws -> Int64 { try row.makeRandomAccess()["seq"].decode(Int64.self) }

    static func append(_ event: UserEvent, to bindings: inout PostgresBindings) {
        bindings.append(event.user.map { String(decoding: $0, as: UTF8.self) })
        bindings.append(PostgresUserRow.date(event.at))
    }
}

struct InsertUser: PostgresPreparedStatement {
    static let count = UserColumns.names.count
    static let sql = EventStatement.sql(
        change: PostgresUserRow.insert, kind: .created, id: "$1", user: "$\(count + 1)", at: "$\(count + 2)")
    let user: User
    let event: UserEvent
    func makeBindings() throws -> PostgresBindings {
        var bindings = try PostgresUserRow.bindings(user)
        EventStatement.append(event, to: &bindings)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int64 { try EventStatement.seq(row) }
}

struct UpsertUser: PostgresPreparedStatement {
    static let sql =
        PostgresUserRow.insert
        + " ON CONFLICT (id) DO UPDATE SET \(UserColumns.fromExcluded) WHERE users.version < excluded.version RETURNING id"
    let user: User
    func makeBindings() throws -> PostgresBindings { try PostgresUserRow.bindings(user) }
    func decodeRow(_ row: PostgresRow) throws -> UUID { try row.decode(UUID.self) }
}

/// Every column from the user (`$1` is the id), if the row is still at `expectedVersion`.
struct UpdateUser: PostgresPreparedStatement {
    static let count = UserColumns.names.count
    static let sql = EventStatement.sql(
        change: "UPDATE users SET "
            + UserColumns.names.enumerated().dropFirst().map { "\($0.element) = $\($0.offset + 1)" }.joined(separator: ", ")
            + " WHERE id = $1 AND version = $\(count + 1)",
        kind: .updated, id: "$1", user: "$\(count + 2)", at: "$\(count + 3)")
    let user: User
    let expectedVersion: Int64
    let event: UserEvent
    func makeBindings() throws -> PostgresBindings {
        var bindings = try PostgresUserRow.bindings(user)
        bindings.append(expectedVersion)
        EventStatement.append(event, to: &bindings)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int64 { try EventStatement.seq(row) }
}

struct DeleteUser: PostgresPreparedStatement {
    static let sql = EventStatement.sql(
        change: "DELETE FROM users WHERE id = $1 AND version = $2", kind: .deleted, id: "$1", user: "NULL::text",
        at: "$3")
    let id: UUID
    let expectedVersion: Int64
    let at: Int64
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(id)
        bindings.append(expectedVersion)
        bindings.append(PostgresUserRow.date(at))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int64 { try EventStatement.seq(row) }
}

struct SelectEvents: PostgresPreparedStatement {
    static let sql = #"SELECT seq, type, user_id, "user", at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"#
    let after: Int64
    let limit: Int
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(after)
        bindings.append(limit)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> UserEvent {
        let (seq, type, id, user, at) = try row.decode((Int64, String, UUID, String?, Date).self)
        return UserEvent(
            seq: seq, kind: UserEvent.Kind(rawValue: type) ?? .updated, id: id.uuidString.lowercased(),
            user: user.map { Array($0.utf8) }, at: PostgresUserRow.millis(at))
    }
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

    var inUse: Int { counts.withLock { $0.inUse } }
    var waiting: Int { counts.withLock { $0.waiting } }

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
