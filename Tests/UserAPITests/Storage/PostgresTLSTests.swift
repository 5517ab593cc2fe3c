import Foundation
import Testing

@testable import UserAPI

/// TLS to PostgreSQL, against the test server's own certificate (signed by a
/// throwaway CA, for 127.0.0.1 and localhost; see scripts/with-postgres.sh).
@Suite(
    "PostgreSQL TLS",
    .enabled(if: ProcessInfo.processInfo.environment["USERAPI_TEST_POSTGRES_CA"] != nil || TestEnv.requirePostgres))
struct PostgresTLSTests {
    /// A CA file that does not exist when the variable is unset: the tests then fail, naming it.
    var ca: String { ProcessInfo.processInfo.environment["USERAPI_TEST_POSTGRES_CA"] ?? "/USERAPI_TEST_POSTGRES_CA-is-not-set" }
    var otherCA: String { ProcessInfo.processInfo.environment["USERAPI_TEST_OTHER_CA"] ?? "/USERAPI_TEST_OTHER_CA-is-not-set" }

    func store(mode: AppConfig.Database.TLSMode, caFile: String?, host: String = "127.0.0.1") async throws
        -> PostgresUserStore
    {
        let dir = TempDir()
        var config = try await testConfig(dir, backend: .postgres)
        var url = try #require(URLComponents(string: config.database.url))
        url.host = host
        config.database.url = try #require(url.string)
        config.database.tlsMode = mode
        config.database.tlsCAFile = caFile
        // A bound, not an expectation: generous, so a loaded CI host cannot fail the test.
        config.database.connectTimeout = .seconds(60)
        return try #require(try await StoreFactory.make(config, logger: TestEnv.logger) as? PostgresUserStore)
    }

    /// Connects with the given TLS settings; returns whether the server saw an encrypted connection.
    @discardableResult
    func ping(mode: AppConfig.Database.TLSMode, caFile: String?, host: String = "127.0.0.1") async throws -> Bool {
        let store = try await store(mode: mode, caFile: caFile, host: host)
        return try await withRunningStores([store]) {
            try await store.ping()
            return try await store.connectionUsesTLS()
        }
    }

    @Test("disable connects in plain text")
    func disable() async throws {
        #expect(try await ping(mode: .disable, caFile: nil) == false)
    }

    @Test("require encrypts without checking the certificate")
    func require() async throws {
        #expect(try await ping(mode: .require, caFile: nil) == true)
    }

    @Test("verify-full accepts the server when the CA bundle signed its certificate for that host")
    func verifyFull() async throws {
        #expect(try await ping(mode: .verifyFull, caFile: ca) == true)
        #expect(try await ping(mode: .verifyFull, caFile: ca, host: "localhost") == true)
    }

    @Test("verify-full refuses a certificate the CA bundle did not sign")
    func verifyFullWrongCA() async throws {
        let store = try await store(mode: .verifyFull, caFile: otherCA)
        let error = await #expect(throws: (any Error).self) { try await store.connectDirectly() }
        let text = error.map { String(reflecting: $0) } ?? ""
        #expect(text.contains("CERTIFICATE_VERIFY_FAILED"), "not a certificate error: \(text)")
    }

    @Test("a missing CA file is a configuration error, reported before connecting")
    func missingCAFile() async throws {
        await #expect(throws: ConfigurationError.self) {
            try await ping(mode: .verifyFull, caFile: "/nonexistent/ca.pem")
        }
    }
}
