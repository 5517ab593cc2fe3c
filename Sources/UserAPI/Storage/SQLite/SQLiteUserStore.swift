import Foundation
import Logging
import NIOCore
import NIOPosix
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
/// One writer connection on a thread of its own applies queued writes in
/// batches, one transaction each (see `SQLiteWriteQueue`); a few reader
/// connections on threads of their own serve reads concurrently with it, as
/// WAL allows (`SQLiteReaderPool`). No SQLite call runs on an event loop or the
/// cooperative pool, so a slow fsync or disk read blocks only its own thread.
/// The connections are `SQLiteHandle`s: our binding over sqlite-nio's SQLite,
/// with prepared statements kept per connection.
public final class SQLiteUserStore: UserStore {
    public let backend = "sqlite"
    public var location: String { "sqlite:\(settings.path)" }

    let settings: SQLiteSettings
    private let writerThread: NIOThreadPool
    private let writer: SQLiteHandle
    private let readers: SQLiteReaderPool
    private let queue: SQLiteWriteQueue
    private let writerTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let logger: Logger
    private let closed = Atomic<Bool>(false)
    private let closing = Mutex<Task<Void, Never>?>(nil)
    let cache: UserCache

    static let columns = "id, name, username, email, created_at, updated_at, version"

    private init(
        settings: SQLiteSettings, writerThread: NIOThreadPool, writer: SQLiteHandle, readers: SQLiteReaderPool,
        logger: Logger
    ) {
        self.settings = settings
        self.writerThread = writerThread
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
        let writerThread = NIOThreadPool(numberOfThreads: 1)
        writerThread.start()
        do {
            try await StorageThreads.lowerPriority(of: writerThread, threads: 1)
            let writer = try await writerThread.runIfActive {
                let writer = try SQLiteHandle(path: settings.path)
                do {
                    try writer.execute("PRAGMA busy_timeout = \(settings.busyTimeoutMillis)")
                    // journal_mode answers with the mode it is in, which stays the
                    // old one when the switch is impossible (e.g. a read-only directory).
                    let mode = try writer.withStatement("PRAGMA journal_mode = WAL") { try $0.step() ? $0.text(0) : "" }
                    guard mode.lowercased() == "wal" else {
                        throw StoreError.unavailable(
                            reason: "could not switch \(settings.path) to WAL mode (got \(mode.isEmpty ? "nothing" : mode))")
                    }
                    try writer.execute("PRAGMA synchronous = \(settings.synchronous.rawValue.uppercased())")
                } catch {
                    writer.close()
                    throw error
                }
                return writer
            }
            do {
                let readers = try await SQLiteReaderPool.open(
                    path: settings.path, count: settings.readers, busyTimeoutMillis: settings.busyTimeoutMillis)
                let store = SQLiteUserStore(
                    settings: settings, writerThread: writerThread, writer: writer, readers: readers, logger: logger)
                store.startWriter()
                return store
            } catch {
                try? await writerThread.runIfActive { writer.close() }
                throw error
            }
        } catch let error as SQLiteCallError {
            try? await writerThread.shutdownGracefully()
            throw StoreError.unavailable(reason: "sqlite: \(error.message)")
        } catch {
            try? await writerThread.shutdownGracefully()
            throw error
        }
    }

    // MARK: Writer

    private func startWriter() {
        // The loop is one long job on the writer's thread: it blocks there
        // while the queue is empty, and each batch runs there as a whole, so
        // statements never hop between threads and a write never waits for
        // the cooperative pool (it did when each statement was a call of its
        // own: README, "Reliability", overload; and when the loop was a task:
        // `SQLiteWriteQueue`). The task only waits for the loop to end.
        let task = Task { [queue, writerThread, writer, logger, settings] in
            do {
                try await writerThread.runIfActive {
                    while let batch = queue.nextBatch(limit: settings.maxBatch) {
                        Self.commit(batch, on: writer, logger: logger)
                    }
                }
            } catch {
                logger.error("sqlite: the writer could not start", metadata: ["error": "\(error)"])
                queue.closeAndTakeAll().forEach {
                    $0.finish(batchError: StoreError.unavailable(reason: "the database is shutting down"))
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
    private static func commit(_ batch: [PendingWrite], on writer: SQLiteHandle, logger: Logger) {
        do {
            try writer.execute("BEGIN IMMEDIATE")
        } catch {
            logger.error("sqlite: cannot begin write transaction", metadata: ["error": "\(error)"])
            batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database rejected the write")) }
            return
        }
        for job in batch {
            do {
                job.outcome = .success(try job.work(writer))
            } catch let error as SQLiteCallError {
                logger.error("sqlite: write failed, rolling back batch", metadata: ["error": "\(error)"])
                try? writer.execute("ROLLBACK")
                batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database rejected the write")) }
                return
            } catch {
                job.outcome = .failure(error)
            }
        }
        do {
            try writer.execute("COMMIT")
            batch.forEach { $0.finish(batchError: nil) }
        } catch {
            logger.error("sqlite: commit failed", metadata: ["error": "\(error)"])
            try? writer.execute("ROLLBACK")
            batch.forEach { $0.finish(batchError: StoreError.unavailable(reason: "the database could not commit the write")) }
        }
    }

    /// Queues `work` for the writer. `committed` runs on the writer once the
    /// batch has committed, in commit order (see `PendingWrite`).
    private func write<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteHandle) throws -> T,
        committed: @escaping @Sendable (T) -> Void = { _ in }
    ) async throws -> T {
        let result = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            enqueue(work, committed: committed) { continuation.resume(with: $0.map { $0 as any Sendable }) }
        }
        return result as! T
    }

    /// `write` for callers that are not tasks: `completion` runs on the
    /// writer's thread after COMMIT (or with the error), exactly once.
    private func enqueue<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteHandle) throws -> T,
        committed: @escaping @Sendable (T) -> Void,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        let job = PendingWrite(
            work: { try work($0) }, committed: { committed($0 as! T) },
            resume: { result in completion(result.map { $0 as! T }) })
        do {
            try queue.enqueue(job)
        } catch {
            completion(.failure(error))
        }
    }

    /// Runs a read on an idle reader connection. Storage-level failures
    /// (closed, busy beyond the timeout, I/O) become `StoreError.unavailable`:
    /// a 503 the client can retry, not a 500.
    private func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteHandle) throws -> T) async throws -> T {
        guard !closed.load(ordering: .relaxed) else { throw StoreError.unavailable(reason: "the database is closed") }
        do {
            return try await readers.read(body)
        } catch {
            throw readFailure(error)
        }
    }

    /// `read` for callers that are not tasks: `completion` runs once, on a
    /// reader's thread, with the same errors.
    private func read<T: Sendable>(
        _ body: @escaping @Sendable (SQLiteHandle) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        guard !closed.load(ordering: .relaxed) else {
            return completion(.failure(StoreError.unavailable(reason: "the database is closed")))
        }
        readers.read(body) { [self] result in completion(result.mapError { readFailure($0) }) }
    }

    /// What a failed read tells the caller.
    private func readFailure(_ error: any Error) -> any Error {
        if let error = error as? SQLiteCallError, error.isUnavailable {
            logger.warning("sqlite: read failed", metadata: ["error": "\(error)"])
            return StoreError.unavailable(reason: "sqlite: \(error.message)")
        }
        if error is CancellationError, closed.load(ordering: .relaxed) {
            // The reader pool refuses queued reads once it is shutting down.
            return StoreError.unavailable(reason: "the database is closed")
        }
        return error
    }

    /// Pending writes; exported as a metric so saturation is visible.
    public var queuedWrites: Int { queue.depth }

    // MARK: UserStore

    public func migrate() async throws -> MigrationReport {
        try await write { conn in
            // The writer already holds BEGIN IMMEDIATE, so a second process
            // migrating the same file waits on the lock, then sees our rows.
            try conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            let current = try conn.integer("SELECT coalesce(max(version), 0) FROM schema_migrations")
            var applied: [Int] = []
            for migration in Schema.migrations where migration.version > current {
                for statement in migration.sqlite {
                    try conn.execute(statement)
                }
                try conn.withStatement("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)") {
                    try $0.bind(1, Int64(migration.version))
                    try $0.bind(2, migration.name)
                    try $0.bind(3, Timestamp.nowMillis())
                    _ = try $0.step()
                }
                applied.append(migration.version)
            }
            return MigrationReport(applied: applied, current: max(current, applied.last ?? 0))
        }
    }

    /// The schema version recorded in the file (0 for a new database).
    public func schemaVersion() async throws -> Int {
        try await read { reader in
            let exists = try reader.integer(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            guard exists > 0 else { return 0 }
            return try reader.integer("SELECT coalesce(max(version), 0) FROM schema_migrations")
        }
    }

    public func ping() async throws {
        _ = try await read { try $0.integer("SELECT 1") }
    }

    public func list(_ query: UserListQuery) async throws -> [User] {
        try await read(Self.listing(query))
    }

    public var listsWithoutTask: Bool { true }

    public func list(_ query: UserListQuery, completion: @escaping @Sendable (Result<[User], any Error>) -> Void) {
        read(Self.listing(query), completion: completion)
    }

    /// The read behind `list`: one statement, the rows in id order.
    private static func listing(_ query: UserListQuery) -> @Sendable (SQLiteHandle) throws -> [User] {
        var sql = "SELECT \(Self.columns) FROM users"
        var conditions: [String] = []
        var binds: [String] = []
        if let after = query.after {
            conditions.append("id > ?")
            binds.append(after)
        }
        if let username = query.username {
            conditions.append("username = ?")
            binds.append(username)
        }
        if let email = query.email {
            conditions.append("email_key = ?")
            binds.append(User.emailKey(email))
        }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY id LIMIT ?"
        let limit = Int64(query.limit)
        return { [sql, binds] reader in
            try reader.withStatement(sql) { statement in
                for (i, value) in binds.enumerated() { try statement.bind(Int32(i + 1), value) }
                try statement.bind(Int32(binds.count + 1), limit)
                var users: [User] = []
                users.reserveCapacity(Int(limit))
                while try statement.step() { users.append(Self.decode(statement)) }
                return users
            }
        }
    }

    public var hasUserCache: Bool { cache.isEnabled }

    public func cachedUser(id: String) -> User? { cache.get(id).user }

    public func get(id: String) async throws -> User? {
        let (cached, generation) = cache.get(id)
        if let cached { return cached }
        let user = try await read { try Self.user(id: id, on: $0) }
        if let user { cache.fill(user, readAt: generation) }
        return user
    }

    public func create(_ user: User) async throws -> User {
        let cache = self.cache
        return try await write {
            try Self.insert(user, on: $0)
        } committed: {
            cache.store($0)
        }
    }

    public var createsWithoutTask: Bool { true }

    public func create(_ user: User, completion: @escaping @Sendable (Result<User, any Error>) -> Void) {
        let cache = self.cache
        enqueue({ try Self.insert(user, on: $0) }, committed: { cache.store($0) }, completion: completion)
    }

    private static func insert(_ user: User, on conn: SQLiteHandle) throws -> User {
        do {
            try conn.withStatement(
                "INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ) {
                try Self.bind(user, to: &$0)
                _ = try $0.step()
            }
        } catch let error as SQLiteCallError where error.isConstraintViolation {
            throw try Self.conflict(for: user, excluding: nil, on: conn)
        }
        return user
    }

    public func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        let cache = self.cache
        return try await write { conn in
            guard let current = try Self.user(id: id, on: conn) else { throw StoreError.notFound }
            let fields = try change(current)
            if fields == UserFields(current) { return current }
            var updated = current
            updated.name = fields.name
            updated.username = fields.username
            updated.email = fields.email
            updated.updatedAt = max(Timestamp.nowMillis(), current.updatedAt)
            updated.version = current.version + 1
            do {
                try conn.withStatement(
                    "UPDATE users SET name = ?, username = ?, email = ?, email_key = ?, updated_at = ?, version = ? WHERE id = ?"
                ) {
                    try $0.bind(1, updated.name)
                    try $0.bind(2, updated.username)
                    try $0.bind(3, updated.email)
                    try $0.bind(4, updated.emailKey)
                    try $0.bind(5, updated.updatedAt)
                    try $0.bind(6, updated.version)
                    try $0.bind(7, id)
                    _ = try $0.step()
                }
            } catch let error as SQLiteCallError where error.isConstraintViolation {
                throw try Self.conflict(for: updated, excluding: id, on: conn)
            }
            return updated
        } committed: {
            cache.store($0)
        }
    }

    public func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        let cache = self.cache
        try await write { conn in
            guard let current = try Self.user(id: id, on: conn) else { throw StoreError.notFound }
            try check(current)
            try conn.withStatement("DELETE FROM users WHERE id = ?") {
                try $0.bind(1, id)
                _ = try $0.step()
            }
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
                    let changed = try conn.withStatement(
                        """
                        INSERT INTO users (id, name, username, email, email_key, created_at, updated_at, version)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET name = excluded.name, username = excluded.username,
                            email = excluded.email, email_key = excluded.email_key, created_at = excluded.created_at,
                            updated_at = excluded.updated_at, version = excluded.version
                        WHERE excluded.version > users.version
                        RETURNING id
                        """
                    ) {
                        try Self.bind(user, to: &$0)
                        // Drain the statement: RETURNING rows are only final once it is done.
                        var rows = 0
                        while try $0.step() { rows += 1 }
                        return rows
                    }
                    written += changed
                } catch let error as SQLiteCallError where error.isConstraintViolation {
                    throw ImportConflict(id: user.id, error: try Self.conflict(for: user, excluding: user.id, on: conn))
                }
            }
            return written
        }
    }

    public func count() async throws -> Int {
        try await read { try $0.integer("SELECT count(*) FROM users") }
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
        // Closing must complete even when the caller was cancelled (NIO's
        // thread pools refuse work from cancelled tasks), or queued writes and
        // open file handles would be abandoned: run it in a task of its own.
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
        await readers.close()
        // Fold the WAL back into the main file so the directory holds one file at rest.
        try? await writerThread.runIfActive { [writer] in
            try? writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            writer.close()
        }
        try? await writerThread.shutdownGracefully()
        logger.info("sqlite: closed", metadata: ["path": "\(settings.path)"])
    }

    // MARK: Rows

    /// Binds `user` to parameters 1-8 in the column order of an INSERT.
    static func bind(_ user: User, to statement: inout SQLiteStatementCursor) throws {
        try statement.bind(1, user.id)
        try statement.bind(2, user.name)
        try statement.bind(3, user.username)
        try statement.bind(4, user.email)
        try statement.bind(5, user.emailKey)
        try statement.bind(6, user.createdAt)
        try statement.bind(7, user.updatedAt)
        try statement.bind(8, user.version)
    }

    /// The current row of a statement that selects `columns`.
    static func decode(_ row: SQLiteStatementCursor) -> User {
        User(
            id: row.text(0), name: row.text(1), username: row.text(2), email: row.text(3),
            createdAt: row.int64(4), updatedAt: row.int64(5), version: row.int64(6))
    }

    static func user(id: String, on conn: SQLiteHandle) throws -> User? {
        try conn.withStatement("SELECT \(columns) FROM users WHERE id = ?") { statement in
            try statement.bind(1, id)
            return try statement.step() ? decode(statement) : nil
        }
    }

    /// Works out which unique fields `user` collides on, for a 409 that names them all.
    private static func conflict(for user: User, excluding id: String?, on conn: SQLiteHandle) throws -> StoreError {
        var fields: Set<String> = []
        try conn.withStatement("SELECT username, email_key FROM users WHERE (username = ? OR email_key = ?) AND id <> ?") {
            try $0.bind(1, user.username)
            try $0.bind(2, user.emailKey)
            try $0.bind(3, id ?? "")
            while try $0.step() {
                if $0.text(0) == user.username { fields.insert("username") }
                if $0.text(1) == user.emailKey { fields.insert("email") }
            }
        }
        let named = ["username", "email"].filter(fields.contains)
        return .conflict(fields: named.isEmpty ? ["id"] : named)
    }
}

/// A user in the source of `db copy` whose username or email belongs to a
/// different user in the target.
public struct ImportConflict: Error, Sendable {
    public var id: String
    public var error: StoreError
}
