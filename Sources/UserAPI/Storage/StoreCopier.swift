/// `userapi db copy`: moves every user from one store to another (SQLite →
/// PostgreSQL when one machine is no longer enough, or back).
///
/// Rows are read in id order and upserted by id, keeping the newer version
/// when a row exists on both sides, so the copy can be interrupted and run
/// again. Users are never deleted from the target.
public enum StoreCopier {
    public struct Report: Sendable, Equatable {
        public var sourceCount: Int
        public var targetCount: Int
        /// Rows inserted or updated in the target by this run.
        public var written: Int
        public var read: Int
    }

    public static func copy(
        from source: any UserStore, to target: any UserStore, batchSize: Int = 500,
        progress: @Sendable (_ read: Int, _ total: Int, _ written: Int) -> Void = { _, _, _ in }
    ) async throws -> Report {
        let total = try await source.count()
        var after: String?
        var read = 0
        var written = 0
        while true {
            let page = try await source.list(UserListQuery(limit: batchSize, after: after))
            if page.isEmpty { break }
            written += try await target.importUsers(page)
            read += page.count
            after = page.last?.id
            progress(read, total, written)
            if page.count < batchSize { break }
        }
        let sourceCount = try await source.count()
        let targetCount = try await target.count()
        return Report(sourceCount: sourceCount, targetCount: targetCount, written: written, read: read)
    }
}

/// Runs the stores' background work (PostgreSQL pools need it) around `body`,
/// then closes them. For commands that use storage without the HTTP server.
public func withRunningStores<T: Sendable>(
    _ stores: [any UserStore], _ body: @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        for store in stores {
            group.addTask {
                try await store.run()
                return nil
            }
        }
        do {
            let value = try await body()
            group.cancelAll()
            for store in stores { await store.shutdown() }
            while let _ = try? await group.next() {}
            return value
        } catch {
            group.cancelAll()
            for store in stores { await store.shutdown() }
            while let _ = try? await group.next() {}
            throw error
        }
    }
}
