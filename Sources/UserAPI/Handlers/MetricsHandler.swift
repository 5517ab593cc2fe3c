import Hummingbird
import NIOCore

/// `GET /metrics`: Prometheus text exposition format (404 when metrics are off).
struct MetricsHandler {
    let metrics: AppMetrics?

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let metrics else { throw Problem.notFound("Metrics are turned off (metrics.enabled).") }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
    }
}
