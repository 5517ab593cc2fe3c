import Foundation
import PostgresNIO
import Synchronization
import Testing

@testable import UserAPI

/// The PostgreSQL pool's behaviour, as the server sees it (pg_stat_activity).
@Suite("PostgreSQL pool", .enabled(if: TestEnv.postgresURL != nil || TestEnv.requirePostgres))
struct PostgresPoolTests {
    /// Backend process ids of the userapi connections to `database`.
    func serverSideBackends(_ database: String) throws -> [Int32] {
        let base = try #require(TestEnv.postgresURL)
        let result = try psql(
            base, "-qtAc",
            "SELECT pid FROM pg_stat_activity WHERE datname = '\(database)' AND application_name = 'userapi'")
        #expect(result.status == 0, "psql failed: \(result.stderr)")
        return result.stdout.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    }

    func store(_ config: AppConfig) async throws -> (PostgresUserStore, String) {
        let database = try #require(URLComponents(string: config.database.url)?.path.dropFirst()).description
        let store = try #require(try await StoreFactory.make(config, logger: TestEnv.logger) as? PostgresUserStore)
        return (store, database)
    }

    /// `call`'s result; past a generous bound (which only turns a hang into a failure) it is cancelled.
    func outcome<T: Sendable>(of call: Task<T, any Error>) async throws -> Result<T, any Error> {
        try await withDeadline(.seconds(120)) {
            await withTaskCancellationHandler {
                await call.result
            } onCancel: {
                call.cancel()
            }
        }
    }

    /// Runs `body` with the server process behind the store's only connection
    /// stopped (SIGSTOP), and lets it run again afterwards (it then finds its
    /// socket closed and exits).
    func withFrozenBackend(
        of store: PostgresUserStore, _ database: String, _ body: (Int32) async throws -> Void
    ) async throws {
        let backends = try await store.holdingConnection { try serverSideBackends(database) }
        try #require(backends.count == 1, "expected the pool's one connection, found \(backends)")
        let frozen = backends[0]
        try #require(kill(frozen, SIGSTOP) == 0, "cannot stop backend \(frozen): errno \(errno)")
        defer { _ = kill(frozen, SIGCONT) }
        try await body(frozen)
    }

    @Test("idle connections are closed after the idle timeout; the next call opens a new one")
    func idleConnectionsClose() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.idleConnectionTimeout = .seconds(1)
        let (store, database) = try await store(config)
        try await withRunningStores([store]) {
            // While a call holds it, the connection is there.
            let first = try await store.holdingConnection { try serverSideBackends(database) }
            #expect(first.count == 1)
            // Once idle, the pool closes it: wait for that state (a generous bound only stops a hang).
            try await waitUntil(within: .seconds(60)) { (try? serverSideBackends(database))?.isEmpty == true }
            #expect(try serverSideBackends(database).isEmpty, "the idle connection was not closed")
            let second = try await store.holdingConnection { try serverSideBackends(database) }
            #expect(second.count == 1 && second != first, "expected a new connection, got \(second) after \(first)")
        }
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
    /// silent), simulated by stopping the one server process behind the
    /// store's only connection with SIGSTOP: the TCP connection stays open and
    /// nothing comes back. The call must end when it is given up, and the
    /// stuck connection must leave the pool: with a pool of one, a connection
    /// still leased to the abandoned query would make every later call wait.
    @Test(
        "a call on a connection whose server stops answering ends when given up, and the connection is replaced",
        arguments: GiveUp.allCases)
    func silentServerIsAbandoned(_ giveUp: GiveUp) async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.poolSize = 1
        config.database.statementTimeout = giveUp == .deadline ? .seconds(2) : .seconds(300)
        let (store, database) = try await store(config)
        try await withRunningStores([store]) {
            try await withFrozenBackend(of: store, database) { frozen in

                let call = Task { try await store.ping() }
                if giveUp == .cancellation {
                    // Cancel once the call holds the connection and waits for the silent server.
                    try await waitUntil(within: .seconds(60)) { store.leasedConnections == 1 }
                    #expect(store.leasedConnections == 1)
                    call.cancel()
                }
                // The one bound here only turns a hang into a failure; nothing is timed.
                let result = try await outcome(of: call)
                switch giveUp {
                case .deadline:
                    guard case .failure(let error) = result, case .unavailable(let reason) = error as? StoreError else {
                        Issue.record("expected StoreError.unavailable, got \(result)")
                        return
                    }
                    #expect(reason.contains("did not answer"), "\(reason)")
                case .cancellation:
                    #expect(throws: CancellationError.self) { try result.get() }
                }

                // The server process stays stopped: a later call gets a new connection from a new backend
                // (right after a failure the store fails fast for a moment, so ask until it does).
                let replaced = Mutex<[Int32]>([])
                try await waitUntilSucceeds(within: .seconds(120)) {
                    let backends = try await store.holdingConnection { try serverSideBackends(database) }
                    replaced.withLock { $0 = backends }
                }
                let now = replaced.withLock { $0 }
                #expect(now.filter { $0 != frozen }.count == 1, "expected a new backend beside \(frozen), found \(now)")
            }
        }
    }

    /// The pool's one connection is closed by a call's deadline while another
    /// call waits for it: the waiting call ends, on a fresh connection or with
    /// a 503 at its acquire timeout; it never hangs.
    @Test("a call waiting for a connection that a deadline closes ends too")
    func waiterOfAClosedConnectionEnds() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.poolSize = 1
        config.database.statementTimeout = .seconds(2)
        config.database.acquireTimeout = .seconds(5)
        let (store, database) = try await store(config)
        try await withRunningStores([store]) {
            try await withFrozenBackend(of: store, database) { _ in

                let stuck = Task { try await store.ping() }
                try await waitUntil(within: .seconds(60)) { store.leasedConnections == 1 }
                let waiter = Task { try await store.ping() }
                try await waitUntil(within: .seconds(60)) { store.waitingCalls == 1 }
                #expect(store.waitingCalls == 1, "the second call never waited for the connection")

                let first = try await outcome(of: stuck)
                guard case .failure(let error) = first, case .unavailable = error as? StoreError else {
                    Issue.record("the stuck call: expected StoreError.unavailable, got \(first)")
                    return
                }
                if case .failure(let error) = try await outcome(of: waiter) {
                    #expect(error as? StoreError != nil, "the waiting call failed with \(error)")
                }
            }
        }
    }

    /// A query written to a connection that has just closed is never completed
    /// by postgres-nio (its write fails on the channel, and nobody fails the
    /// query). The statement deadline answers the call anyway.
    @Test("a query the driver never completes ends at the statement deadline")
    func queryOnAClosedConnectionEnds() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        config.database.statementTimeout = .seconds(2)
        let (store, _) = try await store(config)
        try await withRunningStores([store]) {
            let logger = TestEnv.logger
            let call = Task {
                try await store.onPooledConnection { connection in
                    try await connection.close()
                    _ = try await connection.query("SELECT 1", logger: logger).collect()
                }
            }
            let result = try await outcome(of: call)
            guard case .failure(let error) = result, error as? StoreError != nil || error is PSQLError else {
                Issue.record("expected the call to fail, got \(result)")
                return
            }
        }
    }
}
