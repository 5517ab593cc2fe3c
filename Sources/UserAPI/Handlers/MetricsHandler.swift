import Hummingbird
import NIOCore

/// `GET /metrics`: Prometheus text exposition format.
struct MetricsHandler {
    let metrics: AppMetrics

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
    }
}
