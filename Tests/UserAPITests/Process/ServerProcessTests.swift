import Foundation
import Testing

@testable import UserAPI

/// The built executable as a real process on a real port: shutdown phases,
/// crash durability, exit codes.
@Suite("userapi process", .serialized)
struct ServerProcessTests {
    static let token = "process-test-token"
    static let auth = ["Authorization": "Bearer \(token)"]

    func environment(_ dir: TempDir, _ extra: [String: String] = [:]) -> [String: String] {
        // Requests here are held open on purpose: generous request and read timeouts.
        [
            "DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": Self.token,
            "HTTP_REQUEST_TIMEOUT": "600s", "HTTP_READ_TIMEOUT": "600s",
        ].merging(extra) { _, n in n }
    }

    static func createBody(_ i: Int) -> String { #"{"name":"User \#(i)","username":"user\#(i)","email":"u\#(i)@example.com"}"# }

    /// Waits (bounded only to turn a hang into a failure) until the server counts `n` API requests in flight.
    func waitForInFlight(_ server: ServerProcess, _ n: Int) async throws {
        try await waitUntilSucceeds(within: .seconds(60)) {
            let (data, _) = try await httpGet("\(server.baseURL)/metrics")
            let text = String(decoding: data, as: UTF8.self)
            // The scrape itself is one of them.
            guard text.contains("http_requests_in_flight \(n + 1)") else { throw POSIXError(.EAGAIN) }
        }
    }

    /// Waits until the server has logged a line containing `text`.
    func waitForLog(_ server: ServerProcess, _ text: String) async throws {
        try await waitUntil(within: .seconds(60)) { server.log.contains { $0.contains(text) } }
        #expect(server.log.contains { $0.contains(text) }, "no log line with \(text)")
    }

    @Test("SIGTERM: readiness turns 503 at once, an in-flight request (body still arriving) completes, exit 0")
    func gracefulShutdown() async throws {
        let dir = TempDir()
        let server = try ServerProcess(
            environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "1s", "SHUTDOWN_TIMEOUT": "60s"]))
        try await server.waitUntilListening()

        let body = Self.createBody(1)
        let slow = try SlowClient(port: server.port)
        try slow.send(
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + String(body.prefix(10)))
        try await waitForInFlight(server, 1)
        server.signal(SIGTERM)
        try await waitForLog(server, "readiness is now 503")

        let (_, ready) = try await httpGet("\(server.baseURL)/readyz")
        #expect(ready == 503, "readiness fails during the drain")
        let (_, live) = try await httpGet("\(server.baseURL)/healthz")
        #expect(live == 200, "still serving during the drain")

        // Finish the body only once the drain is over and the listener closes.
        try await waitForLog(server, "drain delay over")
        try slow.send(String(body.dropFirst(10)))
        let response = slow.readResponse()
        slow.close()
        #expect(response.hasPrefix("HTTP/1.1 201"), "\(response)")

        let status = await server.waitForExit(timeout: .seconds(120))
        #expect(status == 0, "\(server.log.suffix(5).joined(separator: "\n"))")
        let log = server.log.joined(separator: "\n")
        #expect(log.contains("sqlite: closed"))
        #expect(log.contains(#""msg":"stopped""#))

        // The request acknowledged during shutdown is on disk.
        let again = try ServerProcess(environment: environment(dir))
        try await again.waitUntilListening()
        let (data, _) = try await httpGet("\(again.baseURL)/users?username=user1", headers: Self.auth)
        #expect(String(decoding: data, as: UTF8.self).contains("\"user1\""))
        again.signal(SIGKILL)
        _ = await again.waitForExit(timeout: .seconds(60))
    }

    @Test("after the drain the listener is closed: new connections are refused")
    func listenerClosesAfterDrain() async throws {
        let dir = TempDir()
        let server = try ServerProcess(
            environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "500ms", "SHUTDOWN_TIMEOUT": "60s"]))
        try await server.waitUntilListening()
        // Keep a request in flight so the process stays up after the listener closes.
        let slow = try SlowClient(port: server.port)
        try slow.send(
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 500\r\n\r\n{"
        )
        try await waitForInFlight(server, 1)
        server.signal(SIGTERM)
        try await waitForLog(server, "drain delay over")
        // The listener closes right after that line: wait for the refusal itself.
        try await waitUntil(within: .seconds(60)) { (try? SlowClient(port: server.port)) == nil }
        #expect(throws: (any Error).self) { _ = try SlowClient(port: server.port) }
        #expect(server.isRunning, "the in-flight request keeps the process up")
        slow.close()
        #expect(await server.waitForExit(timeout: .seconds(120)) == 0)
    }

    @Test("a second signal exits at once, without waiting for the drain")
    func secondSignal() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir, ["SHUTDOWN_DRAIN_DELAY": "300s"]))
        try await server.waitUntilListening()
        server.signal(SIGTERM)
        try await waitForLog(server, "readiness is now 503")
        server.signal(SIGTERM)
        // Far below the 300 s drain: only the second signal can end it this soon.
        let status = await server.waitForExit(timeout: .seconds(60))
        #expect(status == 143)
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
        let (data, _) = try await httpGet("\(restarted.baseURL)/users?limit=500", headers: Self.auth)
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

    @Test("a database path that cannot be used stops startup with exit 74, naming the path and the cause")
    func unusableDatabase() throws {
        let dir = TempDir()
        _ = dir.write("file", "x")
        let path = "\(dir.file("file"))/sub/users.sqlite"
        let result = try Executable.run(["serve"], environment: ["DATABASE_URL": "sqlite:\(path)", "HTTP_PORT": "0"])
        #expect(result.status == 74, "\(result.stdout)")
        #expect(result.stdout.contains(dir.file("file")), "\(result.stdout)")
        #expect(result.stdout.contains("Not a directory") || result.stdout.contains("File exists"), "\(result.stdout)")
        #expect(!result.stdout.contains("Error Domain"), "no raw Foundation error: \(result.stdout)")
    }

    @Test("a second server on the same SQLite file refuses to start, naming the file and the holder")
    func secondProcessOnOneFile() async throws {
        let dir = TempDir()
        let first = try ServerProcess(environment: environment(dir))
        try await first.waitUntilListening()
        defer { first.signal(SIGKILL) }
        let second = try Executable.run(["serve"], environment: environment(dir, ["HTTP_PORT": "0"]))
        #expect(second.status == 75, "\(second.stdout)")
        #expect(second.stdout.contains(dir.file("users.sqlite")), "\(second.stdout)")
        #expect(second.stdout.contains("pid \(first.pid)"), "\(second.stdout)")
        // The first one is unharmed.
        #expect(try await httpGet("\(first.baseURL)/readyz").1 == 200)
    }

    @Test("two userapi migrate processes at once both succeed; the schema is migrated once")
    func concurrentMigrateProcesses() async throws {
        let dir = TempDir()
        let env = ["DATABASE_URL": "sqlite:\(dir.file("m.sqlite"))"]
        async let one = Task.detached { try Executable.run(["migrate"], environment: env) }.value
        async let two = Task.detached { try Executable.run(["migrate"], environment: env) }.value
        let results = try await [one, two]
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stdout))")
        #expect(results.filter { $0.stdout.contains("applied migrations") }.count == 1, "\(results.map(\.stdout))")
        #expect(results.filter { $0.stdout.contains("schema is current") }.count == 1, "\(results.map(\.stdout))")
    }

    @Test("probes on a live server: pipelined order, headers, access log, metrics, Connection: close")
    func livenessProbes() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }

        // Probes pipelined behind other requests come back in request order.
        let client = try SlowClient(port: server.port)
        defer { client.close() }
        try client.send(
            "GET /users?limit=1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: list-1\r\nAuthorization: Bearer \(Self.token)\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-1\r\n\r\n"
                + "GET /version HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(Self.token)\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-2\r\n\r\n"
        )
        let (pipelined, _) = client.readResponses(4)
        #expect(pipelined.count == 4)
        #expect(pipelined.first?.hasSuffix("[]") == true, "the list first: \(pipelined.first ?? "")")
        #expect(pipelined.dropFirst().first?.contains("X-Request-ID: probe-1") == true)
        #expect(pipelined.dropFirst(2).first?.contains(#""version":"#) == true)
        #expect(pipelined.dropFirst(3).first?.contains("X-Request-ID: probe-2") == true)

        try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: probe-3\r\n\r\n")
        let alone = client.readResponses(1).responses.first ?? ""
        #expect(alone.hasPrefix("HTTP/1.1 200 OK"), "\(alone)")
        for header in ["Content-Type: application/json", "Cache-Control: no-store", "X-Request-ID: probe-3", "Date: "] {
            #expect(alone.contains(header), "\(header) in \(alone)")
        }
        #expect(alone.hasSuffix(#"{"status":"ok"}"#))
        // As the kubelet sends it.
        try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nUser-Agent: kube-probe/1.33\r\n\r\n")
        let last = client.readResponses(1).responses.first ?? ""
        #expect(last.contains("Connection: close"), "\(last)")
        #expect(client.peerClosed())

        let (metrics, _) = try await httpGet("\(server.baseURL)/metrics")
        #expect(
            String(decoding: metrics, as: UTF8.self).contains(
                #"http_requests_total{method="GET",route="/healthz",status="200"} 4"#))
        try await waitForLog(server, #""request_id":"probe-3""#)
        let line = server.log.first { $0.contains(#""request_id":"probe-3""#) } ?? ""
        #expect(
            line.contains(#""route":"/healthz""#) && line.contains(#""path":"/healthz""#) && line.contains(#""status":200"#),
            "access log: \(line)")
        let list = server.log.first { $0.contains(#""request_id":"list-1""#) } ?? ""
        #expect(list.contains(#""route":"/users""#) && list.contains(#""path":"/users","#), "the query is not logged: \(list)")
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
            let (_, status) = try await httpGet("\(server.baseURL)\(path)", headers: Self.auth)
            #expect(status == 200, "\(path)")
        }
    }

    @Test("healthcheck exits 0 against a ready server (by --port or --url) and 1 when nothing listens")
    func healthcheck() async throws {
        let dir = TempDir()
        let server = try ServerProcess(environment: environment(dir))
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }
        let byPort = try Executable.run(["healthcheck", "--port", String(server.port)])
        #expect(byPort.status == 0, "\(byPort.stdout)")
        let byURL = try Executable.run(["healthcheck", "--url", "\(server.baseURL)/readyz"])
        #expect(byURL.status == 0, "\(byURL.stdout)")
        let closed = try ClosedPort()
        let down = try Executable.run(["healthcheck", "--url", "http://127.0.0.1:\(closed.port)/readyz"])
        #expect(down.status == 1)
        #expect(down.stdout.contains("refused"), "\(down.stdout)")
        let bad = try Executable.run(["healthcheck", "--url", "ftp://x"])
        #expect(bad.status == 64, "\(bad.stderr)")
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
