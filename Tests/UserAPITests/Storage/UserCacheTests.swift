import Testing

@testable import UserAPI

@Suite("SQLite read cache")
struct UserCacheTests {
    func user(_ id: String, version: Int64 = 1, name: String = "A") -> User {
        User(id: id, name: name, username: "u\(id)", email: "\(id)@example.com", createdAt: 1, updatedAt: 1, version: version)
    }

    @Test("a read that started before a write cannot put the old row back")
    func staleFillRejected() {
        let cache = UserCache(capacity: 10)
        let (_, generation) = cache.get("a")  // reader misses, goes to the database...
        cache.store(user("a", version: 2, name: "new"))  // ...meanwhile a write commits
        cache.fill(user("a", version: 1, name: "old"), readAt: generation)  // the reader's late, stale row
        #expect(cache.get("a").user?.name == "new")
    }

    @Test("a read that started before a delete cannot resurrect the user")
    func deleteRaceRejected() {
        let cache = UserCache(capacity: 10)
        cache.store(user("a"))
        cache.remove("a")
        let (_, generation) = cache.get("a")
        cache.remove("b")  // any commit in between
        cache.fill(user("a"), readAt: generation)
        #expect(cache.get("a").user == nil)
    }

    @Test("fills when nothing changed; bounded by capacity; off at capacity 0")
    func fillAndBound() {
        let cache = UserCache(capacity: 3)
        for id in ["a", "b", "c", "d", "e"] {
            let (_, generation) = cache.get(id)
            cache.fill(user(id), readAt: generation)
        }
        #expect(cache.count == 3)
        let off = UserCache(capacity: 0)
        let (_, generation) = off.get("a")
        off.fill(user("a"), readAt: generation)
        #expect(off.get("a").user == nil)
    }

    @Test("through the store: reads after writes see the write, and the cache serves repeated reads")
    func throughStore() async throws {
        let dir = TempDir()
        var settings = SQLiteSettings(path: dir.file("c.sqlite"))
        settings.cachedUsers = 100
        let store = try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let now = Timestamp.nowMillis()
            let created = try await store.create(
                User(id: UserID.make(), name: "A", username: "abc", email: "a@b.co", createdAt: now, updatedAt: now, version: 1))
            #expect(try await store.get(id: created.id)?.name == "A")
            #expect(store.cache.count == 1)
            _ = try await store.update(id: created.id) { UserFields(name: "B", username: $0.username, email: $0.email) }
            #expect(try await store.get(id: created.id)?.name == "B")
            try await store.delete(id: created.id) { _ in }
            #expect(try await store.get(id: created.id) == nil)
        }
    }
}
