import Foundation
import GRDB
import Testing

@testable import UserAPI

@Suite("SQLite group commit and file lock")
struct SQLiteWriterTests {
    static func user(_ n: Int, username: String? = nil) -> User {
        User.new(UserFields(name: "User \(n)", username: username ?? "user\(n)", email: "user\(n)@example.com"))
    }

    static func open(_ path: String) async throws -> SQLiteUserStore {
        var settings = SQLiteSettings(path: path)
        // The test holds the write lock on purpose; the writer waits for it.
        settings.busyTimeout = .seconds(120)
        return try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
    }

    @Test("writes queued behind a busy file commit together, and each caller hears its own outcome")
    func groupCommit() async throws {
        let dir = TempDir()
        let path = dir.file("w.sqlite")
        let store = try await Self.open(path)
        let queued = 200
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let batchesBefore = store.committedBatches
            // Another connection holds the write lock: the writer blocks in its BEGIN while the creates queue.
            let other = try DatabaseQueue(path: path)
            let locked = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            // On a thread of its own: it blocks while it holds the lock.
            let holder = Task {
                try await offPool {
                    try other.inDatabase { db in
                        try db.execute(sql: "BEGIN IMMEDIATE")
                        locked.signal()
                        release.wait()
                        try db.execute(sql: "COMMIT")
                    }
                }
            }
            try await offPool { locked.wait() }
            async let outcomes = withTaskGroup(of: (Int, Result<User, StoreError>).self) { group in
                for i in 0..<queued {
                    group.addTask {
                        // Every 10th asks for the username of the one before it: a conflict inside a batch.
                        let user = Self.user(i, username: i % 10 == 9 ? "user\(i - 1)" : nil)
                        do {
                            return (i, .success(try await store.create(user)))
                        } catch let error as StoreError {
                            return (i, .failure(error))
                        } catch {
                            return (i, .failure(.unavailable(reason: "\(error)")))
                        }
                    }
                }
                var all: [Int: Result<User, StoreError>] = [:]
                for await (i, outcome) in group { all[i] = outcome }
                return all
            }
            // Every create is with the writer: one batch blocked in BEGIN, the rest queued behind it.
            try await waitUntil(within: .seconds(60)) { store.pendingWrites == queued }
            #expect(store.pendingWrites == queued)
            release.signal()
            try await holder.value
            try other.close()
            let results = await outcomes
            #expect(store.queuedWrites == 0)
            #expect(results.count == queued)
            for i in 0..<queued where i % 10 < 8 {
                #expect((try? results[i]?.get())?.username == "user\(i)", "create \(i): \(String(describing: results[i]))")
            }
            for i in stride(from: 9, to: queued, by: 10) {
                let pair = [results[i - 1], results[i]].compactMap { $0 }
                #expect(pair.compactMap { try? $0.get() }.map(\.username) == ["user\(i - 1)"], "creates \(i - 1), \(i): \(pair)")
                #expect(pair.contains { $0 == .failure(.conflict(fields: ["username"])) }, "creates \(i - 1), \(i): \(pair)")
            }
            // The blocked batch, then everything queued behind it: two commits for 200 writes.
            let batches = store.committedBatches - batchesBefore
            #expect(batches <= 2, "\(queued) writes took \(batches) commits")
            let stored = try await store.list(UserListQuery(limit: 1000))
            #expect(stored.count == queued - queued / 10)
        }
    }

    @Test("a second store on the same file is refused, naming the file and the holder")
    func secondProcessRefused() async throws {
        let dir = TempDir()
        let path = dir.file("locked.sqlite")
        let store = try await Self.open(path)
        try await withRunningStores([store]) {
            let error = await #expect(throws: DatabaseInUse.self) { try await Self.open(path) }
            let text = "\(error.map { $0 as Any } ?? "none")"
            #expect(text.contains(path), "\(text)")
            #expect(text.contains("pid \(getpid())"), "\(text)")
        }
        // Closed: the file is free again.
        let again = try await Self.open(path)
        await again.shutdown()
    }
}
