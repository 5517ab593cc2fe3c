import Foundation
import NIOPosix
import Testing

@testable import UserAPI

/// The direct SQLite binding under the SQLite store, on real files.
@Suite("SQLite handle")
struct SQLiteHandleTests {
    /// A file in WAL mode with a table `t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)`.
    static func walFile(_ dir: TempDir) throws -> (path: String, writer: SQLiteHandle) {
        let path = dir.file("h.sqlite")
        let writer = try SQLiteHandle(path: path)
        let mode = try writer.withStatement("PRAGMA journal_mode = WAL") { try $0.step() ? $0.text(0) : "" }
        #expect(mode == "wal")
        try writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        return (path, writer)
    }

    static func insert(_ id: Int64, _ name: String, on handle: SQLiteHandle) throws {
        try handle.withStatement("INSERT INTO t (id, name) VALUES (?, ?)") {
            try $0.bind(1, id)
            try $0.bind(2, name)
            let row = try $0.step()
            #expect(!row)
        }
    }

    /// `wal_checkpoint(TRUNCATE)` answers (busy, log frames, checkpointed frames).
    static func checkpoint(_ handle: SQLiteHandle) throws -> (busy: Int64, log: Int64) {
        try handle.withStatement("PRAGMA wal_checkpoint(TRUNCATE)") {
            let row = try $0.step()
            #expect(row)
            return ($0.int64(0), $0.int64(1))
        }
    }

    @Test("a statement left mid-result is reset, so the reader holds no snapshot and sees later commits")
    func statementsAreResetAfterUse() throws {
        let dir = TempDir()
        let (path, writer) = try Self.walFile(dir)
        for i in 1...5 { try Self.insert(Int64(i), "n\(i)", on: writer) }
        let reader = try SQLiteHandle(path: path)
        let page = "SELECT id, name FROM t ORDER BY id"
        // Read only the first of five rows, as a caller that stops early would.
        let first = try reader.withStatement(page) { try $0.step() ? $0.int64(0) : -1 }
        #expect(first == 1)
        // An open read transaction on `reader` would keep the checkpoint from
        // truncating the log (busy = 1).
        try Self.insert(6, "n6", on: writer)
        let result = try Self.checkpoint(writer)
        #expect(result.busy == 0)
        #expect(result.log == 0)
        // The cached statement runs again from the start, on a fresh snapshot.
        let ids = try reader.withStatement(page) { statement in
            var ids: [Int64] = []
            while try statement.step() { ids.append(statement.int64(0)) }
            return ids
        }
        #expect(ids == [1, 2, 3, 4, 5, 6])
    }

    @Test("text goes in and comes out byte for byte: empty, non-ASCII, embedded NUL")
    func textRoundTrip() throws {
        let dir = TempDir()
        let (_, writer) = try Self.walFile(dir)
        let names = ["", "Zoë Ünïcødé 🎉", "a\u{0}b", String(repeating: "x", count: 10_000)]
        for (i, name) in names.enumerated() { try Self.insert(Int64(i), name, on: writer) }
        let back = try writer.withStatement("SELECT name FROM t ORDER BY id") { statement in
            var names: [String] = []
            while try statement.step() { names.append(statement.text(0)) }
            return names
        }
        #expect(back == names)
        // Bound parameters are copied: binding a temporary string and stepping later is safe.
        let found = try writer.withStatement("SELECT id FROM t WHERE name = ?") { statement in
            try statement.bind(1, String("Zoë Ünïcødé 🎉".reversed().reversed()))
            return try statement.step() ? statement.int64(0) : -1
        }
        #expect(found == 1)
    }

    @Test("errors say whether the statement or the storage failed")
    func errorClassification() throws {
        let dir = TempDir()
        let (path, writer) = try Self.walFile(dir)
        try Self.insert(1, "taken", on: writer)

        let unique = #expect(throws: SQLiteCallError.self) { try Self.insert(2, "taken", on: writer) }
        #expect(unique?.isConstraintViolation == true)
        #expect(unique?.isUnavailable == false)
        #expect(unique?.message.contains("UNIQUE") == true)

        let syntax = #expect(throws: SQLiteCallError.self) { try writer.execute("SELEC 1") }
        #expect(syntax?.isUnavailable == false)
        #expect(syntax?.isConstraintViolation == false)

        // Another connection holds the write lock beyond our busy timeout.
        let other = try SQLiteHandle(path: path)
        try other.execute("BEGIN IMMEDIATE")
        try writer.execute("PRAGMA busy_timeout = 50")
        let busy = #expect(throws: SQLiteCallError.self) { try writer.execute("BEGIN IMMEDIATE") }
        #expect(busy?.isUnavailable == true)
        try other.execute("COMMIT")
        try writer.execute("BEGIN IMMEDIATE")
        try writer.execute("COMMIT")

        writer.close()
        let closed = #expect(throws: SQLiteCallError.self) { _ = try writer.integer("SELECT 1") }
        #expect(closed?.isUnavailable == true)
    }

    @Test("a file that cannot be opened is an unavailable error naming the path")
    func openFailure() throws {
        let dir = TempDir()
        let path = dir.file("missing/dir/x.sqlite")
        let error = #expect(throws: SQLiteCallError.self) { _ = try SQLiteHandle(path: path) }
        #expect(error?.isUnavailable == true)
        #expect(error?.message.contains(path) == true)
    }
}

#if os(Linux)
    @Suite("SQLite storage threads")
    struct StorageThreadsTests {
        /// The nice value of each of `threads` threads of `pool`.
        static func niceValues(of pool: NIOThreadPool, threads: Int) async throws -> [Int32] {
            try await StorageThreads.onEachThread(of: pool, threads: threads) {
                getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            }
        }

        @Test("every thread of a storage pool runs below the process's priority; other threads do not")
        func lowerPriority() async throws {
            let base = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            let storage = NIOThreadPool(numberOfThreads: 3)
            let other = NIOThreadPool(numberOfThreads: 2)
            storage.start()
            other.start()
            try await StorageThreads.lowerPriority(of: storage, threads: 3)
            let lowered = try await Self.niceValues(of: storage, threads: 3)
            let untouched = try await Self.niceValues(of: other, threads: 2)
            try await storage.shutdownGracefully()
            try await other.shutdownGracefully()
            #expect(lowered == Array(repeating: min(19, base + StorageThreads.niceness), count: 3))
            #expect(untouched == [base, base])
        }
    }
#endif
