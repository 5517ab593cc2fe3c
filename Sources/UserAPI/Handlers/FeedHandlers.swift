import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// Following a watcher along the feed, whatever carries it: sends batches
/// and heartbeats until the feed or the client ends it; returns why.
enum FeedWatch {
    enum End {
        case goingAway, tooSlow, expired(oldest: Int64), clientGone
    }

    static func follow(
        _ feed: EventFeed, from start: Int64, transport: String,
        send: ([UserEvent]) async throws -> Void, heartbeat: () async throws -> Void
    ) async -> End {
        var cursor = start
        var live = false
        do {
            while true {
                switch try await feed.next(after: cursor, live: live) {
                case .events(let events):
                    try await send(events)
                    feed.sent(events.count, transport: transport)
                    cursor = events.last?.seq ?? cursor
                    // Caught up with what this process has read: from now on, falling behind counts.
                    if cursor >= feed.latest { live = true }
                case .idle:
                    live = true
                    try await heartbeat()
                case .goingAway:
                    return .goingAway
                case .tooSlow:
                    feed.dropped(reason: "too_slow")
                    return .tooSlow
                case .expired(let oldest):
                    feed.dropped(reason: "expired")
                    return .expired(oldest: oldest)
                }
            }
        } catch {
            return .clientGone
        }
    }

    /// `since` from `Last-Event-ID` or `?since=`: a whole number ≥ 0.
    static func since(_ text: Substring?) throws -> Int64? {
        guard let text else { return nil }
        guard let value = Int64(text), value >= 0 else {
            throw Problem.badRequest(
                "since must be the seq of an event already received (a whole number).",
                errors: [FieldError(field: "since", message: "must be a whole number of 0 or more")])
        }
        return value
    }

    /// Joins the feed or throws the problem to answer.
    static func join(_ feed: EventFeed, since: Int64?) async throws -> Int64 {
        do {
            return try await feed.join(since: since)
        } catch .full {
            throw Problem.unavailable("The server has as many feed watchers as it takes (events.max_watchers); retry shortly.")
        } catch .closing {
            throw Problem.unavailable("The server is shutting down: reconnect (to another replica) and resume.")
        } catch .unavailable {
            throw Problem.unavailable("The database did not answer; retry shortly.")
        } catch .expired(let oldest) {
            throw Problem.gone(
                "The feed no longer keeps events after \(since ?? 0) (the oldest kept is \(oldest)): "
                    + "list the users again, then follow the feed without since.")
        } catch .ahead(let latest) {
            throw Problem.badRequest(
                "since \(since ?? 0) is ahead of the feed (its newest event is \(latest)).",
                errors: [FieldError(field: "since", message: "must not be ahead of the newest event")])
        }
    }
}

/// `GET /users/events`: the feed as Server-Sent Events. Each event is
/// `id: <seq>`, `event: <type>`, `data: <JSON>`; a comment every heartbeat
/// interval keeps proxies from closing an idle stream. Resume with
/// `Last-Event-ID` (what browsers' EventSource sends) or `?since=<seq>`.
struct UserEventsHandler {
    let feed: EventFeed

    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    /// Asks nginx-like proxies not to buffer the stream.
    static let accelBuffering = HTTPField.Name("X-Accel-Buffering")!

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        for (key, _) in request.uri.queryParameters where key != "since" {
            throw Problem.badRequest(
                "Unknown query parameter \(key).",
                errors: [FieldError(field: String(key), message: "is not a query parameter of this route (allowed: since)")])
        }
        let since = try FeedWatch.since(
            request.headers[Self.lastEventID].map { $0[...] } ?? request.uri.queryParameters["since"])
        let start = try await FeedWatch.join(feed, since: since)
        let feed = self.feed
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[Self.accelBuffering] = "no"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer { feed.leave() }
                try await writer.write(ByteBuffer(string: ": following the users feed after \(start)\nretry: 2000\n\n"))
                let end = await FeedWatch.follow(
                    feed, from: start, transport: "sse",
                    send: { events in
                        var buffer = ByteBuffer()
                        for event in events {
                            buffer.writeString("id: \(event.seq)\nevent: \(event.kind.rawValue)\ndata: ")
                            buffer.writeBytes(event.json)
                            buffer.writeString("\n\n")
                        }
                        try await writer.write(buffer)
                    },
                    heartbeat: { try await writer.write(ByteBuffer(string: ": heartbeat\n\n")) })
                let reason: String? =
                    switch end {
                    case .goingAway: "going away: this server is shutting down; reconnect with Last-Event-ID"
                    case .tooSlow: "disconnected: this client fell too far behind; reconnect with Last-Event-ID"
                    case .expired: "gone: events after the last one sent are no longer kept; list the users again"
                    case .clientGone: nil
                    }
                if let reason { try? await writer.write(ByteBuffer(string: ": \(reason)\n\n")) }
                try await writer.finish(nil)
            })
    }
}

/// `GET /users/watch` without a WebSocket upgrade.
struct WatchWithoutUpgradeHandler {
    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        throw Problem(
            .upgradeRequired, type: "upgrade-required", title: "Upgrade required",
            detail:
                "This route speaks WebSocket: connect with Upgrade: websocket, or use GET /users/events for Server-Sent Events.",
            headers: [.upgrade: "websocket"])
    }
}

/// `GET /users/watch` upgraded to a WebSocket: the feed as one JSON text
/// message per event, after `{"type":"ready","latest":<seq>}`.
///
/// Browsers cannot put a token on a WebSocket request, so when reads need
/// one and the upgrade request carried none, the client's first message is
/// `{"token":"…","since":<seq>}` (since optional; `?since=` works too).
/// Close codes: 1001 going away (reconnect and resume), 1008 a bad token or
/// a `since` no longer kept (re-list), 1013 too many watchers or too slow
/// (reconnect and resume).
struct WatchHandler {
    let feed: EventFeed
    let auth: Authenticator

    static let helloTimeout: Duration = .seconds(10)
    /// 1013, "try again later" (RFC 6455 registry), which NIO has no name for.
    static let tryAgainLater = WebSocketErrorCode.unknown(1013)

    func handle(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: WebSocketRouterContext<AppRequestContext>
    )
        async throws
    {
        // The inbound stream has one reader, for as long as the socket lives: it hands
        // the first message over as the hello, then reads (and drops) the rest, so a
        // client's close is answered and ends the watch at once.
        let (firstMessage, first) = AsyncStream<String?>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var messages = inbound.messages(maxSize: 4096).makeAsyncIterator()
                var handedOver = false
                while let message = try await messages.next() {
                    if !handedOver {
                        handedOver = true
                        if case .text(let text) = message { first.yield(text) } else { first.yield(nil) }
                    }
                }
                first.finish()
            }
            group.addTask {
                let client = context.requestContext.clientAddress
                try await watch(request: context.request, client: client, hello: firstMessage, outbound)
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func watch(
        request: Request, client: String, hello firstMessage: AsyncStream<String?>, _ outbound: WebSocketOutboundWriter
    ) async throws {
        var since: Int64?
        do {
            since = try FeedWatch.since(request.uri.queryParameters["since"])
        } catch {
            return try await outbound.close(.policyViolation, reason: "since must be a whole number")
        }
        let presented = Authenticator.presentedToken(request.headers)
        if let presented, !auth.acceptsWatcher(presented, client: client) {
            return try await outbound.close(.policyViolation, reason: "invalid token")
        }
        if presented == nil, auth.protectReads {
            guard let hello = await Self.hello(firstMessage) else {
                return try await outbound.close(.policyViolation, reason: "send {\"token\": \"...\"} first")
            }
            guard let token = hello.token, auth.acceptsWatcher(token, client: client) else {
                return try await outbound.close(.policyViolation, reason: "invalid token")
            }
            since = hello.since ?? since
        }
        let start: Int64
        do {
            start = try await feed.join(since: since)
        } catch .full {
            return try await outbound.close(Self.tryAgainLater, reason: "too many watchers; retry shortly")
        } catch .closing {
            return try await outbound.close(.goingAway, reason: "server shutting down; reconnect and resume")
        } catch .unavailable {
            return try await outbound.close(Self.tryAgainLater, reason: "database unavailable; retry shortly")
        } catch .expired {
            return try await outbound.close(
                .policyViolation, reason: "since is no longer kept: re-list, then watch without since")
        } catch .ahead {
            return try await outbound.close(.policyViolation, reason: "since is ahead of the feed")
        }
        defer { feed.leave() }
        var ready = JSONWriter()
        ready.beginObject()
        ready.key("type")
        ready.string("ready")
        ready.key("latest")
        ready.number(Int(start))
        ready.endObject()
        try await outbound.write(.text(String(decoding: ready.bytes, as: UTF8.self)))
        let end = await FeedWatch.follow(
            feed, from: start, transport: "websocket",
            send: { events in
                for event in events { try await outbound.write(.text(String(decoding: event.json, as: UTF8.self))) }
            },
            heartbeat: {})
        switch end {
        case .goingAway: try? await outbound.close(.goingAway, reason: "server shutting down; reconnect and resume")
        case .tooSlow: try? await outbound.close(Self.tryAgainLater, reason: "fell too far behind; reconnect and resume")
        case .expired: try? await outbound.close(.policyViolation, reason: "events no longer kept: re-list")
        case .clientGone: break
        }
    }

    struct Hello {
        var token: String?
        var since: Int64?
    }

    /// The client's first message, `{"token": …, "since": …}`, if it comes in time and parses.
    static func hello(_ firstMessage: AsyncStream<String?>) async -> Hello? {
        let first = try? await withDeadline(helloTimeout) { () -> String? in
            var messages = firstMessage.makeAsyncIterator()
            return await messages.next() ?? nil
        }
        guard let text = first ?? nil, case .object(let object)? = try? JSONValue.parse(Array(text.utf8)) else {
            return nil
        }
        var hello = Hello()
        if case .string(let token)? = object["token"] { hello.token = token }
        if case .number(let number)? = object["since"], number >= 0, number == number.rounded() { hello.since = Int64(number) }
        return hello
    }
}
