import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers the service's most frequent requests on the connection's event
/// loop instead of handing them to a Swift task that runs the router:
///
/// - the liveness probe, `GET /healthz`;
/// - `GET /users/{id}` when the store holds that user in memory (the SQLite
///   store's user cache, `UserStore.cachedUser`);
/// - `GET /users` with at most `limit` and `after` in its query, when the
///   store can read without a task (SQLite: the read runs on a reader thread,
///   as on the router's path, and the page is written from its result);
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
/// body (built by the same functions), the HTTP and storage metrics and the
/// access-log line. Tests send the same requests down both paths and compare
/// the answers.
///
/// It only answers when that cannot change what a client sees; everything
/// else, including every error, goes to the router:
/// - while `ExecutorHeartbeat` is recent, so a wedged task pool still fails
///   liveness (the probe then takes the router path and times out there);
/// - when no earlier request on the connection is still being answered by the
///   router, so pipelined answers stay in request order;
/// - for a GET: no body, no `Connection` option other than `close` (kubelet
///   sends it) or `keep-alive`; no query except a list page's plain `limit`
///   and `after` (`/healthz?verbose` is the router's);
/// - with tracing on, probes without a `traceparent` only, and nothing else
///   (every routed request gets its span);
/// - for reads, with `auth.protect_reads`, only with a valid token (a missing
///   or wrong one gets the router's 401); a read by id only when the id is a
///   UUID and the user is in memory; a list page only while
///   `http.max_in_flight` has room (it counts there, like a routed request);
/// - for a create, only with a valid token, `Content-Type: application/json`
///   and a body that passes validation and arrived with its head in one read
///   (a body still arriving is the router's: there it counts towards
///   `http.max_in_flight`, which bounds what bodies can hold).
///
/// When a list read or an insert fails (an overloaded or closed store, a
/// conflict), the request goes to the router, which tries again and gives its
/// usual answer: a failed read or insert changes nothing, so trying it twice
/// is safe. While storage works on a request, the connection's further
/// requests wait (their parts are kept, and reading pauses) so answers stay
/// in order; creates are bounded by the write queue
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

    /// List pages read without a task.
    struct UserLists: Sendable {
        let store: any UserStore
        let tokens: TokenStore
        let protectReads: Bool
        let inFlight: InFlightRequests
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
        /// nil: every list page goes to the router (tracing on, or a store that needs a task).
        let lists: UserLists?
        /// nil: every create goes to the router (tracing on, or a store that needs a task).
        let creates: UserCreates?

        init(
            heartbeat: ExecutorHeartbeat, metrics: AppMetrics?, accessLog: AccessLog, tracing: Bool, users: UserReads?,
            lists: UserLists? = nil, creates: UserCreates? = nil
        ) {
            self.heartbeat = heartbeat
            self.metrics = metrics
            self.accessLog = accessLog
            self.tracing = tracing
            self.users = tracing ? nil : users
            self.lists = tracing ? nil : lists
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
    enum Answer {
        case health
        /// The canonical id of the user asked for.
        case user(id: String)
        /// A list page of `limit` users after `after`.
        case list(limit: Int, after: String?)
        case create
    }

    struct Held {
        var request: HTTPRequest
        var answer: Answer
        var date: String
        var start: ContinuousClock.Instant
        /// A create's body so far.
        var body: ByteBuffer?
    }

    let shared: Shared
    /// Requests handed on to the router whose answer has not ended yet.
    private var routed = 0
    /// A request read up to its head, answered when its end arrives.
    private var held: Held?
    /// Answers written here since the last flush.
    var unflushed = false
    /// Storage is working on a request (a list read, an insert); what arrives
    /// meanwhile waits in `deferred`.
    private var waiting = false
    private var deferred: [HTTPRequestPart] = []
    /// The channel asked for more input while storage was working.
    private var readPaused = false

    init(shared: Shared) {
        self.shared = shared
    }

    // MARK: Reading: hold, answer or hand on

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if waiting {
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
                    routeWhole(request, context: context)
                }
            case .list(let limit, let after):
                startList(request, limit: limit, after: after, context: context)
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
        if waiting {
            readPaused = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // `routed` first: unwrapping is a dynamic cast, three per answer.
        if routed > 0, case .end = unwrapOutboundIn(data) {
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

    /// Hands a held request to the router after its end has been read.
    func routeWhole(_ held: Held, context: ChannelHandlerContext) {
        route(held, context: context)
        context.fireChannelRead(wrapInboundOut(.end(nil)))
    }

    // MARK: Waiting for storage

    /// Runs `call` (which starts a storage call) and `finish` with its result
    /// on the event loop; the connection's further requests wait until then.
    func whileStorageWorks<T: Sendable>(
        context: ChannelHandlerContext,
        _ call: (_ completion: @escaping @Sendable (Result<T, any Error>) -> Void) -> Void,
        finish: @escaping (EventLoopFastPath, ChannelHandlerContext, Result<T, any Error>) -> Void
    ) {
        waiting = true
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context, finish), eventLoop: loop)
        call { result in
            loop.execute {
                let (handler, context, finish) = bound.value
                handler.waiting = false
                finish(handler, context, result)
                handler.resume(context: context)
            }
        }
    }

    /// Goes on with the requests that arrived while storage worked, in order
    /// (one of them may start another storage call), then reads again.
    private func resume(context: ChannelHandlerContext) {
        let waitingParts = deferred
        deferred = []
        for part in waitingParts {
            if waiting { deferred.append(part) } else { read(part, context: context) }
        }
        // The router's side delivers what it was handed at the end of a read.
        endOfRead(context: context)
        if !waiting, readPaused {
            readPaused = false
            context.read()
        }
    }
}
