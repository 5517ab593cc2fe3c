import Foundation
import Testing

@testable import UserAPI

/// The built executable as a real process on a real port: shutdown phases,
/// crash durability, exit codes.
@Suite("userapi process", .serialized)
struct ServerProcessTests {
    static let token = "process-test-token"

    func environment(_ dir: TempDir, _ extra: [String: String] = [:]) -> [String: String] {
        ["DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": Self.token].merging(extra) { _, n in n }
    }

    static func createBody(_ i: Int) -> String { #"{"name":"User \#(i)","username":"user\#(i)","email":"u\#(i)@example.com"}"# }

    @Test("SIGTERM: readiness turns 503 at once, an in-flight request (body still arriving) completes, exit 0")
    func gracefulShutdown() async throws {
        let dir = TempDir()
        let server = try ServerProcess(
            environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "1s", "SHUTDOWN_TIMEOUT": "10s"]))
        try await server.waitUntilListening()

        let body = Self.createBody(1)
        let slow = try SlowClient(port: server.port)
        try slow.send(
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + String(body.prefix(10)))
        try await Task.sleep(for: .milliseconds(100))
        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(200))

        let (_, ready) = try await httpGet("\(server.baseURL)/readyz")
        #expect(ready == 503, "readiness fails during the drain")
        let (_, live) = try await httpGet("\(server.baseURL)/healthz")
        #expect(live == 200, "still serving during the drain")

        // Finish the body only after the drain delay, when the listener is already closed.
        try await Task.sleep(for: .milliseconds(1300))
        try slow.send(String(body.dropFirst(10)))
        let response = slow.readResponse()
        slow.close()
        #expect(response.hasPrefix("HTTP/1.1 201"), "\(response)")

        let status = await server.waitForExit(timeout: .seconds(15))
        #expect(status == 0, "\(server.log.suffix(5).joined(separator: "\n"))")
        #expect(ContinuousClock.now - signalled < .seconds(10))
        let log = server.log.joined(separator: "\n")
        #expect(log.contains("readiness is now 503"))
        #expect(log.contains("drain delay over"))
        #expect(log.contains("sqlite: closed"))
        #expect(log.contains(#""msg":"stopped""#))

        // The request acknowledged during shutdown is on disk.
        let again = try ServerProcess(environment: environment(dir))
        try await again.waitUntilListening()
        let (data, _) = try await httpGet("\(again.baseURL)/users?username=user1")
        #expect(String(decoding: data, as: UTF8.self).contains("\"user1\""))
        again.signal(SIGKILL)
        _ = await again.waitForExit(timeout: .seconds(5))
    }

    @Test("after the drain the listener is closed: new connections are refused")
    func listenerClosesAfterDrain() async throws {
        let dir = TempDir()
        let server = try ServerProcess(
            environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "500ms", "SHUTDOWN_TIMEOUT": "5s"]))
        try await server.waitUntilListening()
        // Keep a request in flight so the process stays up after the listener closes.
        let slow = try SlowClient(port: server.port)
        try slow.send(
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 500\r\n\r\n{"
        )
        try await Task.sleep(for: .milliseconds(100))
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(1200))
        #expect(throws: (any Error).self) { _ = try SlowClient(port: server.port) }
        slow.close()
        #expect(await server.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test("a second signal exits at once")
    func secondSignal() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "60s"]))
        try await server.waitUntilListening()
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        server.signal(SIGTERM)
        let status = await server.waitForExit(timeout: .seconds(5))
        #expect(status == 143)
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test("every 201 survives kill -9 of the server")
    func durableAfterKill() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        let created = try await withThrowingTaskGroup(of: String?.self) { group in
            for i in 0..<60 {
                group.addTask {
                    let (data, status) = try await httpRequest(
                        "POST", "\(server.baseURL)/users",
                        headers: ["Content-Type": "application/json", "Authorization": "Bearer \(Self.token)"],
                        body: Data(Self.createBody(i).utf8))
                    guard status == 201 else { return nil }
                    let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                    return object?["id"] as? String
                }
            }
            var ids: [String] = []
            for try await id in group { if let id { ids.append(id) } }
            return ids
        }
        #expect(created.count == 60)
        server.signal(SIGKILL)
        #expect(await server.waitForExit(timeout: .seconds(5)) == -SIGKILL)

        let restarted = try ServerProcess(environment: environment(dir))
        try await restarted.waitUntilListening()
        let (data, _) = try await httpGet("\(restarted.baseURL)/users?limit=500")
        let ids = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
        #expect(Set(ids) == Set(created))
        restarted.signal(SIGKILL)
        _ = await restarted.waitForExit(timeout: .seconds(5))
    }

    @Test("invalid configuration exits 78 naming the key and the source")
    func invalidConfig() throws {
        let result = try Executable.run(["serve", "--port", "eighty"], environment: ["SHUTDOWN_TIMEOUT": "soon"])
        #expect(result.status == 78)
        #expect(result.stderr.contains(#"http.port = "eighty" (from command line)"#))
        #expect(result.stderr.contains("shutdown.timeout"))
        #expect(result.stderr.contains("environment variable SHUTDOWN_TIMEOUT"))
    }

    @Test("a database that cannot be opened stops startup with exit 1 and a clear log")
    func unusableDatabase() throws {
        let dir = TempDir()
        _ = dir.write("file", "x")
        let result = try Executable.run(
            ["serve"], environment: ["DATABASE_URL": "sqlite:\(dir.file("file"))/sub/users.sqlite", "HTTP_PORT": "0"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("stopped by an error"))
    }

    @Test("liveness probes on a live server: router headers, pipelined order, access log, metrics, Connection: close")
    func livenessProbes() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }

        // Probes pipelined behind routed requests come back in request order.
        let client = try SlowClient(port: server.port)
        defer { client.close() }
        try client.send(
            "GET /users?limit=1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: list-1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-1\r\n\r\n"
                + "GET /version HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-2\r\n\r\n")
        let (pipelined, _) = client.readResponses(4)
        #expect(pipelined.count == 4)
        #expect(pipelined.first?.hasSuffix("[]") == true, "the list first: \(pipelined.first ?? "")")
        #expect(pipelined.dropFirst().first?.contains("X-Request-ID: probe-1") == true)
        #expect(pipelined.dropFirst(2).first?.contains(#""version":"#) == true)
        #expect(pipelined.dropFirst(3).first?.contains("X-Request-ID: probe-2") == true)

        // Alone on the connection, and then as the kubelet sends it.
        try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-3\r\n\r\n")
        let alone = client.readResponses(1).responses.first ?? ""
        #expect(alone.hasPrefix("HTTP/1.1 200 OK"), "\(alone)")
        for header in ["Content-Type: application/json", "Cache-Control: no-store", "X-Request-ID: probe-3", "Date: "] {
            #expect(alone.contains(header), "\(header) in \(alone)")
        }
        #expect(alone.hasSuffix(#"{"status":"ok"}"#))
        try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nUser-Agent: kube-probe/1.33\r\n\r\n")
        let last = client.readResponses(1).responses.first ?? ""
        #expect(last.contains("Connection: close"), "\(last)")
        #expect(client.peerClosed())

        let (metrics, _) = try await httpGet("\(server.baseURL)/metrics")
        #expect(
            String(decoding: metrics, as: UTF8.self).contains(
                #"http_requests_total{method="GET",route="/healthz",status="200"} 4"#))
        try await waitUntil { server.log.contains { $0.contains(#""request_id":"probe-3""#) } }
        let line = server.log.first { $0.contains(#""request_id":"probe-3""#) } ?? ""
        #expect(
            line.contains(#""route":"/healthz""#) && line.contains(#""path":"/healthz""#) && line.contains(#""status":200"#),
            "access log: \(line)")
        // A list page answered on the event loop logs its path without the query, as the router does.
        let list = server.log.first { $0.contains(#""request_id":"list-1""#) } ?? ""
        #expect(list.contains(#""route":"/users""#) && list.contains(#""path":"/users","#), "access log: \(list)")
    }

    @Test("start-up pages are released on a thread of their own once listening; the server keeps answering")
    func startupPagesReleased() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir, ["LOG_LEVEL": "debug"]))
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }
        try await waitUntil { server.log.contains { $0.contains("released start-up pages") } }
        let line = server.log.first { $0.contains("released start-up pages") } ?? ""
        let bytes = line.firstMatch(of: /"mapped_bytes":"?(\d+)/).flatMap { Int($0.1) } ?? 0
        #expect(bytes > 1_000_000, "\(line)")
        // The code paged out comes back on use.
        for path in ["/readyz", "/healthz", "/users?limit=1"] {
            let (_, status) = try await httpGet("\(server.baseURL)\(path)")
            #expect(status == 200, "\(path)")
        }
    }

    @Test("healthcheck exits 0 against a ready server and 1 when nothing listens")
    func healthcheck() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        let ok = try Executable.run(["healthcheck", "--port", String(server.port)])
        #expect(ok.status == 0, "\(ok.stdout)")
        server.signal(SIGKILL)
        _ = await server.waitForExit(timeout: .seconds(5))
        let down = try Executable.run(["healthcheck", "--port", String(server.port)])
        #expect(down.status == 1)
        #expect(down.stdout.contains("refused"))
    }

    @Test("config prints every key with its source and redacts secrets")
    func configCommand() throws {
        let result = try Executable.run(
            ["config", "--set", "shutdown.drain_delay=3s"],
            environment: ["AUTH_TOKENS": "hunter2-token", "DATABASE_URL": "postgres://u:pw-secret@db:5432/x"])
        #expect(result.status == 0)
        #expect(!result.stdout.contains("hunter2"))
        #expect(!result.stdout.contains("pw-secret"))
        let line = result.stdout.split(separator: "\n").first { $0.hasPrefix("shutdown.drain_delay") }
        #expect(line?.contains("3s") == true)
        #expect(line?.contains("command line") == true)
        #expect(result.stdout.contains("environment variable AUTH_TOKENS"))
    }

    @Test("migrate applies once, then reports the schema current; version prints the stamp")
    func migrateAndVersion() throws {
        let dir = TempDir()
        let env = ["DATABASE_URL": "sqlite:\(dir.file("m.sqlite"))"]
        let first = try Executable.run(["migrate"], environment: env)
        #expect(first.status == 0)
        #expect(first.stdout.contains("applied migrations 1"))
        let second = try Executable.run(["migrate"], environment: env)
        #expect(second.stdout.contains("schema is current (version \(Schema.latestVersion))"))
        let version = try Executable.run(["version", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(version.stdout.utf8)) as? [String: String]
        #expect(json?["version"] == BuildInfo.version)
    }

    @Test("db copy moves users between databases with progress and a count check", arguments: Backend.available)
    func dbCopy(target: Backend) async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        for i in 0..<7 {
            _ = try await httpRequest(
                "POST", "\(server.baseURL)/users",
                headers: ["Content-Type": "application/json", "Authorization": "Bearer \(Self.token)"],
                body: Data(Self.createBody(i).utf8))
        }
        server.signal(SIGTERM)
        _ = await server.waitForExit(timeout: .seconds(15))
        let targetURL = target == .sqlite ? "sqlite:\(dir.file("copy.sqlite"))" : try await freePostgresURL()
        let args = ["db", "copy", "--from", "sqlite:\(dir.file("users.sqlite"))", "--to", targetURL, "--batch-size", "3"]
        let first = try Executable.run(args)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("7/7 read"))
        #expect(first.stdout.contains("count check passed"))
        let again = try Executable.run(args)
        #expect(again.stdout.contains("7 read, 0 written"))
        let same = try Executable.run(["db", "copy", "--from", targetURL, "--to", targetURL])
        #expect(same.status != 0)
    }

    func freePostgresURL() async throws -> String { try await freshPostgresDatabase() }
}
