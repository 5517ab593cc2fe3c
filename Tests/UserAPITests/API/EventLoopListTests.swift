import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import UserAPI

/// List pages that `EventLoopFastPath` reads without a task: which queries
/// qualify, the answer from a real SQLite store (read on its reader thread,
/// written back on the channel's loop), and every way back to the router.
@Suite("list pages answered on the event loop")
struct EventLoopListTests {
    /// The handler in a thread-safe test channel, so the store's reader thread
    /// can hand its result back to the channel's loop as in a server.
    struct Harness {
        let channel: NIOAsyncTestingChannel
        let metrics: AppMetrics

        init(_ lists: EventLoopFastPath.UserLists, metrics: AppMetrics) async throws {
            self.metrics = metrics
            var config = AppConfig()
            config.log.access = false
            let heartbeat = ExecutorHeartbeat()
            let shared = EventLoopFastPath.Shared(
                heartbeat: heartbeat, metrics: metrics, accessLog: AccessLog(config: config, logger: TestEnv.logger),
                tracing: false, users: nil, lists: lists)
            channel = NIOAsyncTestingChannel()
            try await channel.pipeline.addHandler(EventLoopFastPath(shared: shared))
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080))
        }

        /// A request's head and end in one read, as a small request arrives.
        func send(_ path: String, _ fields: HTTPFields = [:]) async throws {
            let request = HTTPRequest(method: .get, scheme: "http", authority: "t", path: path, headerFields: fields)
            let channel = self.channel
            try await channel.testingEventLoop.executeInContext {
                channel.pipeline.fireChannelRead(HTTPRequestPart.head(request))
                channel.pipeline.fireChannelRead(HTTPRequestPart.end(nil))
                channel.pipeline.fireChannelReadComplete()
            }
            await channel.testingEventLoop.run()
        }

        /// The next answer written to the client: head, body, and whether it ended.
        func answer() async throws -> (head: HTTPResponse, body: String) {
            guard case .head(let head) = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) else {
                throw TestFailure("expected a response head")
            }
            var body = ""
            while true {
                switch try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) {
                case .body(let chunk): body += String(buffer: chunk)
                case .end: return (head, body)
                case .head: throw TestFailure("a second head before the end")
                }
            }
        }

        /// What was handed on to the router.
        func routed() async throws -> [HTTPRequestPart] {
            await channel.testingEventLoop.run()
            var parts: [HTTPRequestPart] = []
            while let part = try await channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
            return parts
        }

        func count(_ series: String) -> String? {
            let text = String(decoding: metrics.render(), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix(series) }.map { String($0.split(separator: " ").last!) }
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A real SQLite store with `users` users, the list settings for it, and
    /// the ids in creation (= list) order.
    func withStore(
        users count: Int = 3, protectReads: Bool = false, inFlight: InFlightRequests = InFlightRequests(limit: 0),
        _ body: @Sendable (SQLiteUserStore, EventLoopFastPath.UserLists, AppMetrics, [String]) async throws -> Void
    ) async throws {
        let dir = TempDir()
        let store = try await SQLiteUserStore.open(SQLiteSettings(path: dir.file("list.sqlite")), logger: TestEnv.logger)
        let metrics = AppMetrics(version: "test", commit: "test")
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            var ids: [String] = []
            for i in 0..<count {
                let now = Timestamp.nowMillis()
                let user = try await store.create(
                    User(
                        id: UserID.make(), name: "User \(i)", username: "user\(i)", email: "user\(i)@example.com",
                        createdAt: now, updatedAt: now, version: 1))
                ids.append(user.id)
            }
            let lists = EventLoopFastPath.UserLists(
                store: InstrumentedUserStore(base: store, metrics: metrics, tracing: false),
                tokens: try TokenStore(
                    plainTokens: TestEnv.token, filePath: nil, reloadInterval: .seconds(1), logger: TestEnv.logger),
                protectReads: protectReads, inFlight: inFlight)
            try await body(store, lists, metrics, ids)
        }
    }

    @Test("a page is read and answered without the router: body, Link, headers, request id; counted")
    func answersPage() async throws {
        try await withStore { _, lists, metrics, ids in
            let h = try await Harness(lists, metrics: metrics)
            try await h.send("/users?limit=2", [RequestObservationMiddleware.requestIDHeader: "l-1"])
            let (head, body) = try await h.answer()
            #expect(try await h.routed().isEmpty)
            #expect(head.status == .ok)
            let page = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
            #expect(page.compactMap { $0["id"] as? String } == Array(ids.prefix(2)))
            #expect(head.headerFields[ListUsersHandler.link] == "</users?limit=2&after=\(ids[1])>; rel=\"next\"")
            #expect(head.headerFields[.cacheControl] == "no-cache")
            #expect(head.headerFields[.contentType] == "application/json")
            #expect(head.headerFields[.contentLength] == String(body.utf8.count))
            #expect(head.headerFields[RequestObservationMiddleware.requestIDHeader] == "l-1")
            #expect(head.headerFields[.date]?.hasSuffix(" GMT") == true)

            // The next page via its cursor: the last user, no further link.
            try await h.send("/users?limit=2&after=\(ids[1])")
            let (last, lastBody) = try await h.answer()
            let rest = try #require(try JSONSerialization.jsonObject(with: Data(lastBody.utf8)) as? [[String: Any]])
            #expect(rest.compactMap { $0["id"] as? String } == [ids[2]])
            #expect(last.headerFields[ListUsersHandler.link] == nil)

            // No query: the default limit, every user.
            try await h.send("/users", [.connection: "keep-alive"])
            let all = try #require(try JSONSerialization.jsonObject(with: Data(try await h.answer().body.utf8)) as? [Any])
            #expect(all.count == 3)
            #expect(try await h.routed().isEmpty)
            #expect(h.count(#"http_requests_total{method="GET",route="/users",status="200"}"#) == "3")
            #expect(h.count(#"userapi_storage_operation_duration_seconds_count{backend="sqlite",operation="list"}"#) == "3")
            #expect(h.count("http_requests_in_flight") == "0.0")
        }
    }

    static let routedQueries = [
        "/users?", "/users?limit=", "/users?limit=0", "/users?limit=501", "/users?limit=abc", "/users?limit=+5",
        "/users?limit=%35", "/users?limit=5&limit=6", "/users?limit=5&", "/users?after=ada", "/users?limit",
        "/users?username=ada", "/users?email=a%40b.c", "/users?limit=5&via=router", "/users/", "/usersx", "/users#x",
    ]

    @Test("anything but a plain limit and cursor goes to the router", arguments: Self.routedQueries)
    func routesOthers(path: String) async throws {
        try await withStore(users: 1) { _, lists, metrics, _ in
            let h = try await Harness(lists, metrics: metrics)
            try await h.send(path)
            #expect(try await h.routed().count == 2, "head and end handed on")
        }
    }

    @Test("queries the router would answer alike are parsed alike")
    func plainQueries() {
        let id = "0192a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b"
        func parsed(_ query: String) -> String {
            ListUsersHandler.plainQuery(Substring(query)).map { "\($0.limit) \($0.after ?? "-")" } ?? "refused"
        }
        #expect(parsed("limit=50") == "50 -")
        #expect(parsed("limit=007") == "7 -")
        #expect(parsed("limit=500") == "500 -")
        #expect(parsed("after=\(id)") == "\(ListUsersHandler.defaultLimit) \(id)")
        #expect(parsed("after=\(id.uppercased())&limit=1") == "1 \(id)")
        for refused in ["", "limit=1000", "limit=-1", "limit=5&after=", "after=\(id)&after=\(id)", "LIMIT=5", "a=b"] {
            #expect(parsed(refused) == "refused", "\(refused)")
        }
    }

    @Test("with protected reads, a page is read here only with a valid token")
    func protectedReads() async throws {
        try await withStore(users: 1, protectReads: true) { _, lists, metrics, _ in
            let h = try await Harness(lists, metrics: metrics)
            try await h.send("/users")
            #expect(try await h.routed().count == 2, "no token: the router's 401")
            try await h.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .unauthorized)))
            try await h.channel.writeOutbound(HTTPResponsePart.end(nil))
            _ = try await h.channel.waitForOutboundWrite(as: HTTPResponsePart.self)
            _ = try await h.channel.waitForOutboundWrite(as: HTTPResponsePart.self)
            try await h.send("/users", [.authorization: "Bearer \(TestEnv.token)"])
            #expect(try await h.answer().head.status == .ok)
            #expect(try await h.routed().isEmpty)
        }
    }

    @Test("at the http.max_in_flight limit the page goes to the router, which sheds it; a read counts while it runs")
    func inFlightLimit() async throws {
        let inFlight = InFlightRequests(limit: 1)
        try await withStore(users: 1, inFlight: inFlight) { _, lists, metrics, _ in
            let h = try await Harness(lists, metrics: metrics)
            #expect(inFlight.enter())
            try await h.send("/users")
            #expect(try await h.routed().count == 2)
            #expect(!inFlight.enter(), "the fast path gave its place back")
            inFlight.leave()
        }
        try await withStore(users: 1, inFlight: inFlight) { _, lists, metrics, _ in
            let h = try await Harness(lists, metrics: metrics)
            try await h.send("/users")
            #expect(try await h.answer().head.status == .ok)
            #expect(inFlight.enter(), "left again once answered")
            inFlight.leave()
        }
    }

    @Test("a read that fails (the store closed) goes to the router, head and end, and is not counted as answered")
    func failedRead() async throws {
        try await withStore(users: 1) { store, lists, metrics, _ in
            await store.shutdown()
            let h = try await Harness(lists, metrics: metrics)
            try await h.send("/users?limit=1")
            let routed = try await h.routed()
            guard routed.count == 2, case .head(let head) = routed[0], case .end = routed[1] else {
                Issue.record("unexpected parts: \(routed)")
                return
            }
            #expect(head.path == "/users?limit=1")
            #expect(h.count(#"http_requests_total{method="GET",route="/users",status="200"}"#) == nil)
            #expect(h.count("http_requests_in_flight") == "0.0")
        }
    }
}

/// The same list pages over real HTTP, once answered on the event loop and
/// once by the router (an unknown query parameter sends a page there; the
/// handler ignores it): the answers must not differ beyond `Date` and `X-Request-ID`.
@Suite("list pages: event loop and router answer alike")
struct EventLoopListEquivalenceTests {
    @Test("pages with and without a cursor, with and without protected reads; in order when pipelined")
    func sameAnswers() async throws {
        for protectReads in [false, true] {
            let dir = TempDir()
            var config = try await testConfig(dir)
            config.auth.protectReads = protectReads
            try await withApp(config) { client, app in
                #expect(app.fastPath?.lists != nil, "the SQLite store's pages are read on the event loop")
                var ids: [String] = []
                for i in 0..<3 {
                    let user = try await client.createUser("User \(i)", "user\(i)", "user\(i)@example.com")
                    ids.append(try #require(user["id"] as? String))
                }
                for query in ["", "?limit=2", "?limit=2&after=\(ids[0])", "?after=\(ids[2])"] {
                    let fast = try await client.request(.get, "/users\(query)")
                    let routed = try await client.request(.get, "/users\(query)\(query.isEmpty ? "?" : "&")via=router")
                    #expect(fast.status == .ok, "\(query)")
                    #expect(fast.text == routed.text, "\(query)")
                    #expect(fast.headersBesideDateAndRequestID == routed.headersBesideDateAndRequestID, "\(query)")
                }
                if protectReads {
                    try await client.request(.get, "/users", token: nil).problem(.unauthorized)
                    try await client.request(.get, "/users?limit=1", token: "nope").problem(.unauthorized)
                }

                // Pipelined: a page, a create, a page that sees it, a routed request; answers in request order.
                let raw = try SlowClient(port: app.port)
                defer { raw.close() }
                let json = #"{"name":"P","username":"piped","email":"piped@example.com"}"#
                let auth = "Authorization: Bearer \(TestEnv.token)\r\n"
                try raw.send(
                    "GET /users?limit=500 HTTP/1.1\r\nHost: t\r\n\(auth)X-Request-ID: p-1\r\n\r\n"
                        + "POST /users HTTP/1.1\r\nHost: t\r\n\(auth)Content-Type: application/json\r\nX-Request-ID: p-2\r\n"
                        + "Content-Length: \(json.utf8.count)\r\n\r\n\(json)"
                        + "GET /users?limit=500 HTTP/1.1\r\nHost: t\r\n\(auth)X-Request-ID: p-3\r\n\r\n"
                        + "GET /users?limit=0 HTTP/1.1\r\nHost: t\r\n\(auth)X-Request-ID: p-4\r\n\r\n"
                        + "GET /users?limit=500 HTTP/1.1\r\nHost: t\r\n\(auth)X-Request-ID: p-5\r\n\r\n")
                let (answers, _) = raw.readResponses(5)
                #expect(answers.count == 5)
                let expected = ["200 OK", "201 Created", "200 OK", "400 Bad Request", "200 OK"]
                for (i, answer) in answers.enumerated() where i < expected.count {
                    #expect(answer.hasPrefix("HTTP/1.1 \(expected[i])"), "answer \(i + 1): \(answer)")
                    #expect(answer.contains("X-Request-ID: p-\(i + 1)"), "answer \(i + 1) in request order: \(answer)")
                }
                if answers.count == 5 {
                    #expect(!answers[0].contains("piped@example.com"), "the first page came before the create")
                    #expect(answers[2].contains("piped@example.com"), "the later page sees the committed create")
                }
            }
        }
    }
}
