import Foundation
import PostgresNIO
import Synchronization
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

    /// Process ids of the server backends serving userapi connections to `database`.
    func serverSideBackends(_ database: String) throws -> [Int32] {
        let base = try #require(TestEnv.postgresURL)
        let result = try psql(
            base, "-qtAc",
            "SELECT pid FROM pg_stat_activity WHERE datname = '\(database)' AND application_name = 'userapi'")
        #expect(result.status == 0, "psql failed: \(result.stderr)")
        return result.stdout.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    }

    /// How a call on a silent connection is given up.
    enum GiveUp: String, CaseIterable, CustomTestStringConvertible {
        /// Its statement deadline passes.
        case deadline
        /// Its caller is cancelled first, as the readiness check cancels its ping after 800 ms.
        case cancellation
        var testDescription: String { rawValue }
    }

    /// A database that stops answering without closing the connection (a
    /// network partition, a frozen VM, a failover that leaves the old address
    /// silent). Simulated by stopping the one server process behind the
    /// store's only connection with SIGSTOP: the TCP connection stays open and
    /// nothing comes back. The call must end when it is given up, and the stuck
    /// connection must leave the pool: with a pool of one, a connection still
    /// leased to the abandoned query would make every later call wait for a
    /// connection until the kernel gives up on the socket (minutes).
    @Test(
        "a call on a connection whose server stops answering ends when given up, and the connection is replaced",
        arguments: GiveUp.allCases)
    func silentServerIsAbandoned(_ giveUp: GiveUp) async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.poolSize = 1
        // Every call of this store has these deadlines, the set-up and follow-up pings included, and
        // each of those may have to open a connection while the other suites load the machine and
        // the server: 3 s leaves them room (2 s failed once in CI).
        let deadline: Duration = .seconds(3)
        config.database.statementTimeout = giveUp == .deadline ? deadline : .seconds(60)
        config.database.acquireTimeout = .seconds(2)
        let database = try #require(URLComponents(string: config.database.url)?.path.dropFirst()).description
        let store = try await StoreFactory.make(config, logger: TestEnv.logger)
        try await withRunningStores([store]) {
            // Set-up, not the subject: the pool's one connection exists and answers.
            try await waitUntilSucceeds { try await store.ping() }
            let backends = try serverSideBackends(database)
            try #require(backends.count == 1, "expected the pool's one connection, found \(backends)")
            let frozen = backends[0]
            try #require(kill(frozen, SIGSTOP) == 0, "cannot stop backend \(frozen): errno \(errno)")
            // Whatever happens below, the backend runs again (it then finds its socket closed and exits).
            let resumed = Mutex(false)
            func resume() {
                resumed.withLock { done in
                    if !done { _ = kill(frozen, SIGCONT) }
                    done = true
                }
            }
            defer { resume() }

            let start = ContinuousClock.now
            let finished = Mutex<Duration?>(nil)
            let call = Task {
                defer { finished.withLock { $0 = .now - start } }
                try await store.ping()
            }
            if giveUp == .cancellation {
                try await Task.sleep(for: .milliseconds(300))
                call.cancel()
            }
            // Bounded wait, so a regression fails this test instead of hanging it.
            while finished.withLock({ $0 }) == nil, ContinuousClock.now - start < .seconds(10) {
                try await Task.sleep(for: .milliseconds(50))
            }
            let elapsed = finished.withLock { $0 }
            #expect(elapsed != nil, "the call was still waiting after 10 s")
            if elapsed == nil { resume() }
            let result = await call.result
            switch giveUp {
            case .deadline:
                guard case .failure(let error) = result, case .unavailable = error as? StoreError else {
                    Issue.record("expected StoreError.unavailable, got \(result)")
                    return
                }
                if let elapsed {
                    #expect(elapsed < deadline + .seconds(1.5), "the call took \(elapsed) against a \(deadline) deadline")
                }
            case .cancellation:
                #expect(throws: CancellationError.self) { try result.get() }
                if let elapsed { #expect(elapsed < .seconds(2), "the cancelled call took \(elapsed) to end") }
            }

            // The server process stays stopped: the next call must get a new connection.
            let again = ContinuousClock.now
            try await store.ping()
            #expect(ContinuousClock.now - again < .seconds(2), "the next call waited for the abandoned connection")
            let now = try serverSideBackends(database).filter { $0 != frozen }
            #expect(now.count == 1, "expected one new connection, found \(now)")
        }
    }

    /// A direct connection to the test server (outside any pool).
    func connect() async throws -> PostgresConnection {
        let base = try #require(TestEnv.postgresURL)
        let url = try #require(URLComponents(string: base))
        let host = try #require(url.host)
        let configuration = PostgresConnection.Configuration(
            host: host, port: url.port ?? 5432, username: url.user ?? "postgres",
            password: url.password, database: String(url.path.dropFirst()), tls: .disable)
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: TestEnv.logger)
    }

    @Test("a deadline closes the connection its call holds, never one the call has released or not yet got")
    func connectionLease() async throws {
        // Held when the deadline passes: closed.
        let held = try await connect()
        let lease = ConnectionLease()
        #expect(lease.hold(held))
        #expect(lease.started.isSet)
        lease.abandon()
        #expect(lease.wasAbandoned)
        try await held.closeFuture.get()
        #expect(held.isClosed)

        // Released before the deadline (back in the pool, maybe another call's now): left open.
        let released = try await connect()
        let second = ConnectionLease()
        #expect(second.hold(released))
        second.release()
        second.abandon()
        #expect(!second.wasAbandoned)
        try await released.query("SELECT 1", logger: TestEnv.logger)
        #expect(!released.isClosed)

        // Handed out after the deadline: refused, so the call gives it back unused, and left open.
        let third = ConnectionLease()
        third.abandon()
        #expect(!third.hold(released))
        #expect(!third.started.isSet)
        #expect(!third.wasAbandoned)
        try await released.query("SELECT 1", logger: TestEnv.logger)
        try await released.close()
    }
}
