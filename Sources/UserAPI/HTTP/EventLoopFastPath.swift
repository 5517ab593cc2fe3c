import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers two kinds of request on the connection's event loop instead of
/// handing them to a Swift task that runs the router:
///
/// - the liveness probe, `GET /healthz`;
/// - `GET /users/{id}` when the store holds that user in memory (the SQLite
///   store's user cache, `UserStore.cachedUser`);
/// - `POST /users` with a valid body and token, when the store can create
///   without a task (SQLite: the write joins the writer's next batch, and the
///   answer is written once that batch is durable, as on the router's path).
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
///   wrong one gets the router's 401);
/// - for a create, only with a valid token, `Content-Type: application/json`
///   and a body that passes validation and arrived with its head in one read
///   (a body still arriving is the router's: there it counts towards
///   `http.max_in_flight`, which bounds what bodies can hold); when the
///   insert fails (a conflict, an overloaded or closed store), the request
///   goes to the router, which tries again and gives its usual answer. A
///   failed insert changes nothing, so trying it twice is safe.
///
/// While a create is being written, the connection's further requests wait
/// (their parts are kept, and reading pauses) so answers stay in order.
/// Requests answered here do not count towards `http.max_in_flight`: reads
/// never wait, and creates are bounded by the write queue
/// (`database.max_queued_writes`). Sits after Hummingbird's
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

    /// Creates written without a task.
    struct UserCreates: Sendable {
        let store: any UserStore
        let tokens: TokenStore
        let maxBodySize: Int
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
        /// nil: every create goes to the router (tracing on, or a store that needs a task).
        let creates: UserCreates?

        init(
            heartbeat: ExecutorHeartbeat, metrics: AppMetrics?, accessLog: AccessLog, tracing: Bool, users: UserReads?,
            creates: UserCreates? = nil
        ) {
            self.heartbeat = heartbeat
            self.metrics = metrics
            self.accessLog = accessLog
            self.tracing = tracing
            self.users = tracing ? nil : users
            self.creates = tracing ? nil : creates
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
        static let usersRoute = "/users"
        static let usersRouteIndex = RouteTable.routes.firstIndex { $0.template == usersRoute }!
    }

    /// What a held request will be answered with, once its end arrives.
    private enum Answer {
        case health
        /// The canonical id of the user asked for.
        case user(id: String)
        case create
    }

    private struct Held {
        var request: HTTPRequest
        var answer: Answer
        var date: String
        var start: ContinuousClock.Instant
        /// A create's body so far.
        var body: ByteBuffer?
    }

    private let shared: Shared
    /// Requests handed on to the router whose answer has not ended yet.
    private var routed = 0
    /// A request read up to its head, answered when its end arrives.
    private var held: Held?
    private var unflushed = false
    /// A create is being written; what arrives meanwhile waits in `deferred`.
    private var writing = false
    private var deferred: [HTTPRequestPart] = []
    /// The channel asked for more input while a create was being written.
    private var readPaused = false

    init(shared: Shared) {
        self.shared = shared
    }

    // MARK: Reading: hold, answer or hand on

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if writing {
            deferred.append(part)
            return
        }
        read(part, context: context)
    }

    private func read(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let request):
            if routed == 0, held == nil, let answer = answerable(request) {
                let start = ContinuousClock.now
                if let date = shared.heartbeat.currentDate(now: start) {
                    var body: ByteBuffer?
                    if case .create = answer { body = context.channel.allocator.buffer(capacity: 256) }
                    held = Held(request: request, answer: answer, date: date, start: start, body: body)
                    return
                }
            }
            routed += 1
            context.fireChannelRead(wrapInboundOut(part))
        case .body(var chunk):
            guard var request = held else {
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            held = nil
            if case .create = request.answer, var body = request.body, let creates = shared.creates,
                body.readableBytes + chunk.readableBytes <= creates.maxBodySize
            {
                request.body = nil  // keep `body` uniquely referenced while it grows
                body.writeBuffer(&chunk)
                request.body = body
                held = request
                return
            }
            // A GET with a body, or a body past the limit, is the router's business.
            route(request, context: context)
            context.fireChannelRead(wrapInboundOut(part))
        case .end:
            guard let request = held else {
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            held = nil
            switch request.answer {
            case .health:
                answerHealth(request, context: context)
            case .user(let id):
                if !answerUser(request, id: id, context: context) {
                    // Not in memory (any more): the router reads it from the database.
                    route(request, context: context)
                    context.fireChannelRead(wrapInboundOut(part))
                }
            case .create:
                startCreate(request, context: context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        endOfRead(context: context)
    }

    private func endOfRead(context: ChannelHandlerContext) {
        // A create is only answered here when all of it came in one read: a body
        // still arriving (slowly, or large) is the router's, where it counts
        // towards `http.max_in_flight` and memory stays bounded.
        if let request = held, case .create = request.answer {
            held = nil
            route(request, context: context)
        }
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if writing {
            readPaused = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 {
            routed -= 1
        }
        context.write(data, promise: promise)
    }

    /// Hands a held request to the router: its head, and a create's body so far.
    private func route(_ held: Held, context: ChannelHandlerContext) {
        routed += 1
        context.fireChannelRead(wrapInboundOut(.head(held.request)))
        if let body = held.body, body.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(.body(body)))
        }
    }

    // MARK: Which requests qualify

    /// Which answer a request's head qualifies for, if any.
    private func answerable(_ request: HTTPRequest) -> Answer? {
        guard request.method == .get || request.method == .post, let path = request.path else { return nil }
        // `keep-alive` is what HTTP/1.1 does anyway (many clients send it); other options are the router's.
        if let connection = request.headerFields[.connection]?.lowercased(), connection != "close", connection != "keep-alive" {
            return nil
        }
        if request.method == .post {
            guard path == Shared.usersRoute, let creates = shared.creates else { return nil }
            return creatable(request, creates) ? .create : nil
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

    /// A create the router would not refuse before reading its body.
    private func creatable(_ request: HTTPRequest, _ creates: UserCreates) -> Bool {
        let fields = request.headerFields
        guard (try? JSONBody.checkContentType(fields[.contentType], accepting: [JSONBody.json])) != nil else { return false }
        if let length = fields[.contentLength] {
            guard let length = Int(length), length <= creates.maxBodySize else { return false }
        }
        guard let token = AuthMiddleware.presentedToken(fields) else { return false }
        return creates.tokens.tokens.accepts(token)
    }

    // MARK: Answers

    /// Validates a held create and queues its insert; anything invalid goes to
    /// the router, which answers with the problem naming the fields.
    private func startCreate(_ held: Held, context: ChannelHandlerContext) {
        let fields: UserFields
        do {
            guard let creates = shared.creates, let body = held.body else { throw StoreError.notFound }
            let document = try JSONValue.parse(body.readableBytesView)
            fields = try UserValidation.validateDocument(document, current: nil)
            let now = Timestamp.nowMillis()
            let user = User(
                id: UserID.make(), name: fields.name, username: fields.username, email: fields.email,
                createdAt: now, updatedAt: now, version: 1)
            writing = true
            shared.metrics?.requestStarted()
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            creates.store.create(user) { result in
                loop.execute {
                    let (handler, context) = bound.value
                    handler.finishCreate(held, result, context: context)
                }
            }
        } catch {
            route(held, context: context)
            context.fireChannelRead(wrapInboundOut(.end(nil)))
        }
    }

    /// Runs on the event loop once the insert is durable or has failed.
    private func finishCreate(_ held: Held, _ result: Result<User, any Error>, context: ChannelHandlerContext) {
        writing = false
        switch result {
        case .success(let user):
            // Durable now, whether or not the client is still there to hear it (as on the router's path).
            var writer = JSONWriter(capacity: 256)
            user.writeJSON(into: &writer)
            let body = context.channel.allocator.buffer(bytes: writer.bytes)
            var fields = HTTPFields()
            fields[.location] = "/users/\(user.id)"
            fields[.eTag] = user.etag
            fields[.cacheControl] = "no-cache"
            fields[.contentType] = "application/json"
            fields[.contentLength] = String(body.readableBytes)
            let requestID = Self.requestID(held.request)
            write(status: .created, fields: fields, body: body, held: held, requestID: requestID, context: context)
            let duration = ContinuousClock.now - held.start
            shared.metrics?.requestFinished(
                method: .post, route: Shared.usersRoute, routeIndex: Shared.usersRouteIndex, status: 201, duration: duration)
            shared.accessLog.record(
                method: "POST", route: Shared.usersRoute, path: Shared.usersRoute, status: 201, duration: duration,
                bytes: body.readableBytes, requestID: requestID)
        case .failure:
            shared.metrics?.requestAbandoned()
            // Conflict, overload, a closed store: the router tries again and answers as it always does.
            if context.channel.isActive {
                route(held, context: context)
                context.fireChannelRead(wrapInboundOut(.end(nil)))
            }
        }
        // Requests that arrived meanwhile, in order; one of them may start another create.
        let waiting = deferred
        deferred = []
        for part in waiting {
            if writing { deferred.append(part) } else { read(part, context: context) }
        }
        // The router's side delivers what it was handed at the end of a read.
        endOfRead(context: context)
        if !writing, readPaused {
            readPaused = false
            context.read()
        }
    }

    private func answerHealth(_ held: Held, context: ChannelHandlerContext) {
        let requestID = Self.requestID(held.request)
        shared.metrics?.requestStarted()
        write(
            status: .ok, fields: Shared.healthFields, body: Shared.healthBody, held: held, requestID: requestID, context: context)
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
