// The SQLite library that sqlite-nio vendors, reached through its C target.
// It must be that copy and no other: SQLite keeps the POSIX locks of every
// file it has open in one table per library copy, and a second copy in the
// same process (a system libsqlite3, say) closing its descriptor of our file
// would silently drop the locks this one holds. If a sqlite-nio release
// renames the target, this import fails to build; it cannot pick up a
// different SQLite by accident.
import VaporCSQLite

/// A failed SQLite call on an `SQLiteHandle`: the extended result code and
/// SQLite's message for it.
struct SQLiteCallError: Error, CustomStringConvertible {
    var code: Int32
    var message: String

    var primaryCode: Int32 { code & 0xFF }

    /// Failures of the storage rather than of the statement: lock timeouts,
    /// I/O, a full disk, a file that cannot be opened, a closed connection.
    /// The store answers these with a 503 the client can retry; the others are
    /// the statement's own failure (a conflict, a bug).
    var isUnavailable: Bool {
        switch primaryCode {
        case SQLITE_ERROR, SQLITE_MISMATCH, SQLITE_RANGE, SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_SCHEMA: false
        default: true
        }
    }

    /// A UNIQUE or PRIMARY KEY constraint: someone else has the value.
    var isConstraintViolation: Bool {
        // SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY: macros Swift cannot import.
        code == SQLITE_CONSTRAINT || code == SQLITE_CONSTRAINT | (8 << 8) || code == SQLITE_CONSTRAINT | (6 << 8)
    }

    var description: String { "\(message) (SQLite result code \(code))" }
}

/// One SQLite connection used by one thread at a time, with its prepared
/// statements kept for reuse.
///
/// Why not sqlite-nio for these calls: it prepares every statement anew and
/// opens connections with `SQLITE_OPEN_FULLMUTEX`, so every column read takes
/// and releases the connection's mutex twice; together with the `SQLiteData`
/// values it builds for each column, that was about a third of the CPU of a
/// page of 50 users (bench/README.md, "Where a list page's time goes"). Here
/// the connection is opened `SQLITE_OPEN_NOMUTEX` and the owner guarantees the
/// one-thread-at-a-time rule instead (`SQLiteReaderPool` hands each handle to
/// one job at a time).
final class SQLiteHandle: @unchecked Sendable {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    init(path: String) throws(SQLiteCallError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let rc = sqlite_nio_sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message =
                db.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? String(cString: sqlite_nio_sqlite3_errstr(rc))
            sqlite_nio_sqlite3_close_v2(db)
            throw SQLiteCallError(code: rc, message: "cannot open \(path): \(message)")
        }
        self.db = db
    }

    deinit { close() }

    /// Runs SQL without results (pragmas, `BEGIN`, `COMMIT`); not cached.
    func execute(_ sql: String) throws(SQLiteCallError) {
        guard let db else { throw Self.closedError }
        let rc = sqlite_nio_sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// Runs `body` with the prepared statement for `sql`, prepared once per
    /// connection and reset afterwards, so it never keeps a read snapshot open
    /// between calls (an open snapshot would hold back WAL checkpoints).
    func withStatement<T>(_ sql: String, _ body: (inout SQLiteStatementCursor) throws -> T) throws -> T {
        guard let db else { throw Self.closedError }
        let raw: OpaquePointer
        if let cached = statements[sql] {
            raw = cached
        } else {
            var prepared: OpaquePointer?
            let rc = sqlite_nio_sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
            guard rc == SQLITE_OK, let prepared else { throw error(rc) }
            statements[sql] = prepared
            raw = prepared
        }
        defer {
            sqlite_nio_sqlite3_reset(raw)
            sqlite_nio_sqlite3_clear_bindings(raw)
        }
        var cursor = SQLiteStatementCursor(raw: raw, handle: self)
        return try body(&cursor)
    }

    /// The first column of the first row of `sql` as an integer (0 when no row).
    func integer(_ sql: String) throws -> Int {
        try withStatement(sql) { statement in try statement.step() ? Int(statement.int64(0)) : 0 }
    }

    func close() {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        statements.removeAll()
        if let db { sqlite_nio_sqlite3_close_v2(db) }
        db = nil
    }

    fileprivate func error(_ rc: Int32) -> SQLiteCallError {
        guard let db else { return Self.closedError }
        return SQLiteCallError(
            code: sqlite_nio_sqlite3_extended_errcode(db), message: String(cString: sqlite_nio_sqlite3_errmsg(db)))
    }

    static let closedError = SQLiteCallError(code: SQLITE_MISUSE, message: "the connection is closed")
    static func busy(_ message: String) -> SQLiteCallError { SQLiteCallError(code: SQLITE_BUSY, message: message) }
}

/// A prepared statement while it is in use: bind, then step through the rows.
struct SQLiteStatementCursor {
    fileprivate let raw: OpaquePointer
    fileprivate let handle: SQLiteHandle

    /// Binds parameter `index` (1-based) to text; SQLite copies the bytes.
    mutating func bind(_ index: Int32, _ text: String) throws(SQLiteCallError) {
        var text = text
        let rc = text.withUTF8 { bytes in
            // A null pointer would bind NULL, not the empty string.
            guard let start = UnsafeRawPointer(bytes.baseAddress) else {
                return sqlite_nio_sqlite3_bind_text64(raw, index, "", 0, SQLiteHandle.transient, UInt8(SQLITE_UTF8))
            }
            return sqlite_nio_sqlite3_bind_text64(
                raw, index, start.assumingMemoryBound(to: CChar.self), UInt64(bytes.count), SQLiteHandle.transient,
                UInt8(SQLITE_UTF8))
        }
        guard rc == SQLITE_OK else { throw handle.error(rc) }
    }

    mutating func bind(_ index: Int32, _ value: Int64) throws(SQLiteCallError) {
        let rc = sqlite_nio_sqlite3_bind_int64(raw, index, value)
        guard rc == SQLITE_OK else { throw handle.error(rc) }
    }

    /// Advances to the next row: true while there is one, false when done.
    mutating func step() throws(SQLiteCallError) -> Bool {
        switch sqlite_nio_sqlite3_step(raw) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let rc: throw handle.error(rc)
        }
    }

    /// Column `index` (0-based) of the current row as text ("" for NULL).
    func text(_ index: Int32) -> String {
        // Text first, then its length: the order SQLite documents as safe.
        guard let bytes = sqlite_nio_sqlite3_column_text(raw, index) else { return "" }
        let count = Int(sqlite_nio_sqlite3_column_bytes(raw, index))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func int64(_ index: Int32) -> Int64 {
        sqlite_nio_sqlite3_column_int64(raw, index)
    }
}

extension SQLiteHandle {
    /// SQLITE_TRANSIENT: SQLite copies bound values before the call returns.
    fileprivate static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
