import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import UserAPI

/// A fresh directory under /tmp, removed when the test ends.
final class TempDir: @unchecked Sendable {
    let path: String

    init() {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("userapi-test-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    func write(_ name: String, _ contents: String) -> String {
        let p = file(name)
        try! contents.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum TestEnv {
    /// URL of the throwaway PostgreSQL started by scripts/with-postgres.sh.
    static var postgresURL: String? { ProcessInfo.processInfo.environment["USERAPI_TEST_POSTGRES_URL"] }

    /// In CI a missing PostgreSQL must fail, not skip (see .ci/run).
    static var requirePostgres: Bool { ProcessInfo.processInfo.environment["USERAPI_REQUIRE_POSTGRES"] == "1" }

    static let token = "test-token-0123456789"

    static let logger: Logger = {
        var logger = Logger(label: "userapi-test")
        logger.logLevel =
            ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }()
}

/// The storage backends the contract tests run against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// Backends available in this run; PostgreSQL only when the test command started one.
    static var available: [Backend] {
        if TestEnv.postgresURL != nil || TestEnv.requirePostgres { return [.sqlite, .postgres] }
        return [.sqlite]
    }
}

/// A configuration for an in-process test server on a free port, with its
/// own SQLite file or its own PostgreSQL database (tests run in parallel).
func testConfig(_ dir: TempDir, backend: Backend = .sqlite, tokens: String? = TestEnv.token) async throws -> AppConfig {
    var config = AppConfig()
    config.http.port = 0
    config.auth.tokens = tokens
    config.log.access = false
    config.instanceName = "test-instance"
    config.shutdown.drainDelay = .zero
    switch backend {
    case .sqlite:
        config.database.url = "sqlite:\(dir.file("users.sqlite"))"
    case .postgres:
        config.database.url = try await freshPostgresDatabase()
        // Tests run in parallel against one server (max_connections = 200).
        config.database.poolSize = 4
        // Hundreds of concurrent calls queue for those 4 connections on a loaded machine:
        // the wait is bounded only to turn a hang into a failure.
        config.database.acquireTimeout = .seconds(120)
    }
    return config
}

/// Runs psql (from PATH, as scripts/with-postgres.sh sets it up) against `url`.
func psql(_ url: String, _ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
    try runChild("/usr/bin/env", ["psql", url] + arguments, environment: ProcessInfo.processInfo.environment, cwd: nil)
}

/// Creates an empty database on the test server and returns its URL.
func freshPostgresDatabase() async throws -> String {
    let base = try #require(TestEnv.postgresURL, "PostgreSQL tests need scripts/with-postgres.sh (make test-swift)")
    let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
    let result = try psql(base, "-qc", "CREATE DATABASE \(name)")
    #expect(result.status == 0, "CREATE DATABASE failed: \(result.stderr)")
    var components = try #require(URLComponents(string: base))
    components.path = "/" + name
    return try #require(components.string)
}

/// Builds the real application and runs `body` against it over real HTTP.
func withApp<T: Sendable>(
    _ config: AppConfig, _ body: @Sendable (any TestClientProtocol, UserAPIApplication) async throws -> T
) async throws -> T {
    let app = try await buildApplication(config, logger: TestEnv.logger)
    return try await app.test(.live) { client in try await body(client, app) }
}

extension TestClientProtocol {
    @discardableResult
    func request(
        _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, headers: HTTPFields = [:],
        token: String? = TestEnv.token, contentType: String? = "application/json"
    ) async throws -> TestResponse {
        var headers = headers
        if let token, headers[.authorization] == nil { headers[.authorization] = "Bearer \(token)" }
        if json != nil, let contentType, headers[.contentType] == nil { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Repeats a request until it answers `status` or `timeout` passes, for
    /// changes that take effect in the background; returns the last answer,
    /// so the caller's assertion still fails if the change never comes.
    func request(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = TestEnv.token,
        until status: HTTPResponse.Status, timeout: Duration = .seconds(10)
    ) async throws -> TestResponse {
        let deadline = ContinuousClock.now + timeout
        var response = try await request(method, uri, token: token)
        while response.status != status, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            response = try await request(method, uri, token: token)
        }
        return response
    }

    /// Creates a user and returns its JSON object.
    func createUser(_ name: String, _ username: String, _ email: String) async throws -> [String: Any] {
        let response = try await request(
            .post, "/users", json: #"{"name":"\#(name)","username":"\#(username)","email":"\#(email)"}"#)
        #expect(response.status == .created, "create \(username): \(response.text)")
        return try response.object()
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The header fields by name, without the two that differ between any
    /// two answers (`Date`, `X-Request-ID`): for comparing answers of two paths.
    var headersBesideDateAndRequestID: [String: String] {
        var out: [String: String] = [:]
        for field in headers where field.name != .date && field.name != RequestObservationMiddleware.requestIDHeader {
            out[field.name.canonicalName] = field.value
        }
        return out
    }

    func object(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(value as? [String: Any], "expected a JSON object, got \(text)", sourceLocation: sourceLocation)
    }

    func array(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(value as? [[String: Any]], "expected a JSON array, got \(text)", sourceLocation: sourceLocation)
    }

    /// Asserts an RFC 9457 problem with this status, returning it.
    @discardableResult
    func problem(_ status: HTTPResponse.Status, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        #expect(self.status == status, "body: \(text)", sourceLocation: sourceLocation)
        #expect(headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        let problem = try object(sourceLocation: sourceLocation)
        #expect(problem["status"] as? Int == Int(status.code), sourceLocation: sourceLocation)
        #expect((problem["type"] as? String)?.hasPrefix("/problems/") == true, sourceLocation: sourceLocation)
        #expect(problem["title"] is String, sourceLocation: sourceLocation)
        #expect((problem["detail"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
        return problem
    }

    /// The `field` names of a problem's `errors` array.
    func problemFields() throws -> [String] {
        let errors = try object()["errors"] as? [[String: Any]] ?? []
        return errors.compactMap { $0["field"] as? String }
    }
}
