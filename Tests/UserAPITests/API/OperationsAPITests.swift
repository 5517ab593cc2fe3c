import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import UserAPI

@Suite("Status, probes, metrics, OpenAPI")
struct OperationsAPITests {
    @Test("GET / tells which service, version, instance and storage answered; browsers get HTML under a strict CSP")
    func status() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let json = try await client.request(.get, "/")
            #expect(json.status == .ok)
            let body = try json.object()
            #expect(body["service"] as? String == "userapi")
            #expect(body["version"] as? String == BuildInfo.version)
            #expect(body["commit"] as? String == BuildInfo.commit)
            #expect(body["instance"] as? String == "test-instance")
            #expect(body["storage"] as? String == "sqlite")
            #expect(body["uptime_seconds"] is Int)

            let html = try await client.request(
                .get, "/", headers: [.accept: "text/html,application/xhtml+xml,*/*;q=0.8"])
            #expect(html.headers[.contentType] == "text/html; charset=utf-8")
            #expect(html.text.contains("test-instance"))
            #expect(html.text.contains("<html"))
            #expect(html.text.contains(#"href="/console/""#), "links the console")
            #expect(!html.text.contains("<script") && !html.text.contains("style="), "no inline script or style")
            let policy = try #require(html.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "\(policy)")
            #expect(!policy.contains("unsafe-inline"))
            let api = try await client.request(.get, "/", headers: [.accept: "application/json, text/html"])
            #expect(api.headers[.contentType] == "application/json")
        }
    }

    @Test("GET /version returns the build stamp")
    func version() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let body = try await client.request(.get, "/version").object()
            #expect(Set(body.keys) == ["version", "commit", "built"])
            #expect(body["version"] as? String == BuildInfo.version)
        }
    }

    @Test("liveness and readiness, plain and verbose; readiness fails while draining, liveness does not")
    func probes() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, app in
            #expect(try await client.request(.get, "/healthz").object()["status"] as? String == "ok")
            #expect(try await client.request(.get, "/readyz").object()["status"] as? String == "ready")
            let verbose = try await client.request(.get, "/readyz?verbose")
            #expect(verbose.status == .ok)
            #expect(verbose.text.contains("[+]storage ok ("))
            #expect(verbose.text.contains("readyz check passed"))

            app.state.beginDraining()
            let draining = try await client.request(.get, "/readyz")
            let problem = try draining.problem(.serviceUnavailable)
            #expect((problem["detail"] as? String)?.contains("draining") == true)
            let drainingVerbose = try await client.request(.get, "/readyz?verbose")
            #expect(drainingVerbose.status == .serviceUnavailable)
            #expect(drainingVerbose.text.contains("[-]shutdown failed: draining"))
            #expect(try await client.request(.get, "/healthz").status == .ok)
            #expect(try await client.request(.get, "/users").status == .ok, "still serving while draining")
        }
    }

    @Test("readiness fails when storage is gone, liveness stays up")
    func readinessFollowsStorage() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, app in
            await app.store.shutdown()
            try await client.request(.get, "/readyz").problem(.serviceUnavailable)
            #expect(try await client.request(.get, "/healthz").status == .ok)
            try await client.request(.get, "/users").problem(.serviceUnavailable)
        }
    }

    @Test("metrics expose request counts by route template, durations, storage, process and build info")
    func metrics() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let id = try #require(try await client.createUser("Ada", "ada", "ada@example.com")["id"] as? String)
            _ = try await client.request(.get, "/users/\(id)")
            _ = try await client.request(.get, "/users/\(UserID.make())")
            _ = try await client.request(.get, "/no/such/\(UUID().uuidString)")
            let response = try await client.request(.get, "/metrics")
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = response.text
            #expect(text.contains(#"http_requests_total{method="POST",route="/users",status="201"} 1"#))
            #expect(text.contains(#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#))
            #expect(text.contains(#"http_requests_total{method="GET",route="/users/{id}",status="404"} 1"#))
            #expect(text.contains(#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#))
            #expect(!text.contains(id), "raw paths never become labels")
            #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/users/{id}",le="#))
            #expect(text.contains("http_requests_in_flight"))
            #expect(text.contains(#"userapi_storage_operation_duration_seconds_count{backend="sqlite",operation="create"} 1"#))
            #expect(text.contains(#"userapi_storage_errors_total{backend="sqlite",operation="get",kind="unavailable"} 0"#))
            #expect(text.contains(#"userapi_build_info{version="\#(BuildInfo.version)",commit="\#(BuildInfo.commit)"} 1"#))
            #expect(text.contains("userapi_sqlite_write_queue_depth 0"))
            for name in [
                "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
            ] {
                let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "missing \(name)")
                #expect((Double(line.split(separator: " ")[1]) ?? 0) > 0, "\(line)")
            }
        }
    }

    @Test("with a management port, probes and metrics answer there and only there; users never do")
    func managementPort() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        let port = try freePort()
        config.http.managementPort = port
        try await withApp(config) { client, _ in
            for path in ["/metrics", "/healthz", "/readyz"] {
                try await client.request(.get, path).problem(.notFound)
            }
            #expect(try await client.request(.get, "/users").status == .ok)
            let management = "http://127.0.0.1:\(port)"
            let (metrics, status) = try await httpGet(management + "/metrics")
            #expect(status == 200)
            #expect(String(decoding: metrics, as: UTF8.self).contains("userapi_build_info"))
            #expect(try await httpGet(management + "/healthz").1 == 200)
            let (ready, readyStatus) = try await httpGet(
                management + "/readyz?verbose", headers: ["Authorization": "Bearer \(TestEnv.token)"])
            #expect(readyStatus == 200, "\(String(decoding: ready, as: UTF8.self))")
            #expect(String(decoding: ready, as: UTF8.self).contains("[+]storage ok"))
            #expect(try await httpGet(management + "/users").1 == 404)
        }
    }

    @Test("a full disk: writes answer 503 saying so, and readiness fails until a write succeeds again")
    func diskFull() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, app in
            let store = try #require((app.store as? InstrumentedUserStore)?.base as? SQLiteUserStore)
            _ = try await client.createUser("Ada", "ada", "ada@example.com")
            // No page beyond those the file has: the next write needs one, as on a full disk.
            try await store.limitPages(1)
            var i = 0
            var refused: TestResponse?
            while refused == nil, i < 5000 {
                let response = try await client.request(
                    .post, "/users", json: #"{"name":"Filler \#(i)","username":"filler\#(i)","email":"f\#(i)@example.com"}"#)
                if response.status != .created { refused = response }
                i += 1
            }
            let full = try #require(refused, "no write was refused")
            let problem = try full.problem(.serviceUnavailable)
            #expect((problem["detail"] as? String)?.contains("disk is full") == true, "\(problem)")
            #expect(full.headers[.retryAfter] != nil)
            let ready = try await client.request(.get, "/readyz?verbose")
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.text.contains("disk is full"), "\(ready.text)")
            #expect(try await client.request(.get, "/users?limit=1").status == .ok, "reads go on")

            try await store.limitPages(1_000_000)
            #expect(try await client.request(.get, "/readyz").status == .ok)
            #expect(try await client.createUser("Bob", "bob", "bob@example.com")["id"] != nil)
        }
    }

    @Test("the OpenAPI document is served")
    func openAPI() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let response = try await client.request(.get, "/openapi.yaml")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            #expect(response.text.hasPrefix("openapi: 3.1"))
        }
    }

    @Test("over the in-flight limit requests get a fast 503 and readiness fails; liveness stays up")
    func loadShedding() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.http.maxInFlight = 1
        // The slot is held by a request kept open on purpose.
        config.http.readTimeout = .seconds(600)
        let app = try await buildApplication(config, logger: TestEnv.logger)
        try await app.test(.live) { client in
            // Hold the one slot with a request whose body never finishes arriving, and
            // wait until the server counts it in flight (the scrape itself is the
            // second); a probe sent before that could take the slot first.
            let slow = try SlowClient(port: app.port)
            defer { slow.close() }
            try slow.send(
                "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer \(TestEnv.token)\r\n\r\n{"
            )
            let deadline = ContinuousClock.now + .seconds(10)
            while try await inFlight(client) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await inFlight(client) == 2, "the slow request never started")

            let shed = try await client.request(.get, "/users")
            try shed.problem(.serviceUnavailable)
            #expect(shed.headers[.retryAfter] == "1")
            // Readiness says the API is shedding, so a load balancer sends the next requests elsewhere;
            // liveness stays green, so the kubelet does not restart a busy replica.
            let ready = try await client.request(.get, "/readyz?verbose")
            #expect(ready.status == .serviceUnavailable && ready.text.contains("[-]capacity failed"), "\(ready.text)")
            #expect(try await client.request(.get, "/healthz").status == .ok)

            // The slot is given back when the slow client goes away.
            slow.close()
            #expect(try await client.request(.get, "/users", until: .ok).status == .ok)
        }
    }

    @Test("a client that hangs up mid-body is counted as a 400, not a server error, and frees its slot")
    func clientGoneMidBody() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.http.maxInFlight = 1
        // The slot is held by a request kept open on purpose.
        config.http.readTimeout = .seconds(600)
        let app = try await buildApplication(config, logger: TestEnv.logger)
        try await app.test(.live) { client in
            let gone = try SlowClient(port: app.port)
            try gone.send(
                "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer \(TestEnv.token)\r\n\r\n{\"na"
            )
            let deadline = ContinuousClock.now + .seconds(10)
            while try await inFlight(client) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            gone.close()
            #expect(try await client.request(.get, "/users", until: .ok).status == .ok)
            // The slot is freed a moment before the request is counted.
            var text = ""
            while ContinuousClock.now < deadline {
                text = try await client.request(.get, "/metrics").text
                if text.contains(#"route="/users",status="4"#) || text.contains(#"route="/users",status="5"#) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(text.contains(#"http_requests_total{method="POST",route="/users",status="400"} 1"#), "\(text)")
            #expect(!text.contains(#"status="500""#))
            #expect(try await client.request(.get, "/users").text == "[]", "nothing half-written was stored")
        }
    }

    /// `http_requests_in_flight` as the server reports it (the scrape counts itself).
    private func inFlight(_ client: some TestClientProtocol) async throws -> Int {
        let text = try await client.request(.get, "/metrics").text
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("http_requests_in_flight ") })
        return Int(Double(line.split(separator: " ")[1]) ?? -1)
    }
}
