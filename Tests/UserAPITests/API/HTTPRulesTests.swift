import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import UserAPI

/// Protocol-level behaviour every answer shares, and the HTTP/1 connection
/// rules (`ConnectionRules.swift`), over a real socket.
@Suite("HTTP rules")
struct HTTPRulesTests {
    /// A raw request on a new connection to `app`, and whether the server closed it after the answer.
    func raw(_ app: UserAPIApplication, _ request: String) async throws -> (answer: String, closed: Bool) {
        let port = app.port
        return try await offPool {
            let client = try SlowClient(port: port)
            defer { client.close() }
            try client.send(request)
            let (answers, closed) = client.readResponses(1)
            return (answers.first ?? "", closed || client.peerClosed())
        }
    }

    @Test("every answer says nosniff; user data and problems are no-store")
    func headers() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let id = try #require(try await client.createUser("Ada", "ada", "ada@example.com")["id"] as? String)
            for path in ["/users/\(id)", "/users", "/nowhere", "/healthz", "/metrics", "/"] {
                let response = try await client.request(.get, path)
                #expect(response.headers[.xContentTypeOptions] == "nosniff", "\(path)")
            }
            #expect(try await client.request(.get, "/users/\(id)").headers[.cacheControl] == "no-store")
            #expect(try await client.request(.get, "/users").headers[.cacheControl] == "no-store")
            #expect(try await client.request(.get, "/nowhere").headers[.cacheControl] == "no-store")
        }
    }

    @Test("HEAD on / and /metrics: GET's status and headers, no body")
    func head() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            for path in ["/", "/metrics"] {
                let get = try await client.request(.get, path)
                let head = try await client.request(.head, path)
                #expect(head.status == get.status, "\(path)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
            }
        }
    }

    @Test("If-None-Match on a write: * or the current tag refuses it with 412, changing nothing")
    func ifNoneMatchOnWrites() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let id = try #require(try await client.createUser("Ada", "ada", "ada@example.com")["id"] as? String)
            let body = #"{"name":"Other","username":"ada","email":"ada@example.com"}"#
            try await client.request(.put, "/users/\(id)", json: body, headers: [.ifNoneMatch: "*"]).problem(.preconditionFailed)
            try await client.request(.patch, "/users/\(id)", json: #"{"name":"X"}"#, headers: [.ifNoneMatch: "\"v1\""])
                .problem(.preconditionFailed)
            try await client.request(.delete, "/users/\(id)", headers: [.ifNoneMatch: "*"]).problem(.preconditionFailed)
            #expect(try await client.request(.get, "/users/\(id)").object()["name"] as? String == "Ada")
            #expect(try await client.request(.put, "/users/\(id)", json: body, headers: [.ifNoneMatch: "\"v9\""]).status == .ok)
            try await client.request(.put, "/users/\(id)", json: body, headers: [.ifMatch: ""]).problem(.preconditionFailed)
        }
    }

    @Test("HTTP/1.0 without keep-alive gets Connection: close and the connection closes; keep-alive stays open")
    func http10() async throws {
        let dir = TempDir()
        let app = try await buildApplication(try await testConfig(dir), logger: TestEnv.logger)
        try await app.test(.live) { _ in
            let (plain, closed) = try await raw(app, "GET /healthz HTTP/1.0\r\n\r\n")
            #expect(plain.contains("200 OK") && plain.contains("Connection: close"), "\(plain)")
            #expect(closed)
            let port = app.port
            let two = try await offPool {
                let client = try SlowClient(port: port)
                defer { client.close() }
                try client.send(
                    "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                )
                return client.readResponses(2).responses
            }
            #expect(two.count == 2 && !two.contains { $0.contains("Connection: close") }, "\(two)")
        }
    }

    @Test(
        "requests whose framing cannot be trusted get 400 and a closed connection",
        arguments: [
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST /users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ])
    func untrustedFraming(request: String) async throws {
        let dir = TempDir()
        let app = try await buildApplication(try await testConfig(dir), logger: TestEnv.logger)
        try await app.test(.live) { _ in
            let (answer, closed) = try await raw(app, request)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
            #expect(answer.contains("Connection: close") && answer.contains("application/problem+json"))
            #expect(!answer.contains("\"ok\""), "nothing after the refused request was answered")
            #expect(closed)
        }
    }

    @Test("an error answered before the body arrived closes the connection instead of reading the body")
    func earlyErrorCloses() async throws {
        let dir = TempDir()
        let app = try await buildApplication(try await testConfig(dir), logger: TestEnv.logger)
        try await app.test(.live) { _ in
            // 413 from the announced length, 401 before any byte of the body is read.
            for request in [
                "POST /users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nAuthorization: Bearer \(TestEnv.token)\r\nContent-Length: 1000000000\r\n\r\n{",
                "POST /users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            ] {
                let (answer, closed) = try await raw(app, request)
                #expect(answer.contains("Connection: close"), "\(answer)")
                #expect(closed, "the rest of the body was not waited for")
            }
        }
    }

    @Test("Expect: 100-continue is answered with 100 at once, then the final answer")
    func expectContinue() async throws {
        let dir = TempDir()
        let app = try await buildApplication(try await testConfig(dir), logger: TestEnv.logger)
        try await app.test(.live) { _ in
            let body = #"{"name":"Ada","username":"ada","email":"ada@example.com"}"#
            let port = app.port
            let (interim, final) = try await offPool {
                let client = try SlowClient(port: port)
                defer { client.close() }
                try client.send(
                    "POST /users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nAuthorization: Bearer \(TestEnv.token)\r\n"
                        + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
                // Only the 100 can come before the body is sent.
                let interim = client.readUntil("\r\n\r\n")
                try client.send(body)
                return (interim, client.readResponse())
            }
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
            #expect(final.hasPrefix("HTTP/1.1 201"), "\(final)")
        }
    }

    @Test("a request that trickles in is cut off at http.request_timeout, however steady the trickle")
    func requestDeadline() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.http.requestTimeout = .seconds(1)
        config.http.readTimeout = .seconds(60)
        let app = try await buildApplication(config, logger: TestEnv.logger)
        try await app.test(.live) { client in
            let slow = try SlowClient(port: app.port)
            defer { slow.close() }
            try slow.send("POST /users HTTP/1.1\r\nHost: a\r\n")
            // Keep sending a header line until the server hangs up; the bound only turns a hang into a failure.
            var closed = false
            let start = ContinuousClock.now
            while !closed, ContinuousClock.now - start < .seconds(120) {
                closed = try await offPool {
                    (try? slow.send("X-Trickle: 1\r\n")) == nil || slow.peerClosed(waiting: .milliseconds(200))
                }
            }
            #expect(closed, "the connection stayed open")
            let metrics = try await client.request(.get, "/metrics").text
            #expect(metrics.contains(#"userapi_http_connections_closed_total{reason="request_timeout"} 1"#), "\(metrics)")
        }
    }
}
