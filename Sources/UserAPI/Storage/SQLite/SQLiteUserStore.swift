import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// Settings for the embedded SQLite backend.
public struct SQLiteSettings: Sendable, Equatable {
    public enum Synchronous: String, Sendable, CaseIterable {
        /// fsync on every commit: an acknowledged write survives power loss.
        case full
        /// fsync at checkpoints only: survives a process crash, not a power cut.
        case normal
    }

    public var path: String
    public var synchronous: Synchronous = .full
    public var busyTimeoutMillis: Int = 5000
    public var readers: Int = 2
    public var maxQueuedWrites: Int = 1024
    public var maxBatch: Int = 256
    /// Users kept in memory for reads by id (0 turns the cache off).
    public var cachedUsers: Int = 10_000

    public init(path: String) {
        self.path = path
    }
}

/// `UserStore` on an embedded SQLite file in WAL mode.
///
/// One writer connection owned by a single task applies queued writes in
/// batches (see `SQLiteWriteQueue`); a few reader connections serve reads
/// concurrently with it, as WAL allows. All SQLite calls run on a dedicated
/// thread pool so a slow fsync never blocks the event loops.
public final class SQLiteUserStore: UserStore {
    public let backend = "sqlite"
    public var location: String { "sqlite:\(settings.path)" }

    let settings: SQLiteSettings
    private let threadPool: NIOThreadPool
    private let writer: SQLiteConnection
    private let readers: [SQLiteConnection]
    private let nextReader = Atomic<Int>(0)
    private let queue: SQLiteWriteQueue
    private let writerTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let logger: Logger
    private let closed = Atomic<Bool>(false)
    private let closing = Mutex<Task<Void, Never>?>(nil)
    let cache: UserCache

    static let columns = "id, name, username, email, created_at, updated_at, version"

    private init(
        settings: SQLiteSettings, threadPool: NIOThreadPool, writer: SQLiteConnection,
        readers: [SQLiteConnection], logger: Logger
    ) {
        self.settings = settings
        self.threadPool = threadPool
        self.writer = writer
        self.readers = readers
        self.queue = SQLiteWriteQueue(capacity: settings.maxQueuedWrites)
        self.cache = UserCache(capacity: settings.cachedUsers)
        self.logger = logger
    }

    /// Opens (creating if needed) the database file and its directory.
    public static func open(_ settings: SQLiteSettings, logger: Logger) async throws -> SQLiteUserStore {
        let directory = (settings.path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        }
        let pool = NIOThreadPool(numberOfThreads: settings.readers + 1)
        pool.start()
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        var opened: [SQLiteConnection] = []
        func connect() async throws -> SQLiteConnection {
            let connection = try await SQLiteConnection.open(
                storage: .file(path: settings.path), threadPool: pool, logger: logger, on: eventLoop)
            opened.append(connection)
            // busy_timeout replaces sqlite-nio's spinning busy handler with SQLite's sleeping one.
            _ = try await connection.query("PRAGMA busy_timeout = \(settings.busyTimeoutMillis)")
            return connection
        }
        do {
            let writer = try await connect()
            let mode = try await writer.query("PRAGMA journal_mode = WAL").first?.column("journal_mode")?.string
            guard mode?.lowercased() == "wal" else {
                throw StoreError.unavailable(reason: "could not switch \(settings.path) to WAL mode (got \(mode ?? "nothing"))")
            }
            _ = try await writer.query("PRAGMA synchronous = \(settings.synchronous.rawValue.uppercased())")
            var readers: [SQLiteConnection] = []
            for _ in 0..<settings.readers {
                let reader = try await connect()
                _ = try await reader.query("PRAGMA query_only = ON")
                readers.append(reader)
            }
            let store = SQLiteUserStore(settings: settings, threadPool: pool, writer: writer, readers: readers, logger: logger)
            store.startWriter()
            return store
        } catch {
            for connection in opened { try? await connection.close() }
            try? await pool.shutdownGracefully()
            throw error
        }
    }

    // MARK: Writer

    private func startWriter() {
        let task = Task { [queue, writer, logger, settings] in
            while let batch = await queue.nextBatch(limit: settings.maxBatch) {
                if batch.count < settings.maxBatch {
                    await Self.commit(batch, on: writer, logger: logger)
                } else {
                    // A full batch means writes arrive faster than they commit. Each
                    // statement of a batch resumes this task once, and on the shared
                    // pool every resumption queues behind all request tasks ready to
                    // run: under a flood of requests a batch took seconds and writes
                    // fell to a tenth of the usual rate (README, "Reliability",
                    // overload). Committing ahead of them drains the queue first.
                    // Only for full batches: on one busy core the separate
                    // high-priority threads cost 10-25 % of write throughput.
                    await Task(priority: .high) { await Self.commit(batch, on: writer, logger: logger) }.value
                }
            }
        }
        writerTask.withLock { $0 = task }
    }

    /// Runs `batch` in one transaction. A job that fails on its own (validation,
    /// a unique conflict, a refused precondition) is reported to its caller
    /// while the others commit; SQLite rolls back only the failed statement. Any
    /// other database error aborts the whole batch, because SQLite may then have
    /// rolled the transaction back already and nothing in it can be vouched for.
    private static func commit(_ batch: [PendingWrite], on writer: SQLiteConnection, logger: Logger) async {
        do {
            _ = try await writer.query("BEGIN IMMEDIATE")
        } catch {
            logger.error("sqlite: cannot begin write transaction", metadata: ["error": "\(error)"])
            batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database rejected the write")) }
            return
        }
        for job in batch {
            do {
                job.outcome = .success(try await job.work(writer))
            } catch let error as SQLiteError {
                logger.error("sqlite: write failed, rolling back batch", metadata: ["error": "\(error)"])
                _ = try? await writer.query("ROLLBACK")
                batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database rejected the write")) }
                return
            } catch {
                job.outcome = .failure(error)
            }
        }
        do {
            _ = try await writer.query("COMMIT")
            batch.forEach { $0.finish(batchError: nil) }
        } catch {
            logger.error("sqlite: commit failed", metadata: ["error": "\(error)"])
            _ = try? await writer.query("ROLLBACK")
            batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database could not commit the write")) }
        }
    }

    /// Queues `work` for the writer. `committed` runs on the writer once the
    /// batch has committed, in commit order (see `PendingWrite`).
    private func write<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteConnection) async throws -> T,
        committed: @escaping @Sendable (T) -> Void = { _ in }
    ) async throws -> T {
        let result = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let job = PendingWrite(
                work: { try await work($0) }, committed: { committed($0 as! T) }, continuation: continuation)
            do {
                try queue.enqueue(job)
            } catch {
                continuation.resume(throwing: error)
            }
        }
        return result as! T
    }

    /// Runs a read on the next reader connection (round robin). Storage-level
    /// failures (closed, busy beyond the timeout, I/O) become
    /// `StoreError.unavailable`: a 503 the client can retry, not a 500.
    private func read<T>(_ body: (SQLiteConnection) async throws -> T) async throws -> T {
        guard !closed.load(ordering: .relaxed) else { throw StoreError.unavailable(reason: "the database is closed") }
        let i = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        do {
            return try await body(readers[i % readers.count])
        } catch let error as SQLiteError where error.isUnavailable {
            logger.warning("sqlite: read failed", metadata: ["error": "\(error)"])
            throw StoreError.unavailable(reason: "sqlite: \(error.reason)")
        }
    }

    /// Pending writes; exported as a metric so saturation is visible.
    public var queuedWrites: Int { queue.depth }

    // MARK: UserStore

    public func migrate() async throws -> MigrationReport {
        try await write { conn in
            // The writer already holds BEGIN IMMEDIATE, so a second process
            // migrating the same file waits on the lock, then sees our rows.
            _ = try await conn.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            let current =
                try await conn.query("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
                .first?.column("v")?.integer ?? 0
            var applied: [Int] = []
            for migration in Schema.migrations where migration.version > current {
                for statement in migration.sqlite {
                    _ = try await conn.query(statement)
                }
                _ = try await conn.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .integer(Int(Timestamp.nowMillis()))])
                applied.append(migration.version)
            }
            return MigrationReport(applied: applied, current: max(current, applied.last ?? 0))
        }
    }

    /// The schema version recorded in the file (0 for a new database).
    public func schemaVersion() async throws -> Int {
        try await read { reader in
            let exists =
                try await reader.query(
                    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
                ).first?.column("n")?.integer ?? 0
            guard exists > 0 else { return 0 }
            return try await reader.query("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
                .first?.column("v")?.integer ?? 0
        }
    }

    public func ping() async throws {
        _ = try await read { try await $0.query("SELECT 1") }
    }

    public func list(_ query: UserListQuery) async throws -> [User] {
        var sql = "SELECT \(Self.columns) FROM users"
        var conditions: [String] = []
        var binds: [SQLiteData] = []
        if let after = query.after {
            conditions.append("id > ?")
            binds.append(.text(after))
        }
        if let username = query.username {
            conditions.append("username = ?")
            binds.append(.text(username))
        }
        if let email = query.email {
            conditions.append("email_key = ?")
            binds.append(.text(User.emailKey(email)))
        }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY id LIMIT ?"
        binds.append(.integer(query.limit))
        return try await read { try await $0.query(sql, binds).map(Self.decode) }
    }

    public func get(id: String) async throws -> User? {
        let (cached, generation) = cache.get(id)
        if let cached { return cached }
        let user = try await read {
            try await $0.query("SELECT \(Self.columns) FROM users WHERE id = ?", [.text(id)]).first.map(Self.decode)
        }
        if let user { cache.fill(user, readAt: generation) }
        return user
    }

    public func create(_ user: User) async throws -> User {
        let cache = self.cache
        return try await write { conn in
            do {
                _ = try await conn.query(
                    "INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    Self.binds(user))
            } catch let error as SQLiteError where error.isConstraintViolation {
                throw try await Self.conflict(for: user, excluding: nil, on: conn)
            }
            return user
        } committed: {
            cache.store($0)
        }
    }

    public func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        let cache = self.cache
        return try await write { conn in
            guard
                let current = try await conn.query("SELECT \(Self.columns) FROM users WHERE id = ?", [.text(id)])
                    .first.map(Self.decode)
            else { throw StoreError.notFound }
            let fields = try change(current)
            if fields == UserFields(current) { return current }
            var updated = current
            updated.name = fields.name
            updated.username = fields.username
            updated.email = fields.email
            updated.updatedAt = max(Timestamp.nowMillis(), current.updatedAt)
            updated.version = current.version + 1
            do {
                _ = try await conn.query(
                    "UPDATE users SET name = ?, username = ?, email = ?, email_key = ?, updated_at = ?, version = ? WHERE id = ?",
                    [
                        .text(updated.name), .text(updated.username), .text(updated.email), .text(updated.emailKey),
                        .integer(Int(updated.updatedAt)), .integer(Int(updated.version)), .text(id),
                    ])
            } catch let error as SQLiteError where error.isConstraintViolation {
                throw try await Self.conflict(for: updated, excluding: id, on: conn)
            }
            return updated
        } committed: {
            cache.store($0)
        }
    }

    public func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        let cache = self.cache
        try await write { conn in
            guard
                let current = try await conn.query("SELECT \(Self.columns) FROM users WHERE id = ?", [.text(id)])
                    .first.map(Self.decode)
            else { throw StoreError.notFound }
            try check(current)
            _ = try await conn.query("DELETE FROM users WHERE id = ?", [.text(id)])
        } committed: {
            cache.remove(id)
        }
    }

    public func importUsers(_ users: [User]) async throws -> Int {
        guard !users.isEmpty else { return 0 }
        // Whatever happened, the rows may have changed: start the cache afresh.
        defer { cache.clear() }
        return try await write { conn in
            var written = 0
            for user in users {
                do {
                    let rows = try await conn.query(
                        """
                        INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET name = excluded.name, username = excluded.username,
                            email = excluded.email, email_key = excluded.email_key, created_at = excluded.created_at,
                            updated_at = excluded.updated_at, version = excluded.version
                        WHERE excluded.version > users.version
                        RETURNING id
                        """, Self.binds(user))
                    written += rows.count
                } catch let error as SQLiteError where error.isConstraintViolation {
                    throw ImportConflict(id: user.id, error: try await Self.conflict(for: user, excluding: user.id, on: conn))
                }
            }
            return written
        }
    }

    public func count() async throws -> Int {
        try await read { try await $0.query("SELECT count(*) AS n FROM users").first?.column("n")?.integer ?? 0 }
    }

    /// Reads users in id order for `db copy`, `limit` at a time.
    public func page(after: String?, limit: Int) async throws -> [User] {
        try await list(UserListQuery(limit: limit, after: after))
    }

    public func run() async throws {
        // Returns on graceful shutdown, throws on cancellation: close either way.
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Idempotent; every caller waits until the store is fully closed.
    public func shutdown() async {
        // Closing must complete even when the caller was cancelled (sqlite-nio
        // refuses work from cancelled tasks), or queued writes and open file
        // handles would be abandoned: run it in a task of its own.
        let task = closing.withLock { current -> Task<Void, Never> in
            if let current { return current }
            closed.store(true, ordering: .relaxed)
            let task = Task { await self.closeEverything() }
            current = task
            return task
        }
        await task.value
    }

    private func closeEverything() async {
        queue.close()
        await writerTask.withLock { $0 }?.value
        // Fold the WAL back into the main file so the directory holds one file at rest.
        _ = try? await writer.query("PRAGMA wal_checkpoint(TRUNCATE)")
        for connection in readers + [writer] {
            do {
                try await connection.close()
            } catch {
                logger.error("sqlite: closing a connection failed", metadata: ["error": "\(error)"])
            }
        }
        try? await threadPool.shutdownGracefully()
        logger.info("sqlite: closed", metadata: ["path": "\(settings.path)"])
    }

    // MARK: Rows

    static func binds(_ user: User) -> [SQLiteData] {
        [
            .text(user.id), .text(user.name), .text(user.username), .text(user.email), .text(user.emailKey),
            .integer(Int(user.createdAt)), .integer(Int(user.updatedAt)), .integer(Int(user.version)),
        ]
    }

    static func decode(_ row: SQLiteRow) -> User {
        let c = row.columns
        return User(
            id: c[0].data.string ?? "",
            name: c[1].data.string ?? "",
            username: c[2].data.string ?? "",
            email: c[3].data.string ?? "",
            createdAt: Int64(c[4].data.integer ?? 0),
            updatedAt: Int64(c[5].data.integer ?? 0),
            version: Int64(c[6].data.integer ?? 0))
    }

    /// Works out which unique fields `user` collides on, for a 409 that names them all.
    private static func conflict(for user: User, excluding id: String?, on conn: SQLiteConnection) async throws -> StoreError {
        let rows = try await conn.query(
            "SELECT username, email_key FROM users WHERE (username = ? OR email_key = ?) AND id <> ?",
            [.text(user.username), .text(user.emailKey), .text(id ?? "")])
        var fields: [String] = []
        if rows.contains(where: { $0.column("username")?.string == user.username }) { fields.append("username") }
        if rows.contains(where: { $0.column("email_key")?.string == user.emailKey }) { fields.append("email") }
        return .conflict(fields: fields.isEmpty ? ["id"] : fields)
    }
}

/// A user in the source of `db copy` whose username or email belongs to a
/// different user in the target.
public struct ImportConflict: Error, Sendable {
    public var id: String
    public var error: StoreError
}

extension SQLiteError {
    /// Failures of the storage itself rather than of the statement: lock
    /// timeouts, I/O, a full disk, a file that cannot be opened, a closed connection.
    var isUnavailable: Bool {
        switch reason {
        case .error, .mismatch, .range, .tooBig, .constraint, .constraintUniqueFailed, .constraintPrimaryKeyFailed,
            .constraintNotNullFailed, .constraintCheckFailed, .schema:
            false
        default: true
        }
    }

    var isConstraintViolation: Bool {
        switch reason {
        case .constraint, .constraintUniqueFailed, .constraintPrimaryKeyFailed: true
        default: false
        }
    }
}
