import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import UserAPI

/// OpenTelemetry tracing in the shipped binary: spans exported over OTLP/HTTP
/// to a collector (a stand-in that records what it receives), the caller's
/// W3C trace continued, and the trace id in the access log.
@Suite("Tracing", .serialized)
struct TracingProcessTests {
    /// Records every OTLP/HTTP export request body.
    final class FakeCollector: Sendable {
        let bodies = Mutex<[[UInt8]]>([])

        func received(_ needle: [UInt8]) -> Bool {
            bodies.withLock { all in all.contains { body in body.firstRange(of: needle) != nil } }
        }
    }

    static func hex(_ s: String) -> [UInt8] {
        stride(from: 0, to: s.count, by: 2).map { i in
            UInt8(s[s.index(s.startIndex, offsetBy: i)..<s.index(s.startIndex, offsetBy: i + 2)], radix: 16)!
        }
    }

    static let token = "tracing-test-token-0123"

    /// Runs `body` with a stand-in OTLP/HTTP collector listening on loopback.
    func withCollector(_ body: @Sendable (FakeCollector, Int) async throws -> Void) async throws {
        let collector = FakeCollector()
        let router = Router()
        router.post("/v1/traces") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 10 << 20)
            collector.bodies.withLock { $0.append(Array(body.readableBytesView)) }
            return .ok
        }
        let collectorApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await collectorApp.test(.live) { client in
            try await body(collector, try #require(client.port))
        }
    }

    @Test("with OTEL_TRACES_EXPORTER=otlp, request and storage spans reach the collector in the caller's trace")
    func exportsSpans() async throws {
        try await withCollector { collector, collectorPort in
            let dir = TempDir()
            let server = try ServerProcess(environment: [
                "DATABASE_URL": "sqlite:\(dir.file("t.sqlite"))", "AUTH_TOKENS": Self.token,
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(collectorPort)",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_SERVICE_NAME": "userapi-under-test",
            ])
            try await server.waitUntilListening()
            let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let parentSpan = "00f067aa0ba902b7"
            let (_, status) = try await httpGet(
                "\(server.baseURL)/users?limit=1",
                headers: ["traceparent": "00-\(traceID)-\(parentSpan)-01", "Authorization": "Bearer \(Self.token)"])
            #expect(status == 200)

            // Shutting down flushes the exporter: after exit, whatever was exported has arrived.
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(120)) == 0)
            #expect(collector.received(Self.hex(traceID)), "no span with the caller's trace id was exported")
            #expect(collector.received(Array("/users".utf8)), "the request span names the route")
            #expect(collector.received(Array("db.list".utf8)), "the storage call has its own span")
            #expect(collector.received(Array("userapi-under-test".utf8)), "OTEL_SERVICE_NAME is honoured")
            let access = server.log.first { $0.contains(#""msg":"request""#) && $0.contains("/users") }
            #expect(access?.contains(#""trace_id":"\#(traceID)""#) == true, "access log: \(access ?? "none")")
        }
    }

    @Test("tracing is off by default: no export attempts, no trace ids in logs")
    func offByDefault() async throws {
        try await withCollector { collector, collectorPort in
            let dir = TempDir()
            // Everything an exporter would need, except turning tracing on.
            let server = try ServerProcess(environment: [
                "DATABASE_URL": "sqlite:\(dir.file("t.sqlite"))", "AUTH_TOKENS": Self.token,
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(collectorPort)", "OTEL_BSP_SCHEDULE_DELAY": "100",
            ])
            try await server.waitUntilListening()
            let (_, status) = try await httpGet(
                "\(server.baseURL)/users",
                headers: [
                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "Authorization": "Bearer \(Self.token)",
                ])
            #expect(status == 200)
            // A running exporter flushes on shutdown: after a clean exit nothing can still be on its way.
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(120)) == 0)
            #expect(server.log.contains { $0.contains(#""msg":"request""#) }, "the request was served and logged")
            #expect(!server.log.contains { $0.contains("trace_id") })
            #expect(collector.bodies.withLock { $0.isEmpty }, "something was exported")
        }
    }
}
