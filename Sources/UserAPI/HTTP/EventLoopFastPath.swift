import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers two kinds of request on the connection's event loop instead of
/// handing them to a Swift task that runs the router:
///
/// - the liveness probe, `GET /healthz`;
/// - `GET /users/{id}` when the store holds that user in memory (the SQLite
///   store's user cache, `UserStore.cachedUser`).
///
/// Handing a request to a task and its answer back to the event loop costs
/// more CPU than nginx spends on a whole request, and it is the floor of
/// every async handler (bench/README.md); a probe sent while a request flood
/// fills the task pool also waits behind that flood. Answered here, neither
/// cost applies, and each answer keeps everything the router path gives it:
/// the request id (the client's, when sane), the same status, headers and
/// body, the HTTP and storage metrics and the access-log line. A test sends
/// the same reads down both paths and compares the answers.
///
/// It only answers when that cannot change what a client sees; everything
/// else, including every error, goes to the router:
/// - while `ExecutorHeartbeat` is recent, so a wedged task pool still fails
///   liveness (the probe then takes the router path and times out there);
/// - when no earlier request on the connection is still being answered by the
///   router, so pipelined answers stay in request order;
/// - for a plain GET: no query (`/healthz?verbose` is the router's), no body,
///   no `Connection` option other than `close` (kubelet sends it) or
///   `keep-alive`;
/// - with tracing on, probes without a `traceparent` only, and no user reads
///   (every routed request gets its span);
/// - for a user read, only when the id is a UUID, the user is in memory, and,
///   with `auth.protect_reads`, a valid token came with it (a missing or
///   wrong one gets the router's 401).
///
/// User reads answered here do not count towards `http.max_in_flight`: they
/// never wait, so they cannot pile up. Sits after Hummingbird's
/// `HTTPConnectionStateHandler`, so idle timeouts and graceful-shutdown
/// closing see these requests like any other.
final class EventLoopFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Reads by id served from the store's memory.
    struct UserReads: Sendable {
        let store: any UserStore
        let tokens: TokenStore
        let protectReads: Bool
    }

    /// What every connection's handler shares.
    struct Shared: Sendable {
        let heartbeat: ExecutorHeartbeat
        let metrics: AppMetrics?
        let accessLog: AccessLog
        /// With tracing on, requests that carry a trace context go to the router.
        let tracing: Bool
        /// nil: every user read goes to the router (tracing on, or a store without a cache).
        let users: UserReads?

        init(heartbeat: ExecutorHeartbeat, metrics: AppMetrics?, accessLog: AccessLog, tracing: Bool, users: UserReads?) {
            self.heartbeat = heartbeat
            self.metrics = metrics
            self.accessLog = accessLog
            self.tracing = tracing
            self.users = tracing ? nil : users
        }

        static let traceparent = HTTPField.Name("traceparent")!
        static let healthRoute = "/healthz"
        static let healthRouteIndex = RouteTable.routes.firstIndex { $0.template == healthRoute }!
        static let healthBody = ByteBuffer(bytes: HealthHandlers.healthyBody)
        static let healthFields: HTTPFields = {
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[.contentLength] = String(HealthHandlers.healthyBody.count)
            fields[.cacheControl] = "no-store"
            return fields
        }()
        static let userRoute = "/users/{id}"
        static let userRouteIndex = RouteTable.routes.firstIndex { $0.template == userRoute }!
        static let userPathPrefix = "/users/"
    }

    /// What a held request will be answered with, once its end arrives.
    private enum Answer {
        case health
        /// The canonical id of the user asked for.
        case user(id: String)
    }

    private struct Held {
        var request: HTTPRequest
        var answer: Answer
        var date: String
        var start: ContinuousClock.Instant
    }

    private let shared: Shared
    /// Requests handed on to the router whose answer has not ended yet.
    private var routed = 0
    /// A request read up to its head, answered when its end arrives.
    private var held: Held?
    private var unflushed = false

    init(shared: Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            if routed == 0, held == nil, let answer = answerable(request) {
                let start = ContinuousClock.now
                if let date = shared.heartbeat.currentDate(now: start) {
                    held = Held(request: request, answer: answer, date: date, start: start)
                    return
                }
            }
            routed += 1
            context.fireChannelRead(data)
        case .body:
            // A GET with a body is unusual enough to be the router's business.
            if let request = held?.request {
                held = nil
                route(request, context: context)
            }
            context.fireChannelRead(data)
        case .end:
            guard let request = held else {
                context.fireChannelRead(data)
                return
            }
            held = nil
            switch request.answer {
            case .health:
                answerHealth(request, context: context)
            case .user(let id):
                if !answerUser(request, id: id, context: context) {
                    // Not in memory (any more): the router reads it from the database.
                    route(request.request, context: context)
                    context.fireChannelRead(data)
                }
            }
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

    private func route(_ request: HTTPRequest, context: ChannelHandlerContext) {
        routed += 1
        context.fireChannelRead(wrapInboundOut(.head(request)))
    }

    /// Which answer a request's head qualifies for, if any.
    private func answerable(_ request: HTTPRequest) -> Answer? {
        guard request.method == .get, let path = request.path else { return nil }
        // `keep-alive` is what HTTP/1.1 does anyway (many clients send it); other options are the router's.
        if let connection = request.headerFields[.connection]?.lowercased(), connection != "close", connection != "keep-alive" {
            return nil
        }
        if path == Shared.healthRoute {
            if shared.tracing, request.headerFields[Shared.traceparent] != nil { return nil }
            return .health
        }
        guard let users = shared.users, path.hasPrefix(Shared.userPathPrefix),
            let id = UserID.canonical(path.dropFirst(Shared.userPathPrefix.count))
        else { return nil }
        if users.protectReads {
            guard let token = AuthMiddleware.presentedToken(request.headerFields), users.tokens.tokens.accepts(token)
            else { return nil }
        }
        return .user(id: id)
    }

    private func answerHealth(_ held: Held, context: ChannelHandlerContext) {
        let requestID = Self.requestID(held.request)
        shared.metrics?.requestStarted()
        write(status: .ok, fields: Shared.healthFields, body: Shared.healthBody, held: held, requestID: requestID, context: context)
        let duration = ContinuousClock.now - held.start
        shared.metrics?.requestFinished(
            method: .get, route: Shared.healthRoute, routeIndex: Shared.healthRouteIndex, status: 200, duration: duration)
        shared.accessLog.record(
            method: "GET", route: Shared.healthRoute, path: Shared.healthRoute, status: 200, duration: duration,
            bytes: HealthHandlers.healthyBody.count, requestID: requestID)
    }

    /// Answers as `GetUserHandler` would; false when the user is not in memory.
    private func answerUser(_ held: Held, id: String, context: ChannelHandlerContext) -> Bool {
        guard let users = shared.users, let user = users.store.cachedUser(id: id) else { return false }
        let requestID = Self.requestID(held.request)
        shared.metrics?.requestStarted()
        var fields = HTTPFields()
        let status: HTTPResponse.Status
        let body: ByteBuffer
        if EntityTags.noneMatchSatisfiedByCurrent(held.request.headerFields[.ifNoneMatch], current: user) {
            status = .notModified
            body = ByteBuffer()
        } else {
            status = .ok
            var writer = JSONWriter(capacity: 256)
            user.writeJSON(into: &writer)
            body = context.channel.allocator.buffer(bytes: writer.bytes)
            fields[.contentType] = "application/json"
        }
        fields[.eTag] = user.etag
        fields[.cacheControl] = "no-cache"
        fields[.contentLength] = String(body.readableBytes)
        write(status: status, fields: fields, body: body, held: held, requestID: requestID, context: context)

        let duration = ContinuousClock.now - held.start
        shared.metrics?.requestFinished(
            method: .get, route: Shared.userRoute, routeIndex: Shared.userRouteIndex, status: Int(status.code),
            duration: duration)
        shared.accessLog.record(
            method: "GET", route: Shared.userRoute, path: held.request.path ?? "", status: Int(status.code),
            duration: duration, bytes: body.readableBytes, requestID: requestID)
        return true
    }

    private static func requestID(_ request: HTTPRequest) -> String {
        RequestObservationMiddleware.saneRequestID(request.headerFields[RequestObservationMiddleware.requestIDHeader])
            ?? RequestObservationMiddleware.newRequestID()
    }

    private func write(
        status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer, held: Held, requestID: String,
        context: ChannelHandlerContext
    ) {
        var fields = fields
        fields[RequestObservationMiddleware.requestIDHeader] = requestID
        fields[.date] = held.date
        let close = held.request.headerFields[.connection]?.lowercased() == "close"
        if close { fields[.connection] = "close" }

        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        if body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(body)), promise: nil)
        }
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.close(promise: nil)
        } else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            unflushed = true
        }
    }
}
