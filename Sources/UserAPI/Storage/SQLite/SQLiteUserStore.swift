import Foundation
import GRDB
import Logging
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
    public var busyTimeout: Duration = .seconds(5)
    public var readers = 2
    public var maxQueuedWrites = 1024
    /// Run `PRAGMA quick_check` when opening, and refuse a damaged file.
    public var checkOnOpen = false

    public init(path: String) {
        self.path = path
    }
}

/// `UserStore` on an embedded SQLite file, through GRDB's `DatabasePool`:
/// WAL mode, one writer connection and `readers` reader connections that read
/// beside it. Writes go through `GroupCommit` (many writes, one fsync). The
/// process holds `DatabaseFileLock` while the store is open: a SQLite file
/// has one writer process.
public final class SQLiteUserStore: UserStore {
    public let backend = "sqlite"
    public var location: String { "sqlite:\(settings.path)" }

    let settings: SQLiteSettings
    private let pool: DatabasePool
    private let lock: DatabaseFileLock
    private let writes: GroupCommit
    private let logger: Logger
    public let changes = ChangeSignal()
    /// The group-commit loop, from open to shutdown.
    private let writer = Mutex<Task<Void, Never>?>(nil)
    private let closed = Atomic<Bool>(false)
    private let closing = Mutex<Task<Void, Never>?>(nil)

    private init(settings: SQLiteSettings, pool: DatabasePool, lock: DatabaseFileLock, logger: Logger) {
        self.settings = settings
        self.pool = pool
        self.lock = lock
        self.writes = GroupCommit(capacity: settings.maxQueuedWrites)
        self.logger = logger
        let task = Task { [writes, pool, changes] in
            await writes.run(on: pool, report: { [weak self] error in self?.unavailable(error) ?? error }) {
                changes.notify()
            }
        }
        writer.withLock { $0 = task }
    }

    /// Opens (creating if needed) the database file and its directory. Refuses
    /// when another process holds the file, after waiting up to `waitForLock`.
    public static func open(_ settings: SQLiteSettings, logger: Logger, waitForLock: Duration = .zero) async throws
        -> SQLiteUserStore
    {
        try Self.makeDirectories(for: settings.path)
        let lock = try await DatabaseFileLock.acquire(database: settings.path, wait: waitForLock)
        do {
            if access(settings.path, F_OK) == 0, access(settings.path, W_OK) != 0 {
                throw StoreError.unavailable(
                    reason: "the database file \(settings.path) is not writable: \(String(cString: strerror(errno)))")
            }
            let pool = try DatabasePool(path: settings.path, configuration: configuration(settings))
            if settings.checkOnOpen {
                let result = try await pool.read { try String.fetchAll($0, sql: "PRAGMA quick_check") }
                guard result == ["ok"] else {
                    throw StoreError.unavailable(
                        reason:
                            "the database file \(settings.path) is damaged (quick_check: \(result.prefix(3).joined(separator: "; ")))"
                    )
                }
            }
            return SQLiteUserStore(settings: settings, pool: pool, lock: lock, logger: logger)
        } catch let error as StoreError {
            lock.release()
            throw error
        } catch {
            lock.release()
            throw StoreError.unavailable(reason: "cannot open \(settings.path): \(Self.cause(error))")
        }
    }

    /// `mkdir -p` of the file's directory, failing with the path and the system's reason.
    static func makeDirectories(for file: String) throws {
        var path = file.hasPrefix("/") ? "" : "."
        for component in file.split(separator: "/").dropLast() {
            path += "/" + component
            guard mkdir(path, 0o750) == 0 || errno == EEXIST else {
                throw StoreError.unavailable(reason: "cannot create the directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    static func configuration(_ settings: SQLiteSettings) -> Configuration {
        var configuration = Configuration()
        configuration.maximumReaderCount = settings.readers
        configuration.busyMode = .timeout(settings.busyTimeout.seconds)
        configuration.label = "userapi"
        let synchronous = settings.synchronous.rawValue.uppercased()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        return configuration
    }

    /// The message of a database error without GRDB's decoration.
    static func cause(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }

    /// What a failed database call tells the client: storage trouble is a 503
    /// it can retry, with the disk-full case said in words.
    private func unavailable(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        logger.error("sqlite: \(Self.cause(error))", metadata: ["code": "\(error.extendedResultCode)"])
        if error.resultCode == .SQLITE_FULL { return StoreError.unavailable(reason: "the disk is full") }
        return StoreError.unavailable(reason: "sqlite: \(Self.cause(error))")
    }

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard !closed.load(ordering: .relaxed) else { throw StoreError.unavailable(reason: "the database is closed") }
        do {
            return try await pool.read(body)
        } catch {
            throw unavailable(error)
        }
    }

    /// Writes queued for the next batch; exported as a metric.
    public var queuedWrites: Int { writes.depth }

    /// Writes submitted and not yet answered.
    var pendingWrites: Int { writes.pending }

    /// Write transactions committed since the store opened.
    var committedBatches: Int { writes.committedBatches }

    // MARK: UserStore

    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        for migration in Schema.migrations {
            migrator.registerMigration(migration.identifier) { db in
                for statement in migration.sqlite { try db.execute(sql: statement) }
            }
        }
        return migrator
    }()

    public func migrate() async throws -> MigrationReport {
        do {
            let before = try await schemaVersion()
            // Waits for GRDB's barrier on its own queue, never on one of Swift's few pool threads.
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                Self.migrator.asyncMigrate(pool) { continuation.resume(with: $0.map { _ in () }) }
            }
            let after = try await schemaVersion()
            return MigrationReport(
                applied: Schema.migrations.map(\.version).filter { $0 > before && $0 <= after }, current: after)
        } catch {
            throw unavailable(error)
        }
    }

    public func schemaVersion() async throws -> Int {
        try await read { db in
            let applied = try Self.migrator.appliedIdentifiers(db)
            return Schema.migrations.filter { applied.contains($0.identifier) }.map(\.version).max() ?? 0
        }
    }

    /// Reads, and after a failed write (a full disk, say), writes too: a
    /// store that cannot take writes is not ready.
    public func ping() async throws {
        _ = try await read { try Int.fetchOne($0, sql: "SELECT 1") }
        guard let failure = writes.lastFailure else { return }
        do {
            try await write { db in
                // A new page, as an insert may need (rolled back)...
                try db.inSavepoint {
                    try db.execute(sql: "CREATE TABLE userapi_write_probe (x)")
                    return .rollback
                }
                // ...and a WAL frame at commit, as every write needs: the header page, rewritten unchanged.
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                try db.execute(sql: "PRAGMA user_version = \(version)")
            }
        } catch {
            throw StoreError.unavailable(reason: "writes fail: \(failure)")
        }
    }

    /// Caps the file at `pages` pages (never below its size), as a full disk would: for tests.
    package func limitPages(_ pages: Int) async throws {
        try await pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = \(pages)") }
    }

    public func list(_ query: UserListQuery) async throws -> [User] {
        var conditions: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if let after = query.after {
            conditions.append("id > ?")
            arguments.append(after)
        }
        if let username = query.username {
            conditions.append("username = ?")
            arguments.append(username)
        }
        if let email = query.email {
            conditions.append("email_key = ?")
            arguments.append(User.emailKey(email))
        }
        if let (from, to) = query.searchRange {
            conditions.append(
                "((lower(name) >= ? AND lower(name) < ?) OR (username >= ? AND username < ?) OR (email_key >= ? AND email_key < ?))"
            )
            arguments += [from, to, from, to, from, to]
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT \(UserColumns.list) FROM users\(filter) ORDER BY id LIMIT ?"
        arguments.append(query.limit)
        let bound = StatementArguments(arguments)
        return try await read { db in
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: bound).map(Self.user(from:))
        }
    }

    public func get(id: String) async throws -> User? {
        try await read { try Self.user(id: id, in: $0) }
    }

    public func create(_ user: User) async throws -> User {
        try await write { db in
            try Self.insert(user, in: db)
            try Self.record(.recording(.created, user), in: db)
            return user
        }
    }

    public func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        // Inside the writer's transaction nobody else writes: read, decide, write.
        try await write { db in
            guard let current = try Self.user(id: id, in: db) else { throw StoreError.notFound }
            let updated = current.updated(with: try change(current))
            guard updated != current else { return current }
            do {
                try db.cachedStatement(sql: Self.updateSQL).execute(arguments: Self.arguments(updated))
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw try Self.conflict(for: updated, in: db)
            }
            try Self.record(.recording(.updated, updated), in: db)
            return updated
        }
    }

    public func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        try await write { db in
            guard let current = try Self.user(id: id, in: db) else { throw StoreError.notFound }
            try check(current)
            try db.cachedStatement(sql: "DELETE FROM users WHERE id = ?").execute(arguments: [id])
            try Self.record(.recording(.deleted, current), in: db)
        }
    }

    public func importUsers(_ users: [User]) async throws -> Int {
        guard !users.isEmpty else { return 0 }
        return try await write { db in
            var written = 0
            for user in users {
                do {
                    try db.cachedStatement(sql: Self.upsertSQL).execute(arguments: StatementArguments(Self.values(user)))
                    written += db.changesCount
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                    throw ImportConflict(id: user.id, error: try Self.conflict(for: user, in: db))
                }
            }
            return written
        }
    }

    public func events(after seq: Int64, limit: Int) async throws -> [UserEvent] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT seq, type, user_id, user, at FROM events WHERE seq > ? ORDER BY seq LIMIT ?"),
                arguments: [seq, limit]
            ).map { row in
                UserEvent(
                    seq: row["seq"], kind: UserEvent.Kind(rawValue: row["type"]) ?? .updated, id: row["user_id"],
                    user: (row["user"] as String?).map { Array($0.utf8) }, at: row["at"])
            }
        }
    }

    public func eventBounds() async throws -> EventBounds {
        try await read { db in
            let oldest = try Int64.fetchOne(db, sql: "SELECT min(seq) FROM events")
            let latest = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'") ?? 0
            return EventBounds(oldest: oldest, latest: latest)
        }
    }

    public func pruneEvents(before cutoff: Int64, keep: Int) async throws -> Int {
        try await write { db in
            try db.execute(
                sql: "DELETE FROM events WHERE at < ? OR seq <= (SELECT coalesce(max(seq), 0) FROM events) - ?",
                arguments: [cutoff, keep])
            return db.changesCount
        }
    }

    static func record(_ event: UserEvent, in db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO events (type, user_id, user, at) VALUES (?, ?, ?, ?)").execute(
            arguments: [event.kind.rawValue, event.id, event.user.map { String(decoding: $0, as: UTF8.self) }, event.at])
    }

    public func count() async throws -> Int {
        try await read { try Int.fetchOne($0, sql: "SELECT count(*) FROM users") ?? 0 }
    }

    public func run() async throws {
        // Returns on graceful shutdown, throws on cancellation: close either way.
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Idempotent; every caller waits until it is done: refuses new calls,
    /// commits the queued writes, folds the WAL back into the file (one file
    /// at rest) and lets go of the file. The connections close when the store
    /// is released, so a read still in flight finishes normally.
    public func shutdown() async {
        let task = closing.withLock { current -> Task<Void, Never> in
            if let current { return current }
            closed.store(true, ordering: .relaxed)
            let task = Task { [self] in
                writes.close()
                await writer.withLock { $0 }?.value
                do {
                    _ = try await pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
                } catch {
                    logger.warning("sqlite: checkpoint at close: \(Self.cause(error))")
                }
                lock.release()
                logger.info("sqlite: closed", metadata: ["path": "\(settings.path)"])
            }
            current = task
            return task
        }
        await task.value
    }

    /// Copies the database, consistently, to a new file at `destination`
    /// (SQLite's online backup), while writes go on.
    public func backup(to destination: String) async throws {
        let target = try DatabaseQueue(path: destination)
        try await pool.read { db in
            try target.writeWithoutTransaction { try db.backup(to: $0) }
        }
        try target.close()
    }

    // MARK: Rows

    private func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writes.submit(work)
    }

    static let insertSQL = "INSERT INTO users (\(UserColumns.list)) VALUES (\(UserColumns.placeholders(numbered: false)))"
    static let updateSQL =
        "UPDATE users SET " + UserColumns.names.dropFirst().map { "\($0) = ?" }.joined(separator: ", ") + " WHERE id = ?"
    static let upsertSQL =
        insertSQL + " ON CONFLICT (id) DO UPDATE SET \(UserColumns.fromExcluded) WHERE excluded.version > users.version"

    /// Every column's value, in `UserColumns.names` order.
    static func values(_ user: User) -> [(any DatabaseValueConvertible)?] {
        [user.id] + UserFields.all.map { $0.get(user.fields) } + [user.emailKey, user.createdAt, user.updatedAt, user.version]
    }

    /// The values for `updateSQL`: every column but the id, then the id.
    static func arguments(_ user: User) -> StatementArguments {
        let values = values(user)
        return StatementArguments(values.dropFirst() + [values[0]])
    }

    static func user(from row: Row) -> User {
        var fields = UserFields()
        for field in UserFields.all { field.set(row[field.name], in: &fields) }
        return User(
            id: row["id"], fields: fields, createdAt: row["created_at"], updatedAt: row["updated_at"],
            version: row["version"])
    }

    static func user(id: String, in db: Database) throws -> User? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(UserColumns.list) FROM users WHERE id = ?"), arguments: [id])
            .map(user(from:))
    }

    private static func insert(_ user: User, in db: Database) throws {
        do {
            try db.cachedStatement(sql: insertSQL).execute(arguments: StatementArguments(values(user)))
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw try conflict(for: user, in: db)
        }
    }

    /// Works out which unique fields `user` collides on, for a 409 that names them all.
    private static func conflict(for user: User, in db: Database) throws -> StoreError {
        let rows = try Row.fetchAll(
            db, sql: "SELECT username, email_key FROM users WHERE (username = ? OR email_key = ?) AND id <> ?",
            arguments: [user.username, user.emailKey, user.id])
        return UserColumns.conflicts(of: user, with: rows.map { ($0["username"], $0["email_key"]) })
    }
}
