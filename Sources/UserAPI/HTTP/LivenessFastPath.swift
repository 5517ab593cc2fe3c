import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers the liveness probe, `GET /healthz`, on the connection's event loop.
///
/// Every other request becomes a Swift task that runs the router. A probe
/// sent while a request flood fills that pool waits behind it (about a second
/// in the overload drill, against the chart's 2 s probe timeout), and handing
/// a request to a task and its answer back to the event loop costs more CPU
/// than the rest of the probe (bench/README.md). Answered here, the probe
/// costs neither, and keeps everything the router path gives it: the request
/// id (the client's, when sane), the same headers and body, the HTTP metrics
/// and the access-log line.
///
/// It only answers when that cannot change what a client sees:
/// - while `ExecutorHeartbeat` is recent, so a wedged task pool still fails
///   liveness (the probe then takes the router path and times out there);
/// - when no earlier request on the connection is still being answered by the
///   router, so pipelined answers stay in request order;
/// - for a plain `GET /healthz`: no query (`?verbose` is the router's), no
///   body, no `Connection` option other than `close` (kubelet sends `close`),
///   and, with tracing on, no `traceparent` (that request gets its span).
///
/// Sits after Hummingbird's `HTTPConnectionStateHandler`, so idle timeouts and
/// graceful-shutdown closing see these requests like any other.
final class LivenessFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's handler shares.
    struct Shared: Sendable {
        let heartbeat: ExecutorHeartbeat
        let metrics: AppMetrics?
        let accessLog: AccessLog
        /// With tracing on, requests that carry a trace context go to the router.
        let tracing: Bool

        static let traceparent = HTTPField.Name("traceparent")!
        static let route = "/healthz"
        static let routeIndex = RouteTable.routes.firstIndex { $0.template == route }!
        static let body = ByteBuffer(bytes: HealthHandlers.healthyBody)
        static let fields: HTTPFields = {
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[.contentLength] = String(HealthHandlers.healthyBody.count)
            fields[.cacheControl] = "no-store"
            return fields
        }()
    }

    private let shared: Shared
    /// Requests handed on to the router whose answer has not ended yet.
    private var routed = 0
    /// A probe read up to its head, answered when its end arrives.
    private var held: (request: HTTPRequest, date: String, start: ContinuousClock.Instant)?
    private var unflushed = false

    init(shared: Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            if routed == 0, held == nil, isPlainProbe(request) {
                let start = ContinuousClock.now
                if let date = shared.heartbeat.currentDate(now: start) {
                    held = (request, date, start)
                    return
                }
            }
            routed += 1
            context.fireChannelRead(data)
        case .body:
            // A probe with a body is unusual enough to be the router's business.
            if let probe = held {
                held = nil
                routed += 1
                context.fireChannelRead(wrapInboundOut(.head(probe.request)))
            }
            context.fireChannelRead(data)
        case .end:
            guard let probe = held else {
                context.fireChannelRead(data)
                return
            }
            held = nil
            answer(probe.request, date: probe.date, start: probe.start, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 {
            routed -= 1
        }
        context.write(data, promise: promise)
    }

    private func isPlainProbe(_ request: HTTPRequest) -> Bool {
        guard request.method == .get, request.path == Shared.route else { return false }
        if let connection = request.headerFields[.connection], connection.lowercased() != "close" { return false }
        if shared.tracing, request.headerFields[Shared.traceparent] != nil { return false }
        return true
    }

    private func answer(_ request: HTTPRequest, date: String, start: ContinuousClock.Instant, context: ChannelHandlerContext) {
        let requestID =
            RequestObservationMiddleware.saneRequestID(request.headerFields[RequestObservationMiddleware.requestIDHeader])
            ?? RequestObservationMiddleware.newRequestID()
        shared.metrics?.requestStarted()
        var fields = Shared.fields
        fields[RequestObservationMiddleware.requestIDHeader] = requestID
        fields[.date] = date
        // `isPlainProbe` let through no `Connection` value but `close`.
        let close = request.headerFields[.connection] != nil
        if close { fields[.connection] = "close" }

        context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(Shared.body)), promise: nil)
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.close(promise: nil)
        } else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            unflushed = true
        }

        let duration = ContinuousClock.now - start
        shared.metrics?.requestFinished(
            method: .get, route: Shared.route, routeIndex: Shared.routeIndex, status: 200, duration: duration)
        shared.accessLog.record(
            method: "GET", route: Shared.route, path: Shared.route, status: 200, duration: duration,
            bytes: HealthHandlers.healthyBody.count, requestID: requestID)
    }
}
