import Foundation
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

    @Test("writes queued beyond one transaction commit in full batches, and every caller hears its own outcome")
    func fullBatches() async throws {
        let dir = TempDir()
        var settings = SQLiteSettings(path: dir.file("w.sqlite"))
        settings.maxBatch = 8
        let store = try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
        let queued = 10 * settings.maxBatch
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let blocker = try await store.create(Self.user(-1))
            // Hold the writer inside a transaction until every create below is queued, so that
            // the writer then takes them `maxBatch` at a time (the full-batch path).
            let inside = Flag()
            async let held = store.update(id: blocker.id) { current in
                inside.set()
                let deadline = Date().addingTimeInterval(5)
                while store.queuedWrites < queued, Date() < deadline { usleep(1000) }
                return UserFields(name: "saw \(store.queuedWrites) queued", username: current.username, email: current.email)
            }
            try await waitUntil { inside.isSet }
            #expect(inside.isSet)
            let outcomes = await withTaskGroup(of: (Int, Result<User, StoreError>).self) { group in
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
            #expect(try await held.name == "saw \(queued) queued")
            #expect(outcomes.count == queued)
            for i in 0..<queued where i % 10 < 8 {
                #expect((try? outcomes[i]?.get())?.username == "user\(i)", "create \(i): \(String(describing: outcomes[i]))")
            }
            // Two creates for each such username: whichever ran first won, the other heard a conflict.
            for i in stride(from: 9, to: queued, by: 10) {
                let pair = [outcomes[i - 1], outcomes[i]].compactMap { $0 }
                #expect(pair.compactMap { try? $0.get() }.map(\.username) == ["user\(i - 1)"], "creates \(i - 1), \(i): \(pair)")
                #expect(pair.contains { $0 == .failure(.conflict(fields: ["username"])) }, "creates \(i - 1), \(i): \(pair)")
            }
            let stored = try await store.list(UserListQuery(limit: 1000, after: nil))
            #expect(stored.count == 1 + queued - queued / 10)
            #expect(Set(stored.map(\.username)) == Set((0..<queued).filter { $0 % 10 != 9 }.map { "user\($0)" } + ["user-1"]))
        }
    }
}
