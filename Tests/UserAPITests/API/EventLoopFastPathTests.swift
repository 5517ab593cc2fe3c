import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import UserAPI

/// `EventLoopFastPath` in a channel of its own: which requests it answers,
/// which it hands on, and that pipelined answers keep their order.
@Suite("liveness probes answered on the event loop")
struct LivenessFastPathTests {
    struct Harness {
        let channel: EmbeddedChannel
        let heartbeat: ExecutorHeartbeat
        let metrics: AppMetrics

        init(
            tracing: Bool = false, users: EventLoopFastPath.UserReads? = nil, metrics: AppMetrics? = nil,
            creates: EventLoopFastPath.UserCreates? = nil
        ) throws {
            heartbeat = ExecutorHeartbeat()
            let metrics = metrics ?? AppMetrics(version: "test", commit: "test")
            self.metrics = metrics
            var config = AppConfig()
            config.log.access = false
            let shared = EventLoopFastPath.Shared(
                heartbeat: heartbeat, metrics: metrics, accessLog: AccessLog(config: config, logger: TestEnv.logger),
                tracing: tracing, users: users, creates: creates)
            channel = EmbeddedChannel(handler: EventLoopFastPath(shared: shared))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        }

        /// The whole request in one read, as a small request arrives.
        func send(_ request: HTTPRequest, body: String? = nil) throws {
            channel.pipeline.fireChannelRead(HTTPRequestPart.head(request))
            if let body { channel.pipeline.fireChannelRead(HTTPRequestPart.body(ByteBuffer(string: body))) }
            channel.pipeline.fireChannelRead(HTTPRequestPart.end(nil))
            channel.pipeline.fireChannelReadComplete()
            try channel.throwIfErrorCaught()
        }

        /// What the handler handed on to the router.
        func routed() throws -> [HTTPRequestPart] {
            var parts: [HTTPRequestPart] = []
            while let part = try channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
            return parts
        }

        /// What the handler wrote to the client.
        func answered() throws -> [HTTPResponsePart] {
            var parts: [HTTPResponsePart] = []
            while let part = try channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
            return parts
        }

        /// The router finishing one answer, as Hummingbird's writer would.
        func routerAnswers() throws {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            _ = try answered()
        }

        func healthzCount() -> String? { count(#"http_requests_total{method="GET",route="/healthz",status="200"}"#) }

        /// The value of the first metrics line that starts with `series`.
        func count(_ series: String) -> String? {
            let text = String(decoding: metrics.render(), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix(series) }.map { String($0.split(separator: " ").last!) }
        }
    }

    static func get(_ path: String, _ fields: HTTPFields = [:], method: HTTPRequest.Method = .get) -> HTTPRequest {
        HTTPRequest(method: method, scheme: "http", authority: "t", path: path, headerFields: fields)
    }

    @Test("a plain GET /healthz gets the router's answer: status, headers, body, request id, Date; counted")
    func answers() throws {
        let h = try Harness()
        try h.send(Self.get("/healthz", [RequestObservationMiddleware.requestIDHeader: "probe-7"]))
        #expect(try h.routed().isEmpty)
        let parts = try h.answered()
        #expect(parts.count == 3)
        guard case .head(let head) = parts.first, case .body(let body) = parts[1], case .end(nil) = parts[2] else {
            Issue.record("unexpected parts: \(parts)")
            return
        }
        #expect(head.status == .ok)
        #expect(head.headerFields[.contentType] == "application/json")
        #expect(head.headerFields[.cacheControl] == "no-store")
        #expect(head.headerFields[.contentLength] == "15")
        #expect(head.headerFields[RequestObservationMiddleware.requestIDHeader] == "probe-7")
        #expect(head.headerFields[.date]?.hasSuffix(" GMT") == true)
        #expect(head.headerFields[.connection] == nil)
        #expect(String(buffer: body) == #"{"status":"ok"}"#)
        #expect(h.channel.isActive, "keep-alive: the connection stays open")
        #expect(h.healthzCount() == "1")

        // An unusable request id is replaced, as the router's middleware does.
        try h.send(Self.get("/healthz", [RequestObservationMiddleware.requestIDHeader: "bad id\u{7f}"]))
        guard case .head(let second) = try h.answered().first else {
            Issue.record("no answer")
            return
        }
        #expect(second.headerFields[RequestObservationMiddleware.requestIDHeader]?.utf8.count == 16)
        #expect(h.healthzCount() == "2")
    }

    @Test(
        "everything but a plain probe goes to the router",
        arguments: [
            ("HEAD", Self.get("/healthz", method: .head)),
            ("verbose", Self.get("/healthz?verbose")),
            ("another path", Self.get("/healthz/x")),
            ("POST", Self.get("/healthz", method: .post)),
            ("upgrade", Self.get("/healthz", [.connection: "upgrade", .upgrade: "websocket"])),
        ])
    func routesOthers(name: String, request: HTTPRequest) throws {
        let h = try Harness()
        try h.send(request)
        let routed = try h.routed()
        #expect(routed.count == 2, "\(name): head and end handed on")
        guard case .head(let head) = routed.first else {
            Issue.record("\(name): no head handed on")
            return
        }
        #expect(head.path == request.path && head.method == request.method)
        #expect(try h.answered().isEmpty, "\(name)")
        #expect(h.healthzCount() == nil, "\(name): the router counts it, not the fast path")
    }

    @Test("with tracing on, a probe that carries a trace context goes to the router; without one it is answered")
    func traceContext() throws {
        let traced: HTTPFields = [HTTPField.Name("traceparent")!: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
        let tracing = try Harness(tracing: true)
        try tracing.send(Self.get("/healthz", traced))
        #expect(try tracing.routed().count == 2)
        try tracing.routerAnswers()
        try tracing.send(Self.get("/healthz"))
        #expect(try tracing.answered().count == 3)

        let untraced = try Harness(tracing: false)
        try untraced.send(Self.get("/healthz", traced))
        #expect(try untraced.answered().count == 3)
    }

    @Test("when the task pool's heartbeat is stale, probes take the router's path")
    func staleHeartbeat() throws {
        let h = try Harness()
        h.heartbeat.beat(at: .now - ExecutorHeartbeat.maximumAge - .milliseconds(100))
        try h.send(Self.get("/healthz"))
        #expect(try h.routed().count == 2)
        #expect(try h.answered().isEmpty)
        try h.routerAnswers()

        h.heartbeat.beat()
        try h.send(Self.get("/healthz"))
        #expect(try h.answered().count == 3, "answered again once the pool beats")
    }

    @Test("a probe pipelined behind routed requests waits its turn; the fast path resumes after their answers")
    func pipelining() throws {
        let h = try Harness()
        try h.send(Self.get("/users"))
        try h.send(Self.get("/version"))
        try h.send(Self.get("/healthz"))
        #expect(try h.routed().count == 6, "all three handed on in order")
        #expect(try h.answered().isEmpty, "nothing answered ahead of the router")

        try h.routerAnswers()
        try h.routerAnswers()
        try h.send(Self.get("/healthz"))
        #expect(try h.routed().count == 2, "the third routed request is still unanswered")
        try h.routerAnswers()
        try h.routerAnswers()

        try h.send(Self.get("/healthz"))
        #expect(try h.routed().isEmpty)
        #expect(try h.answered().count == 3)
    }

    @Test("a probe with a body goes to the router, head first")
    func probeWithBody() throws {
        let h = try Harness()
        try h.send(Self.get("/healthz"), body: "x")
        let routed = try h.routed()
        #expect(routed.count == 3)
        guard case .head(let head) = routed.first, case .body = routed[1], case .end = routed[2] else {
            Issue.record("unexpected parts: \(routed)")
            return
        }
        #expect(head.path == "/healthz")
        #expect(try h.answered().isEmpty)
    }

    @Test("Connection: keep-alive (HTTP/1.1's default, which many clients send) is answered; the connection stays open")
    func keepAlive() throws {
        let h = try Harness()
        try h.send(Self.get("/healthz", [.connection: "Keep-Alive"]))
        let parts = try h.answered()
        guard case .head(let head) = parts.first else {
            Issue.record("no answer")
            return
        }
        #expect(head.headerFields[.connection] == nil, "the router does not echo it either")
        #expect(parts.count == 3)
        #expect(h.channel.isActive)
    }

    @Test("Connection: close (what the kubelet sends) is answered, then the connection closes")
    func connectionClose() throws {
        let h = try Harness()
        try h.send(Self.get("/healthz", [.connection: "Close"]))
        let parts = try h.answered()
        guard case .head(let head) = parts.first else {
            Issue.record("no answer")
            return
        }
        #expect(head.headerFields[.connection] == "close")
        #expect(parts.count == 3)
        #expect(!h.channel.isActive)
    }
}

@Suite("task-pool heartbeat")
struct ExecutorHeartbeatTests {
    @Test("formats IMF-fixdate")
    func httpDate() {
        #expect(ExecutorHeartbeat.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(ExecutorHeartbeat.httpDate(1_796_108_483) == "Tue, 01 Dec 2026 07:01:23 GMT")
    }

    @Test("a stale beat withholds the date; the running heartbeat refreshes it")
    func refreshes() async throws {
        let heartbeat = ExecutorHeartbeat(interval: .milliseconds(20))
        heartbeat.beat(at: .now - .seconds(10))
        #expect(heartbeat.currentDate() == nil)
        let running = Task { try await heartbeat.run() }
        defer { running.cancel() }
        try await waitUntil(within: .seconds(5)) { heartbeat.currentDate() != nil }
        #expect(heartbeat.currentDate() != nil)
        // Stopped, it goes stale after `maximumAge`.
        running.cancel()
        _ = try? await running.value
        #expect(heartbeat.currentDate(now: .now + ExecutorHeartbeat.maximumAge + .milliseconds(100)) == nil)
    }
}

/// Reads by id that `EventLoopFastPath` answers from the SQLite store's user
/// cache, against a real store in a temp directory.
@Suite("user reads answered on the event loop")
struct CachedUserReadTests {
    typealias Harness = LivenessFastPathTests.Harness

    /// Opens a real SQLite store, creates one user and runs `body` with it.
    func withStore(
        cachedUsers: Int = 100, _ body: @Sendable (SQLiteUserStore, User, AppMetrics) throws -> Void
    ) async throws {
        let dir = TempDir()
        var settings = SQLiteSettings(path: dir.file("fast.sqlite"))
        settings.cachedUsers = cachedUsers
        let store = try await SQLiteUserStore.open(settings, logger: TestEnv.logger)
        let metrics = AppMetrics(version: "test", commit: "test")
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let now = Timestamp.nowMillis()
            let user = try await store.create(
                User(
                    id: UserID.make(), name: "Ada", username: "ada", email: "ada@example.com", createdAt: now, updatedAt: now,
                    version: 1))
            try body(store, user, metrics)
        }
    }

    func reads(
        _ store: SQLiteUserStore, metrics: AppMetrics, protectReads: Bool = false, tokens: String? = nil
    ) throws -> EventLoopFastPath.UserReads {
        EventLoopFastPath.UserReads(
            store: InstrumentedUserStore(base: store, metrics: metrics, tracing: false),
            tokens: try TokenStore(plainTokens: tokens, filePath: nil, reloadInterval: .seconds(1), logger: TestEnv.logger),
            protectReads: protectReads)
    }

    @Test("a cached user is answered without the router: body, ETag, Cache-Control, length, request id; counted")
    func answersCachedUser() async throws {
        try await withStore { store, user, metrics in
            let h = try Harness(users: try reads(store, metrics: metrics), metrics: metrics)
            try h.send(LivenessFastPathTests.get("/users/\(user.id)", [RequestObservationMiddleware.requestIDHeader: "r-1"]))
            #expect(try h.routed().isEmpty)
            let parts = try h.answered()
            guard parts.count == 3, case .head(let head) = parts[0], case .body(let body) = parts[1], case .end(nil) = parts[2]
            else {
                Issue.record("unexpected parts: \(parts)")
                return
            }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any])
            #expect(head.status == .ok)
            #expect(json["id"] as? String == user.id)
            #expect(json["name"] as? String == "Ada")
            #expect(head.headerFields[.eTag] == user.etag)
            #expect(head.headerFields[.cacheControl] == "no-cache")
            #expect(head.headerFields[.contentType] == "application/json")
            #expect(head.headerFields[.contentLength] == String(body.readableBytes))
            #expect(head.headerFields[RequestObservationMiddleware.requestIDHeader] == "r-1")
            #expect(head.headerFields[.date]?.hasSuffix(" GMT") == true)
            #expect(h.count(#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#) == "1")
            #expect(h.count(#"userapi_storage_operation_duration_seconds_count{backend="sqlite",operation="get"}"#) == "1")

            // Upper-case ids name the same user, as in the router.
            try h.send(LivenessFastPathTests.get("/users/\(user.id.uppercased())"))
            #expect(try h.routed().isEmpty)
            #expect(try h.answered().count == 3)
        }
    }

    @Test("If-None-Match with the current tag: 304 with the tag and no body")
    func notModified() async throws {
        try await withStore { store, user, metrics in
            let h = try Harness(users: try reads(store, metrics: metrics), metrics: metrics)
            try h.send(LivenessFastPathTests.get("/users/\(user.id)", [.ifNoneMatch: "W/\(user.etag)"]))
            let parts = try h.answered()
            guard parts.count == 2, case .head(let head) = parts[0], case .end(nil) = parts[1] else {
                Issue.record("unexpected parts: \(parts)")
                return
            }
            #expect(head.status == .notModified)
            #expect(head.headerFields[.eTag] == user.etag)
            #expect(head.headerFields[.contentLength] == "0")
            #expect(head.headerFields[.contentType] == nil)

            try h.send(LivenessFastPathTests.get("/users/\(user.id)", [.ifNoneMatch: #""v999""#]))
            guard case .head(let stale) = try h.answered().first else {
                Issue.record("no answer")
                return
            }
            #expect(stale.status == .ok, "an outdated copy gets the user")
        }
    }

    @Test(
        "everything else about users goes to the router",
        arguments: [
            ("unknown id", "/users/0192a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b", HTTPRequest.Method.get),
            ("not a UUID", "/users/ada", .get),
            ("query", "/users/{id}?fields=name", .get),
            ("trailing slash", "/users/{id}/", .get),
            ("HEAD", "/users/{id}", .head),
            ("PUT", "/users/{id}", .put),
            ("DELETE", "/users/{id}", .delete),
            ("list", "/users", .get),
        ])
    func routesOthers(name: String, path: String, method: HTTPRequest.Method) async throws {
        try await withStore { store, user, metrics in
            let h = try Harness(users: try reads(store, metrics: metrics), metrics: metrics)
            try h.send(LivenessFastPathTests.get(path.replacingOccurrences(of: "{id}", with: user.id), method: method))
            #expect(try h.routed().count == 2, "\(name): head and end handed on")
            #expect(try h.answered().isEmpty, "\(name)")
        }
    }

    @Test("a user evicted between head and end goes to the router, head and end in order")
    func missAtAnswerTime() async throws {
        try await withStore { store, user, metrics in
            let h = try Harness(users: try reads(store, metrics: metrics), metrics: metrics)
            try h.channel.writeInbound(HTTPRequestPart.head(LivenessFastPathTests.get("/users/\(user.id)")))
            #expect(try h.routed().isEmpty, "held until the end arrives")
            store.cache.clear()
            try h.channel.writeInbound(HTTPRequestPart.end(nil))
            let routed = try h.routed()
            guard routed.count == 2, case .head(let head) = routed[0], case .end = routed[1] else {
                Issue.record("unexpected parts: \(routed)")
                return
            }
            #expect(head.path == "/users/\(user.id)")
            #expect(try h.answered().isEmpty)
        }
    }

    @Test("with the cache off, or with tracing on, every read goes to the router")
    func cacheOffOrTracing() async throws {
        try await withStore(cachedUsers: 0) { store, user, metrics in
            let h = try Harness(users: try reads(store, metrics: metrics), metrics: metrics)
            try h.send(LivenessFastPathTests.get("/users/\(user.id)"))
            #expect(try h.routed().count == 2)
        }
        try await withStore { store, user, metrics in
            let h = try Harness(tracing: true, users: try reads(store, metrics: metrics), metrics: metrics)
            try h.send(LivenessFastPathTests.get("/users/\(user.id)"))
            #expect(try h.routed().count == 2, "every routed request gets its span")
        }
    }

    @Test("with protected reads, only a valid token is answered here; no token or a wrong one gets the router's 401")
    func protectedReads() async throws {
        try await withStore { store, user, metrics in
            let users = try reads(store, metrics: metrics, protectReads: true, tokens: TestEnv.token)
            let h = try Harness(users: users, metrics: metrics)
            let path = "/users/\(user.id)"
            try h.send(LivenessFastPathTests.get(path))
            #expect(try h.routed().count == 2, "no token")
            try h.routerAnswers()
            try h.send(LivenessFastPathTests.get(path, [.authorization: "Bearer wrong-token"]))
            #expect(try h.routed().count == 2, "wrong token")
            try h.routerAnswers()
            try h.send(LivenessFastPathTests.get(path, [.authorization: "Bearer \(TestEnv.token)"]))
            #expect(try h.routed().isEmpty)
            #expect(try h.answered().count == 3, "bearer token")
            try h.send(LivenessFastPathTests.get(path, [AuthMiddleware.xAuthToken: TestEnv.token]))
            #expect(try h.answered().count == 3, "X-Auth-Token")
        }
    }
}

/// The same reads over real HTTP, once answered on the event loop and once by
/// the router (a query string sends a read there; the handler ignores it):
/// the answers must not differ beyond `Date` and `X-Request-ID`.
@Suite("user reads: event loop and router answer alike")
struct CachedUserReadEquivalenceTests {
    @Test("200 and 304, with and without protected reads")
    func sameAnswers() async throws {
        for protectReads in [false, true] {
            let dir = TempDir()
            var config = try await testConfig(dir)
            config.auth.protectReads = protectReads
            try await withApp(config) { client, _ in
                let created = try await client.createUser("Grace Hopper", "grace", "grace@example.com")
                let id = try #require(created["id"] as? String)
                let etag = "\"v\(created["version"] as? Int ?? 0)\""
                for headers: HTTPFields in [[:], [.ifNoneMatch: etag], [.ifNoneMatch: #""v0""#]] {
                    let fast = try await client.request(.get, "/users/\(id)", headers: headers)
                    let routed = try await client.request(.get, "/users/\(id)?via=router", headers: headers)
                    #expect(fast.status == routed.status, "\(headers)")
                    #expect(fast.text == routed.text, "\(headers)")
                    #expect(fast.headersBesideDateAndRequestID == routed.headersBesideDateAndRequestID, "\(headers)")
                    #expect(fast.headers[RequestObservationMiddleware.requestIDHeader] != nil)
                    #expect(fast.headers[.date] != nil)
                }
                #expect(try await client.request(.get, "/users/\(id)").status == .ok)
                if protectReads {
                    try await client.request(.get, "/users/\(id)", token: nil).problem(.unauthorized)
                    try await client.request(.get, "/users/\(id)", token: "nope").problem(.unauthorized)
                }
            }
        }
    }
}

/// `POST /users` answered on the event loop: which creates qualify (decided
/// from the head, so no write is needed to tell), and over real HTTP that the
/// answers match the router's.
@Suite("creates answered on the event loop")
struct EventLoopCreateTests {
    typealias Harness = LivenessFastPathTests.Harness

    static let body = #"{"name":"Ada","username":"ada","email":"ada@example.com"}"#

    static let refusals: [(String, HTTPFields)] = [
        ("no token", [.contentType: "application/json"]),
        ("wrong token", [.contentType: "application/json", .authorization: "Bearer nope"]),
        ("no content type", [.authorization: "Bearer \(TestEnv.token)"]),
        ("form content", [.contentType: "application/x-www-form-urlencoded", .authorization: "Bearer \(TestEnv.token)"]),
        ("latin-1", [.contentType: "application/json; charset=iso-8859-1", .authorization: "Bearer \(TestEnv.token)"]),
        ("too long", [.contentType: "application/json", .authorization: "Bearer \(TestEnv.token)", .contentLength: "2000"]),
    ]

    @Test("creates the router would refuse before reading the body go to the router", arguments: Self.refusals)
    func routesRefusals(name: String, fields: HTTPFields) async throws {
        try await withCreates { creates, metrics in
            let h = try Harness(users: nil, metrics: metrics, creates: creates)
            try h.send(LivenessFastPathTests.get("/users", fields, method: .post), body: Self.body)
            let routed = try h.routed()
            #expect(routed.count == 3, "\(name): head, body and end handed on")
            #expect(try h.answered().isEmpty, "\(name)")
        }
    }

    @Test("a body past the limit goes to the router, every byte of it, in order")
    func bodyPastLimit() async throws {
        try await withCreates(maxBodySize: 100) { creates, metrics in
            let h = try Harness(users: nil, metrics: metrics, creates: creates)
            let head = LivenessFastPathTests.get(
                "/users", [.contentType: "application/json", .authorization: "Bearer \(TestEnv.token)"], method: .post)
            // One read: EmbeddedChannel's writeInbound ends each write with a read completion.
            h.channel.pipeline.fireChannelRead(HTTPRequestPart.head(head))
            h.channel.pipeline.fireChannelRead(HTTPRequestPart.body(ByteBuffer(string: String(repeating: "a", count: 60))))
            #expect(try h.routed().isEmpty, "within the limit: held")
            h.channel.pipeline.fireChannelRead(HTTPRequestPart.body(ByteBuffer(string: String(repeating: "b", count: 60))))
            h.channel.pipeline.fireChannelRead(HTTPRequestPart.end(nil))
            h.channel.pipeline.fireChannelReadComplete()
            let routed = try h.routed()
            guard routed.count == 4, case .head = routed[0], case .body(let first) = routed[1],
                case .body(let second) = routed[2],
                case .end = routed[3]
            else {
                Issue.record("unexpected parts: \(routed)")
                return
            }
            #expect(String(buffer: first) == String(repeating: "a", count: 60))
            #expect(String(buffer: second) == String(repeating: "b", count: 60))
        }
    }

    @Test("a create whose body is still arriving when the read ends goes to the router")
    func bodyStillArriving() async throws {
        try await withCreates { creates, metrics in
            let h = try Harness(users: nil, metrics: metrics, creates: creates)
            let head = LivenessFastPathTests.get(
                "/users", [.contentType: "application/json", .authorization: "Bearer \(TestEnv.token)"], method: .post)
            try h.channel.writeInbound(HTTPRequestPart.head(head))
            try h.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{")))
            let routed = try h.routed()
            guard routed.count == 2, case .head = routed[0], case .body(let body) = routed[1] else {
                Issue.record("unexpected parts: \(routed)")
                return
            }
            #expect(String(buffer: body) == "{")
        }
    }

    @Test("an invalid body goes to the router, which names the fields")
    func invalidBody() async throws {
        try await withCreates { creates, metrics in
            let h = try Harness(users: nil, metrics: metrics, creates: creates)
            let head = LivenessFastPathTests.get(
                "/users", [.contentType: "application/json", .authorization: "Bearer \(TestEnv.token)"], method: .post)
            try h.send(head, body: #"{"name":"","username":"a b"}"#)
            let routed = try h.routed()
            guard routed.count == 3, case .body(let body) = routed[1] else {
                Issue.record("unexpected parts: \(routed)")
                return
            }
            #expect(String(buffer: body) == #"{"name":"","username":"a b"}"#)
            #expect(try h.answered().isEmpty)
        }
    }

    /// A real SQLite store behind the create path; nothing here reaches the writer.
    func withCreates(
        maxBodySize: Int = 1000, _ body: @Sendable (EventLoopFastPath.UserCreates, AppMetrics) throws -> Void
    ) async throws {
        let dir = TempDir()
        let store = try await SQLiteUserStore.open(SQLiteSettings(path: dir.file("c.sqlite")), logger: TestEnv.logger)
        let metrics = AppMetrics(version: "test", commit: "test")
        try await withRunningStores([store]) {
            let creates = EventLoopFastPath.UserCreates(
                store: store,
                tokens: try TokenStore(
                    plainTokens: TestEnv.token, filePath: nil, reloadInterval: .seconds(1), logger: TestEnv.logger),
                maxBodySize: maxBodySize)
            try body(creates, metrics)
        }
    }

    @Test("201 over real HTTP: the same headers and body as the router's, durable, and in order with pipelined reads")
    func sameAsRouter() async throws {
        let dir = TempDir()
        let config = try await testConfig(dir)
        try await withApp(config) { client, app in
            let fast = try await client.request(
                .post, "/users", json: #"{"name":"Fast","username":"fast","email":"fast@example.com"}"#)
            let routed = try await client.request(
                .post, "/users?via=router", json: #"{"name":"Routed","username":"routed","email":"routed@example.com"}"#)
            #expect(fast.status == .created, "\(fast.text)")
            #expect(routed.status == .created, "\(routed.text)")
            let names = { (fields: HTTPFields) in Set(fields.map(\.name.canonicalName)) }
            #expect(names(fast.headers) == names(routed.headers))
            for name in [HTTPField.Name.contentType, .cacheControl, .eTag] {
                #expect(fast.headers[name] == routed.headers[name], "\(name)")
            }
            let created = try fast.object()
            let id = try #require(created["id"] as? String)
            #expect(fast.headers[.location] == "/users/\(id)")
            #expect(Set(created.keys) == Set(try routed.object().keys))
            #expect(created["name"] as? String == "Fast")
            // Committed before the answer: the database has it.
            #expect(try await app.store.get(id: id)?.username == "fast")
            #expect(try await app.store.count() == 2)

            // A conflict, an invalid body and a missing token all get the router's problems.
            try await client.request(.post, "/users", json: #"{"name":"Again","username":"fast","email":"x@example.com"}"#)
                .problem(.conflict)
            // Two creates and the router's retry of the conflicting one: the failed attempt on the event loop is not counted.
            let metrics = String(decoding: try #require(app.metrics).render(), as: UTF8.self)
            #expect(metrics.contains(#"userapi_storage_operation_duration_seconds_count{backend="sqlite",operation="create"} 3"#))
            let invalid = try await client.request(.post, "/users", json: #"{"name":"","username":"x","email":"nope"}"#)
            try invalid.problem(.unprocessableContent)
            #expect(try invalid.problemFields().contains("email"))
            try await client.request(.post, "/users", json: Self.body, token: nil).problem(.unauthorized)
            #expect(try await app.store.count() == 2)

            // Pipelined behind a create, later requests wait for its answer, whichever path answers them.
            let raw = try SlowClient(port: app.port)
            defer { raw.close() }
            func post(_ json: String, _ requestID: String) -> String {
                "POST /users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(TestEnv.token)\r\n"
                    + "Content-Type: application/json\r\nX-Request-ID: \(requestID)\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
            }
            try raw.send(
                post(#"{"name":"P","username":"piped","email":"piped@example.com"}"#, "p-1")
                    + "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: p-2\r\n\r\n"
                    + post(#"{"name":"","username":"piped2","email":"piped2@example.com"}"#, "p-3")
                    + post(#"{"name":"Q","username":"piped3","email":"piped3@example.com"}"#, "p-4")
                    + "GET /users/\(id) HTTP/1.1\r\nHost: t\r\nX-Request-ID: p-5\r\n\r\n")
            let (answers, _) = raw.readResponses(5)
            #expect(answers.count == 5)
            let expected = ["201 Created", "200 OK", "422 Unprocessable", "201 Created", "200 OK"]
            for (i, answer) in answers.enumerated() where i < expected.count {
                #expect(answer.hasPrefix("HTTP/1.1 \(expected[i])"), "answer \(i + 1): \(answer)")
                #expect(answer.contains("X-Request-ID: p-\(i + 1)"), "answer \(i + 1) in request order: \(answer)")
            }
            #expect(try await app.store.count() == 4)
        }
    }
}
