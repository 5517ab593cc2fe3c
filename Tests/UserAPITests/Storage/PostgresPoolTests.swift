import Foundation
import Testing

@testable import UserAPI

/// The PostgreSQL pool's shape, as the server sees it (pg_stat_activity).
@Suite("PostgreSQL pool", .enabled(if: TestEnv.postgresURL != nil))
struct PostgresPoolTests {
    /// Connections the server has open to `database` from userapi.
    func serverSideConnections(_ database: String) throws -> Int {
        let base = try #require(TestEnv.postgresURL)
        let result = try psql(
            base, "-qtAc",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '\(database)' AND application_name = 'userapi'")
        #expect(result.status == 0, "psql failed: \(result.stderr)")
        return try #require(Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test("idle connections are closed after the idle timeout; the next call opens a new one")
    func idleConnectionsClose() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.idleConnectionTimeout = .seconds(1)
        // Other suites load the same server in parallel; connecting can take a while.
        config.database.acquireTimeout = .seconds(10)
        let database = try #require(URLComponents(string: config.database.url)?.path.dropFirst()).description
        let store = try await StoreFactory.make(config, logger: TestEnv.logger)
        try await withRunningStores([store]) {
            try await store.ping()
            #expect(try serverSideConnections(database) >= 1)
            // Bounded wait: the pool closes the connection about a second after it went idle.
            let deadline = ContinuousClock.now + .seconds(15)
            var open = try serverSideConnections(database)
            while open > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                open = try serverSideConnections(database)
            }
            #expect(open == 0, "idle connections were not closed")
            try await store.ping()
            #expect(try serverSideConnections(database) >= 1)
        }
    }
}
