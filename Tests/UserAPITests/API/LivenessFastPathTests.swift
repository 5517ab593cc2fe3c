import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import UserAPI

/// `LivenessFastPath` in a channel of its own: which requests it answers,
/// which it hands on, and that pipelined answers keep their order.
@Suite("liveness probes answered on the event loop")
struct LivenessFastPathTests {
    struct Harness {
        let channel: EmbeddedChannel
        let heartbeat: ExecutorHeartbeat
        let metrics: AppMetrics

        init(tracing: Bool = false) throws {
            heartbeat = ExecutorHeartbeat()
            metrics = AppMetrics(version: "test", commit: "test")
            var config = AppConfig()
            config.log.access = false
            let shared = LivenessFastPath.Shared(
                heartbeat: heartbeat, metrics: metrics, accessLog: AccessLog(config: config, logger: TestEnv.logger),
                tracing: tracing)
            channel = EmbeddedChannel(handler: LivenessFastPath(shared: shared))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        }

        func send(_ request: HTTPRequest, body: String? = nil) throws {
            try channel.writeInbound(HTTPRequestPart.head(request))
            if let body { try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: body))) }
            try channel.writeInbound(HTTPRequestPart.end(nil))
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

        func healthzCount() -> String? {
            let text = String(decoding: metrics.render(), as: UTF8.self)
            return text.split(separator: "\n").first {
                $0.hasPrefix(#"http_requests_total{method="GET",route="/healthz",status="200"}"#)
            }.map { String($0.split(separator: " ").last!) }
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
