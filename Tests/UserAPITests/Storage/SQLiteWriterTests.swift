import Foundation
import SQLiteNIO
import Testing

@testable import UserAPI

@Suite("SQLite writer")
struct SQLiteWriterTests {
    static func user(_ n: Int, username: String? = nil) -> User {
        let now = Timestamp.nowMillis()
        return User(
            id: UserID.make(), name: "User \(n)", username: username ?? "user\(n)", email: "user\(n)@example.com",
            createdAt: now, updatedAt: now, version: 1)
    }

    /// Another connection takes the file's write lock: the store's writer then waits in its
    /// BEGIN (on SQLite's thread, in the busy handler) until `release`.
    static func holdWriteLock(_ path: String) async throws -> SQLiteConnection {
        let other = try await SQLiteConnection.open(storage: .file(path: path), logger: TestEnv.logger)
        _ = try await other.query("BEGIN IMMEDIATE")
        return other
    }

    static func release(_ other: SQLiteConnection) async throws {
        _ = try await other.query("COMMIT")
        try await other.close()
    }

    @Test("writes queued beyond one transaction commit in full batches, and every caller hears its own outcome")
    func fullBatches() async throws {
        let dir = TempDir()
        var settings = SQLiteSettings(path: dir.file("w.sqlite"))
        settings.maxBatch = 8
        settings.busyTimeoutMillis = 30_000
        let store = try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
        let (path, batch) = (settings.path, settings.maxBatch)
        let queued = 10 * batch
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            // The writer waits while the creates below queue up; once the lock is released it
            // takes them `maxBatch` at a time (the full-batch path).
            let other = try await Self.holdWriteLock(path)
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
            // The writer took at most one (partial) batch before it blocked.
            try await waitUntil(within: .seconds(10)) { store.queuedWrites >= queued - batch }
            #expect(store.queuedWrites >= queued - batch)
            try await Self.release(other)
            let results = await outcomes
            #expect(store.queuedWrites == 0)
            #expect(results.count == queued)
            for i in 0..<queued where i % 10 < 8 {
                #expect((try? results[i]?.get())?.username == "user\(i)", "create \(i): \(String(describing: results[i]))")
            }
            // Two creates for each such username: whichever ran first won, the other heard a conflict.
            for i in stride(from: 9, to: queued, by: 10) {
                let pair = [results[i - 1], results[i]].compactMap { $0 }
                #expect(pair.compactMap { try? $0.get() }.map(\.username) == ["user\(i - 1)"], "creates \(i - 1), \(i): \(pair)")
                #expect(pair.contains { $0 == .failure(.conflict(fields: ["username"])) }, "creates \(i - 1), \(i): \(pair)")
            }
            let stored = try await store.list(UserListQuery(limit: 1000, after: nil))
            #expect(stored.count == queued - queued / 10)
            #expect(Set(stored.map(\.username)) == Set((0..<queued).filter { $0 % 10 != 9 }.map { "user\($0)" }))
        }
    }

    @Test("a caller resumed late cannot put an older version of a user into the cache")
    func cacheFollowsCommitOrder() async throws {
        let dir = TempDir()
        var settings = SQLiteSettings(path: dir.file("c.sqlite"))
        settings.busyTimeoutMillis = 30_000
        let store = try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
        let path = settings.path
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let user = try await store.create(Self.user(1))
            func rename(_ name: String) -> @Sendable (User) throws -> UserFields {
                { UserFields(name: name, username: $0.username, email: $0.email) }
            }
            // The writer waits for another connection's lock while both updates queue, in this order.
            let other = try await Self.holdWriteLock(path)
            let executor = HoldingExecutor()
            let first = Task(executorPreference: executor) { try await store.update(id: user.id, rename("first")) }
            // Its task is suspended in the write: hold whatever resumes it.
            try await waitUntil(within: .seconds(10)) { executor.isIdle }
            #expect(executor.isIdle)
            executor.hold()
            let second = Task { try await store.update(id: user.id, rename("second")) }
            try await Self.release(other)

            // The second update commits after the first and its caller returns first.
            let newer = try await second.value
            #expect(newer.name == "second" && newer.version == 3)
            #expect(executor.heldJobs > 0, "the first caller was resumed and is held")
            executor.release()
            let older = try await first.value
            #expect(older.name == "first" && older.version == 2)

            // Reads by id come from the cache: they must see the last commit, not the last caller.
            let read = try #require(try await store.get(id: user.id))
            #expect(read.name == "second" && read.version == 3, "cache holds \(read.name) v\(read.version)")
        }
    }
}
