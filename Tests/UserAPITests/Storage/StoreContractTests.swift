import Foundation
import Logging
import Testing

@testable import UserAPI

/// One contract, every backend: the same cases run against SQLite and PostgreSQL.
@Suite("UserStore contract")
struct StoreContractTests {
    /// Opens a migrated store of `backend` on fresh storage and runs `body` with it.
    func withStore<T: Sendable>(_ backend: Backend, _ body: @Sendable (any UserStore) async throws -> T) async throws -> T {
        let dir = TempDir()
        let config = try await testConfig(dir, backend: backend)
        let store = try await StoreFactory.make(config, logger: TestEnv.logger)
        return try await withRunningStores([store]) {
            _ = try await store.migrate()
            return try await body(store)
        }
    }

    static func user(_ n: Int, name: String? = nil) -> User {
        let now = Timestamp.nowMillis()
        return User.new(
            UserFields(name: name ?? "User \(n)", username: "user\(n)", email: "User\(n)@Example.com"), at: now)
    }

    @Test("create and get round-trip every field exactly", arguments: Backend.available)
    func roundTrip(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            var user = Self.user(1, name: "Zoë \"Quotes\" O'Brien — 👩🏽‍💻")
            user.createdAt = 1_700_000_000_123
            user.updatedAt = 1_700_000_000_456
            let created = try await store.create(user)
            #expect(created == user)
            #expect(try await store.get(id: user.id) == user)
            #expect(try await store.get(id: UserID.make()) == nil)
            #expect(try await store.count() == 1)
        }
    }

    @Test("unique username and case-insensitive email are enforced and reported by field", arguments: Backend.available)
    func uniqueness(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let first = try await store.create(Self.user(1))
            var sameName = Self.user(2)
            sameName.username = first.username
            await #expect(throws: StoreError.conflict(fields: ["username"])) { try await store.create(sameName) }
            var sameEmail = Self.user(3)
            sameEmail.email = first.email.uppercased()
            await #expect(throws: StoreError.conflict(fields: ["email"])) { try await store.create(sameEmail) }
            var both = Self.user(4)
            both.username = first.username
            both.email = first.email
            await #expect(throws: StoreError.conflict(fields: ["username", "email"])) { try await store.create(both) }
            #expect(try await store.count() == 1)
        }
    }

    @Test("list: id order, keyset cursor, limit, filters", arguments: Backend.available)
    func list(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            var users: [User] = []
            for i in 0..<12 { users.append(try await store.create(Self.user(i))) }
            let all = try await store.list(UserListQuery(limit: 100))
            #expect(all.map(\.id) == users.map(\.id))
            let page = try await store.list(UserListQuery(limit: 5, after: users[3].id))
            #expect(page.map(\.id) == users[4..<9].map(\.id))
            #expect(try await store.list(UserListQuery(limit: 5, after: users[11].id)).isEmpty)
            #expect(try await store.list(UserListQuery(limit: 10, username: "user7")).map(\.id) == [users[7].id])
            #expect(try await store.list(UserListQuery(limit: 10, email: "USER8@example.COM")).map(\.id) == [users[8].id])
            #expect(try await store.list(UserListQuery(limit: 10, after: users[8].id, email: "user8@example.com")).isEmpty)
        }
    }

    @Test(
        "update applies the change atomically, bumps the version, and leaves unchanged rows alone", arguments: Backend.available)
    func update(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let user = try await store.create(Self.user(1))
            let updated = try await store.update(id: user.id) { current in
                UserFields(name: "Renamed", username: current.username, email: current.email)
            }
            #expect(updated.name == "Renamed")
            #expect(updated.version == 2)
            #expect(updated.updatedAt >= user.updatedAt)
            #expect(updated.createdAt == user.createdAt)
            #expect(try await store.get(id: user.id) == updated)

            let same = try await store.update(id: user.id) { $0.fields }
            #expect(same.version == 2)

            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await store.update(id: user.id) { _ in throw Refused() }
            }
            #expect(try await store.get(id: user.id)?.version == 2)
            await #expect(throws: StoreError.notFound) {
                try await store.update(id: UserID.make()) { $0.fields }
            }
            let other = try await store.create(Self.user(2))
            await #expect(throws: StoreError.conflict(fields: ["username"])) {
                try await store.update(id: other.id) { UserFields(name: $0.name, username: "user1", email: $0.email) }
            }
            #expect(try await store.get(id: other.id) == other)
        }
    }

    @Test("concurrent read-modify-write updates never lose a change", arguments: Backend.available)
    func concurrentUpdates(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let user = try await store.create(Self.user(1, name: "0"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        _ = try await store.update(id: user.id) { current in
                            UserFields(name: String(Int(current.name)! + 1), username: current.username, email: current.email)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let final = try #require(try await store.get(id: user.id))
            #expect(final.name == "40")
            #expect(final.version == 41)
        }
    }

    @Test("delete checks the precondition against the current row", arguments: Backend.available)
    func delete(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let user = try await store.create(Self.user(1))
            struct Refused: Error {}
            await #expect(throws: Refused.self) { try await store.delete(id: user.id) { _ in throw Refused() } }
            #expect(try await store.get(id: user.id) != nil)
            try await store.delete(id: user.id) { #expect($0 == user) }
            #expect(try await store.get(id: user.id) == nil)
            await #expect(throws: StoreError.notFound) { try await store.delete(id: user.id) { _ in } }
        }
    }

    @Test(
        "many concurrent creates all commit (group commit) and a failing one does not sink the batch",
        arguments: Backend.available)
    func concurrentCreates(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let results = await withTaskGroup(of: Bool.self) { group in
                for i in 0..<300 {
                    group.addTask {
                        // Every 10th collides with an earlier username.
                        var user = Self.user(i)
                        if i % 10 == 9 { user.username = "user\(i - 9)" }
                        do {
                            _ = try await store.create(user)
                            return true
                        } catch {
                            return false
                        }
                    }
                }
                var ok = 0
                for await success in group where success { ok += 1 }
                return ok
            }
            #expect(results == 270)
            #expect(try await store.count() == 270)
        }
    }

    @Test("importUsers is idempotent and keeps the newer version", arguments: Backend.available)
    func importUsers(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            let users = (0..<5).map { Self.user($0) }
            #expect(try await store.importUsers(users) == 5)
            #expect(try await store.importUsers(users) == 0)
            var newer = users[0]
            newer.name = "Newer"
            newer.version = 5
            var older = users[1]
            older.name = "Older"
            older.version = 0
            #expect(try await store.importUsers([newer, older]) == 1)
            #expect(try await store.get(id: newer.id)?.name == "Newer")
            #expect(try await store.get(id: older.id)?.name == users[1].name)
            var clash = Self.user(99)
            clash.username = users[2].username
            await #expect(throws: ImportConflict.self) { try await store.importUsers([clash]) }
            #expect(try await store.count() == 5)
        }
    }

    @Test("migrations are recorded, and running them again changes nothing", arguments: Backend.available)
    func migrateTwice(backend: Backend) async throws {
        try await withStore(backend) { store throws in
            #expect(try await store.schemaVersion() == Schema.latestVersion)
            let again = try await store.migrate()
            #expect(again.applied.isEmpty)
            #expect(again.current == Schema.latestVersion)
        }
    }

    /// PostgreSQL only: a SQLite file has one process (`ServerProcessTests` runs two `userapi migrate` at once).
    @Test(
        "several replicas migrating the same database at once all succeed, once",
        arguments: Backend.available.filter { $0 == .postgres })
    func concurrentMigrations(backend: Backend) async throws {
        let dir = TempDir()
        let config = try await testConfig(dir, backend: backend)
        var opened: [any UserStore] = []
        for _ in 0..<4 { opened.append(try await StoreFactory.make(config, logger: TestEnv.logger)) }
        let stores = opened
        let reports = try await withRunningStores(stores) {
            try await withThrowingTaskGroup(of: MigrationReport.self) { group in
                for store in stores { group.addTask { try await store.migrate() } }
                var all: [MigrationReport] = []
                for try await r in group { all.append(r) }
                return all
            }
        }
        #expect(reports.filter { !$0.applied.isEmpty }.count == 1, "exactly one applies the migrations")
        #expect(reports.allSatisfy { $0.current == Schema.latestVersion })
    }

    @Test("db copy moves everything, is idempotent, and verifies counts", arguments: Backend.available)
    func copy(targetBackend: Backend) async throws {
        let dir = TempDir()
        let source = try await StoreFactory.make(try await testConfig(dir, backend: .sqlite), logger: TestEnv.logger)
        var targetConfig = try await testConfig(dir, backend: targetBackend)
        if targetBackend == .sqlite { targetConfig.database.url = "sqlite:\(dir.file("target.sqlite"))" }
        let target = try await StoreFactory.make(targetConfig, logger: TestEnv.logger)
        try await withRunningStores([source, target]) {
            _ = try await source.migrate()
            _ = try await target.migrate()
            for i in 0..<57 { _ = try await source.create(Self.user(i)) }
            let first = try await StoreCopier.copy(from: source, to: target, batchSize: 10)
            #expect(first == .init(sourceCount: 57, targetCount: 57, written: 57, read: 57))
            let second = try await StoreCopier.copy(from: source, to: target, batchSize: 10)
            #expect(second.written == 0)
            let sample = try await source.list(UserListQuery(limit: 57))
            for user in sample { #expect(try await target.get(id: user.id) == user) }
        }
    }
}
