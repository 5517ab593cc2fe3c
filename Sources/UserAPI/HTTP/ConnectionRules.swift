// Hand-written: neither SwiftNIO nor Hummingbird bounds the time a request may take to arrive, or closes after an early error.
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// How long a client may take to send one request.
public struct RequestLimits: Sendable {
    /// From a request's first byte to its last.
    public var requestTimeout: TimeAmount
    /// Longest pause between two reads while a request is arriving.
    public var readTimeout: TimeAmount

    public init(requestTimeout: TimeAmount, readTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
        self.readTimeout = readTimeout
    }
}

/// First in the pipeline, on raw bytes: closes a connection whose request
/// has not arrived in full within `requestTimeout` of its first byte, or
/// pauses longer than `readTimeout` mid-request. Trickling a byte now and
/// then no longer keeps a connection (and its slot) forever.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let limits: RequestLimits
    private let metrics: AppMetrics?
    private var context: ChannelHandlerContext?
    private var receiving = false
    /// The connection became a WebSocket: its frames are not HTTP requests.
    private var stopped = false
    private var deadline: Scheduled<Void>?
    private var pause: Scheduled<Void>?

    init(limits: RequestLimits, metrics: AppMetrics?) {
        self.limits = limits
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !stopped else { return context.fireChannelRead(data) }
        if !receiving {
            receiving = true
            deadline = schedule(in: limits.requestTimeout, reason: "request_timeout")
        }
        pause?.cancel()
        pause = schedule(in: limits.readTimeout, reason: "read_timeout")
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    /// The request's last part was read: the clock stops until the next one's first byte.
    func requestReceived() {
        receiving = false
        cancelTimers()
    }

    /// The connection was upgraded (to a WebSocket): no more deadlines.
    func stop() {
        stopped = true
        requestReceived()
    }

    private func cancelTimers() {
        deadline?.cancel()
        pause?.cancel()
        deadline = nil
        pause = nil
    }

    private func schedule(in time: TimeAmount, reason: String) -> Scheduled<Void>? {
        guard let context else { return nil }
        let metrics = self.metrics
        return context.eventLoop.assumeIsolated().scheduleTask(in: time) { [weak self] in
            guard let self, self.receiving, let context = self.context else { return }
            metrics?.connectionClosed(reason: reason)
            context.close(promise: nil)
        }
    }
}

/// Between NIO's HTTP/1 codec and Hummingbird's, where the HTTP version and
/// raw header fields are still there:
///
/// - HTTP/1.0 without `keep-alive` (and any request saying `Connection:
///   close`) gets `Connection: close` and the connection closes after the answer;
/// - an error answered before the request body was read gets `Connection:
///   close`, and the connection closes instead of reading the rest of the body;
/// - `Expect: 100-continue` is answered with 100 at once;
/// - once the connection is upgraded (101, a WebSocket), it steps aside;
/// - a request without exactly one `Host` (HTTP/1.1), or with a
///   `Transfer-Encoding` other than `chunked`, is refused with 400 and the
///   connection closed, as the HTTP parser refuses malformed requests: the
///   bytes after it cannot be trusted to be another request.
final class HTTP1RequestRules: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let deadline: RequestDeadlineHandler
    private let metrics: AppMetrics?
    /// For each request not yet answered, oldest first: whether the connection closes after its answer.
    private var closeAfter: [Bool] = []
    /// The newest request's body is still arriving.
    private var readingBody = false
    /// The answer being written closes the connection when it ends.
    private var closing = false
    /// A refused request: everything after it is ignored.
    private var refused = false
    /// Switched to another protocol (a WebSocket): everything passes untouched.
    private var upgraded = false

    init(deadline: RequestDeadlineHandler, metrics: AppMetrics?) {
        self.deadline = deadline
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !upgraded else { return context.fireChannelRead(data) }
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(var head):
            if let problem = Self.framingProblem(head) {
                refuse(context, problem)
                return
            }
            let keepAlive = head.isKeepAlive
            if !keepAlive, !head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) {
                // Hummingbird closes after the answer to a request that says so.
                head.headers.replaceOrAdd(name: "Connection", value: "close")
            }
            closeAfter.append(!keepAlive)
            readingBody = true
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                head.headers.remove(name: "Expect")
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            context.fireChannelRead(wrapInboundOut(.head(head)))
        case .body:
            context.fireChannelRead(data)
        case .end:
            readingBody = false
            deadline.requestReceived()
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !upgraded else { return context.write(data, promise: promise) }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status == .switchingProtocols:
            upgraded = true
            deadline.stop()
            context.write(data, promise: promise)
        case .head(var head) where head.status.code >= 200:
            let earlyError = readingBody && head.status.code >= 400
            if earlyError || closeAfter.first == true {
                closing = true
                head.headers.replaceOrAdd(name: "Connection", value: "close")
                if earlyError { metrics?.connectionClosed(reason: "answered_before_body") }
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where closing:
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
        case .end:
            if !closeAfter.isEmpty { closeAfter.removeFirst() }
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    static func framingProblem(_ head: HTTPRequestHead) -> String? {
        let hosts = head.headers[canonicalForm: "host"]
        if hosts.count > 1 { return "The request has more than one Host header." }
        if hosts.isEmpty, head.version.minor >= 1 { return "An HTTP/1.1 request needs a Host header." }
        let codings = head.headers[canonicalForm: "transfer-encoding"].map { $0.lowercased() }
        if !codings.isEmpty, codings != ["chunked"] {
            return "Transfer-Encoding \(codings.joined(separator: ", ")) is not supported; send chunked or a Content-Length."
        }
        return nil
    }

    private func refuse(_ context: ChannelHandlerContext, _ detail: String) {
        refused = true
        metrics?.connectionClosed(reason: "invalid_framing")
        var body = JSONWriter(capacity: 200)
        body.beginObject()
        body.key("type")
        body.string("/problems/bad-request")
        body.key("title")
        body.string("Bad request")
        body.key("status")
        body.number(400)
        body.key("detail")
        body.string(detail)
        body.endObject()
        let headers = HTTPHeaders([
            ("Content-Type", Problem.contentType), ("Content-Length", "\(body.bytes.count)"), ("Connection", "close"),
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
        ])
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body.bytes)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }
}

/// Open connections per client address, so that one client cannot take all
/// of `http.max_connections`.
public final class ConnectionsPerClient: Sendable {
    let limit: Int
    private let counts = NIOLockedValueBox<[String: Int]>([:])

    public init(limit: Int) {
        self.limit = limit
    }

    /// Counts the connection in (and out when it closes), or refuses it when
    /// its client is at the limit. 0 means no limit.
    func admit(_ channel: any Channel) -> Bool {
        guard limit > 0, let address = channel.remoteAddress?.ipAddress else { return true }
        let admitted = counts.withLockedValue { counts in
            let current = counts[address, default: 0]
            guard current < limit else { return false }
            counts[address] = current + 1
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [counts] _ in
            counts.withLockedValue { counts in
                let left = counts[address, default: 1] - 1
                counts[address] = left > 0 ? left : nil
            }
        }
        return true
    }
}
