import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import UserAPI

@Suite("Authentication")
struct AuthTests {
    let body = #"{"name":"Ada","username":"ada","email":"ada@example.com"}"#

    @Test("writes need a valid token, as Bearer or X-Auth-Token; reads are public by default")
    func writesNeedToken() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
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

    @Test("auth.protect_reads requires a token for reads too, never for probes")
    func protectReads() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.auth.protectReads = true
        try await withApp(config) { client, _ in
            try await client.request(.get, "/users", token: nil).problem(.unauthorized)
            #expect(try await client.request(.get, "/users").status == .ok)
            #expect(try await client.request(.get, "/healthz", token: nil).status == .ok)
            #expect(try await client.request(.get, "/readyz", token: nil).status == .ok)
        }
    }

    @Test("with no token configured, writes are refused with instructions, and no default token exists")
    func noTokenConfigured() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, tokens: nil)) { client, _ in
            for token in [nil, "", "admin", "changeme", "token", TestEnv.token] as [String?] {
                let response = try await client.request(.post, "/users", json: body, token: token)
                let detail = try response.problem(.unauthorized)["detail"] as? String
                #expect(detail?.contains("AUTH_TOKENS") == true)
            }
        }
    }

    @Test("a rotated tokens file takes effect without a restart")
    func rotation() async throws {
        let dir = TempDir()
        let file = dir.write("tokens", "old-token\n")
        var config = try await testConfig(dir, tokens: nil)
        config.auth.tokensFile = file
        config.auth.reloadInterval = .milliseconds(100)
        try await withApp(config) { client, _ in
            #expect(try await client.request(.post, "/users", json: body, token: "old-token").status == .created)
            _ = dir.write("tokens", "# rotated\nnew-token\n")
            // Reloaded every 100 ms; a busy machine may take longer, so ask until it shows.
            let missing = "/users/00000000-0000-7000-8000-000000000000"
            try await client.request(.delete, missing, token: "old-token", until: .unauthorized)
                .problem(.unauthorized)
            try await client.request(.delete, "/users/00000000-0000-7000-8000-000000000000", token: "new-token")
                .problem(.notFound)
        }
    }
}
