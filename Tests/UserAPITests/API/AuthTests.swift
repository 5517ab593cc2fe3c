import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import UserAPI

@Suite("Authentication")
struct AuthTests {
    let body = #"{"name":"Ada","username":"ada","email":"ada@example.com"}"#

    @Test("writes need a valid token, as Bearer or X-Auth-Token; reads are public when protect_reads is off")
    func writesNeedToken() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.auth.protectReads = false
        try await withApp(config) { client, _ in
            let missing = try await client.request(.post, "/users", json: body, token: nil)
            try missing.problem(.unauthorized)
            #expect(missing.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            try await client.request(.post, "/users", json: body, token: "wrong").problem(.unauthorized)
            try await client.request(.post, "/users", json: body, headers: [.authorization: "Basic \(TestEnv.token)"], token: nil)
                .problem(.unauthorized)
            try await client.request(.post, "/users", json: body, headers: [.authorization: "Bearer"], token: nil)
                .problem(.unauthorized)
            #expect(try await client.request(.get, "/users", token: nil).array().isEmpty, "refused writes wrote nothing")

            let xAuth = HTTPField.Name("X-Auth-Token")!
            let created = try await client.request(.post, "/users", json: body, headers: [xAuth: TestEnv.token], token: nil)
            #expect(created.status == .created)
            let id = try #require(try created.object()["id"] as? String)
            #expect(try await client.request(.get, "/users/\(id)", token: nil).status == .ok)
            try await client.request(.delete, "/users/\(id)", token: nil).problem(.unauthorized)
            try await client.request(.patch, "/users/\(id)", json: "{}", token: nil).problem(.unauthorized)
            try await client.request(.put, "/users/\(id)", json: body, token: nil).problem(.unauthorized)
            #expect(
                try await client.request(
                    .delete, "/users/\(id)", headers: [.authorization: "bearer \(TestEnv.token)"], token: nil
                )
                .status == .noContent, "the scheme is case-insensitive")
        }
    }

    @Test("reads need a token by default; probes, metrics and a bare / stay open; details need a token")
    func protectReads() async throws {
        let dir = TempDir()
        #expect(AppConfig().auth.protectReads, "the default protects reads")
        try await withApp(try await testConfig(dir)) { client, _ in
            for path in ["/users", "/users/00000000-0000-7000-8000-000000000000", "/version", "/openapi.yaml"] {
                try await client.request(.get, path, token: nil).problem(.unauthorized)
            }
            #expect(try await client.request(.get, "/users").status == .ok)
            #expect(try await client.request(.get, "/healthz", token: nil).status == .ok)
            #expect(try await client.request(.get, "/readyz", token: nil).status == .ok)
            #expect(try await client.request(.get, "/metrics", token: nil).status == .ok)

            let anonymous = try await client.request(.get, "/", token: nil).object()
            #expect(Set(anonymous.keys) == ["service", "instance"], "\(anonymous)")
            let holder = try await client.request(.get, "/").object()
            #expect(holder["version"] as? String == BuildInfo.version && holder["storage"] as? String == "sqlite")
            let quiet = try await client.request(.get, "/readyz?verbose", token: nil)
            #expect(quiet.text == #"{"status":"ready"}"#, "no check list without a token: \(quiet.text)")
            #expect(try await client.request(.get, "/readyz?verbose").text.contains("[+]storage ok"))
        }
    }

    @Test("a read-only token reads and gets 403 on every write")
    func readOnlyToken() async throws {
        let dir = TempDir()
        let reader = "reader-token-0123456789"
        let config = try await testConfig(dir, tokens: "\(TestEnv.token),ro:\(reader)")
        try await withApp(config) { client, _ in
            let id = try #require(try await client.createUser("Ada", "ada", "ada@example.com")["id"] as? String)
            #expect(try await client.request(.get, "/users/\(id)", token: reader).status == .ok)
            try await client.request(.post, "/users", json: body, token: reader).problem(.forbidden)
            try await client.request(.patch, "/users/\(id)", json: #"{"name":"X"}"#, token: reader).problem(.forbidden)
            try await client.request(.put, "/users/\(id)", json: body, token: reader).problem(.forbidden)
            try await client.request(.delete, "/users/\(id)", token: reader).problem(.forbidden)
            #expect(try await client.request(.get, "/users/\(id)").object()["name"] as? String == "Ada")
        }
    }

    @Test("failed authentications are counted, and a client past the limit gets 429 until its minute is over")
    func failureLimit() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.auth.failureLimit = 3
        try await withApp(config) { client, _ in
            for _ in 0..<3 { try await client.request(.get, "/users", token: "wrong-token-0123456789").problem(.unauthorized) }
            let limited = try await client.request(.get, "/users", token: TestEnv.token)
            try limited.problem(.tooManyRequests)
            let wait = try #require(Int(limited.headers[.retryAfter] ?? ""))
            #expect((1...60).contains(wait))
            let metrics = try await client.request(.get, "/metrics", token: nil).text
            #expect(metrics.contains(#"userapi_auth_failures_total{reason="invalid"} 3"#), "\(metrics)")
            #expect(metrics.contains(#"userapi_auth_failures_total{reason="limited"} 1"#))
        }
    }

    @Test("the limiter tracks a bounded number of addresses, forgetting the oldest first")
    func limiterIsBounded() {
        let limiter = FailureLimiter(limit: 2, window: .seconds(60), capacity: 100)
        let start = ContinuousClock.now
        for i in 0..<250 { limiter.recordFailure("10.0.\(i / 256).\(i % 256)", now: start + .milliseconds(i)) }
        #expect(limiter.tracked <= 100)
        limiter.recordFailure("10.9.9.9", now: start + .seconds(1))
        limiter.recordFailure("10.9.9.9", now: start + .seconds(1))
        #expect(limiter.blocked("10.9.9.9", now: start + .seconds(2)) != nil)
        #expect(limiter.blocked("10.9.9.9", now: start + .seconds(62)) == nil, "the window ends")
    }

    @Test("with no token configured, writes are refused with instructions, and no default token exists")
    func noTokenConfigured() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, tokens: nil)) { client, _ in
            for token in [nil, "", "admin", "changeme", "token", TestEnv.token] as [String?] {
                // With no tokens at all, every attempt is told how to configure one (not limited).
                let response = try await client.request(.post, "/users", json: body, token: token)
                let detail = try response.problem(.unauthorized)["detail"] as? String
                #expect(detail?.contains("AUTH_TOKENS") == true)
            }
        }
    }

    @Test("a rotated tokens file takes effect without a restart")
    func rotation() async throws {
        let dir = TempDir()
        let file = dir.write("tokens", "old-token-0123456789\n")
        var config = try await testConfig(dir, tokens: nil)
        config.auth.tokensFile = file
        config.auth.reloadInterval = .milliseconds(100)
        try await withApp(config) { client, _ in
            #expect(try await client.request(.post, "/users", json: body, token: "old-token-0123456789").status == .created)
            _ = dir.write("tokens", "# rotated\nnew-token-0123456789\n")
            // Reloaded every 100 ms; a busy machine may take longer, so ask until it shows.
            let missing = "/users/00000000-0000-7000-8000-000000000000"
            try await client.request(.delete, missing, token: "old-token-0123456789", until: .unauthorized)
                .problem(.unauthorized)
            try await client.request(.delete, "/users/00000000-0000-7000-8000-000000000000", token: "new-token-0123456789")
                .problem(.notFound)
        }
    }
}
