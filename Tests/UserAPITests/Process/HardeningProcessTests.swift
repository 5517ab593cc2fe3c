import Foundation
import Synchronization
import Testing

@testable import UserAPI

/// Attacks and faults against the real executable: slow clients, an
/// unreachable database at start, secrets in logs.
@Suite("userapi under attack and faults", .serialized)
struct HardeningProcessTests {
    static let token = "hardening-test-token-0123"

    @Test(
        "a slow-body attack from many sockets: one client cannot take every connection, slow requests are cut off, liveness answers within 1 s"
    )
    func slowBodyAttack() async throws {
        let dir = TempDir()
        let management = try freePort()
        let server = try ServerProcess(environment: [
            "DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": Self.token,
            "HTTP_MANAGEMENT_PORT": "\(management)", "HTTP_MAX_CONNECTIONS": "400",
            "HTTP_MAX_CONNECTIONS_PER_CLIENT": "100", "HTTP_REQUEST_TIMEOUT": "5s", "LOG_ACCESS": "false",
        ])
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }

        // 300 sockets from one address, each announcing a body and sending it a byte at a time.
        var attackers: [SlowClient] = []
        for _ in 0..<300 {
            let socket = try SlowClient(port: server.port)
            try? socket.send(
                "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 10000\r\n\r\n{"
            )
            attackers.append(socket)
        }
        let trickling = Task.detached { [attackers] in
            while !Task.isCancelled {
                for socket in attackers { try? socket.send("x") }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        defer { trickling.cancel() }

        // Past the per-client limit the server hangs up at once: at most 100 of them stay.
        try await waitUntil(within: .seconds(60)) { attackers.filter { $0.peerClosed(waiting: .zero) }.count >= 200 }
        #expect(attackers.filter { $0.peerClosed(waiting: .zero) }.count >= 200)

        // Meanwhile liveness answers within the kubelet's default 1 s timeout, and another client is served.
        for _ in 0..<5 {
            let probe = try SlowClient(port: management)
            defer { probe.close() }
            try probe.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(probe.readWithin(.seconds(1)).hasPrefix("HTTP/1.1 200"), "liveness did not answer within 1 s")
        }
        let other = try SlowClient(port: server.port, from: "127.0.0.2")
        defer { other.close() }
        try other.send("GET /users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(Self.token)\r\n\r\n")
        #expect(other.readResponse().hasPrefix("HTTP/1.1 200"))

        // Within http.request_timeout of their first byte the slow requests are cut off, trickle or not.
        try await waitUntil(within: .seconds(120)) { attackers.allSatisfy { $0.peerClosed(waiting: .zero) } }
        #expect(attackers.allSatisfy { $0.peerClosed(waiting: .zero) }, "slow requests outlived the request timeout")
        let (metrics, _) = try await httpGet("http://127.0.0.1:\(management)/metrics")
        let text = String(decoding: metrics, as: UTF8.self)
        #expect(text.contains(#"userapi_http_connections_closed_total{reason="per_client_limit"}"#))
        #expect(text.contains(#"userapi_http_connections_closed_total{reason="request_timeout"}"#))
    }

    @Test("PostgreSQL out of reach at start: retries, then exits 74 with an error naming the database, never the password")
    func postgresUnreachable() throws {
        let closed = try ClosedPort()
        let result = try Executable.run(
            ["serve"],
            environment: [
                "DATABASE_URL": "postgres://userapi:secret-password-123@127.0.0.1:\(closed.port)/userapi",
                "DATABASE_CONNECT_ATTEMPTS": "2", "DATABASE_CONNECT_TIMEOUT": "2s", "HTTP_PORT": "0",
                "AUTH_TOKENS": Self.token,
            ])
        #expect(result.status == 74, "\(result.stdout)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains(#""level":"warning""#) && $0.contains("retrying") }, "\(result.stdout)")
        #expect(lines.contains { $0.contains(#""level":"error""#) && $0.contains("giving up") }, "\(result.stdout)")
        #expect(result.stdout.contains("127.0.0.1:\(closed.port)/userapi"))
        #expect(!result.stdout.contains("secret-password-123") && !result.stderr.contains("secret-password-123"))
        #expect(!lines.contains { $0.contains(#""msg":"listening""#) })
    }

    @Test("tokens never appear in logs; access lines carry the token's id, the client and its user agent")
    func tokensNeverLogged() async throws {
        let dir = TempDir()
        let reader = "reader-secret-0123456789"
        let server = try ServerProcess(environment: [
            "DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": "\(Self.token),ro:\(reader)",
            "LOG_LEVEL": "debug",
        ])
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }
        let wrong = "wrong-secret-0123456789"
        for (token, header) in [(Self.token, "Authorization"), (reader, "Authorization"), (wrong, "X-Auth-Token")] {
            let value = header == "Authorization" ? "Bearer \(token)" : token
            _ = try await httpRequest(
                "GET", "\(server.baseURL)/users", headers: [header: value, "User-Agent": "hardening-test/1.0"])
        }
        _ = try await httpRequest(
            "POST", "\(server.baseURL)/users",
            headers: ["Authorization": "Bearer \(reader)", "Content-Type": "application/json"], body: Data("{}".utf8))
        try await waitUntil(within: .seconds(60)) { server.log.filter { $0.contains(#""msg":"request""#) }.count >= 4 }
        let log = server.log.joined(separator: "\n")
        for secret in [Self.token, reader, wrong] { #expect(!log.contains(secret), "a token is in the log") }
        let access = server.log.filter { $0.contains(#""msg":"request""#) }
        #expect(access.contains { $0.contains(#""token":"\#(TokenSet.id(of: Self.token))""#) }, "\(access)")
        #expect(access.contains { $0.contains(#""token":"\#(TokenSet.id(of: reader))""#) && $0.contains(#""status":403"#) })
        #expect(access.allSatisfy { $0.contains(#""client":"127.0.0.1""#) && $0.contains(#""user_agent":"#) })
        #expect(
            server.log.contains { $0.contains(#""level":"notice""#) && $0.contains("invalid token") && $0.contains("127.0.0.1") })
    }
}
