import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Which requests `EventLoopFastPath` answers, and its answers: each built by
/// the same functions as the router's handler for that route.
extension EventLoopFastPath {
    // MARK: Which requests qualify

    /// Which answer a request's head qualifies for, if any.
    func answerable(_ request: HTTPRequest) -> Answer? {
        guard request.method == .get || request.method == .post, let path = request.path else { return nil }
        // `keep-alive` is what HTTP/1.1 does anyway (many clients send it); other options are the router's.
        if let connection = request.headerFields[.connection], !Self.isPlain(connection) { return nil }
        if request.method == .post {
            guard path == Shared.usersRoute, let creates = shared.creates else { return nil }
            return creatable(request, creates) ? .create : nil
        }
        if path == Shared.healthRoute {
            if shared.tracing, request.headerFields[Shared.traceparent] != nil { return nil }
            return .health
        }
        if path.hasPrefix(Shared.userPathPrefix) {
            guard let users = shared.users, let id = UserID.canonical(path.dropFirst(Shared.userPathPrefix.count)),
                Self.mayRead(request, tokens: users.tokens, protectReads: users.protectReads)
            else { return nil }
            return .user(id: id)
        }
        guard path.hasPrefix(Shared.usersRoute), let lists = shared.lists else { return nil }
        let rest = path.dropFirst(Shared.usersRoute.count)
        let page: (limit: Int, after: String?)?
        if rest.isEmpty {
            page = (ListUsersHandler.defaultLimit, nil)
        } else if rest.first == "?" {
            page = ListUsersHandler.plainQuery(rest.dropFirst())
        } else {
            page = nil
        }
        guard let page, Self.mayRead(request, tokens: lists.tokens, protectReads: lists.protectReads) else { return nil }
        return .list(limit: page.limit, after: page.after)
    }

    private static func isPlain(_ connection: String) -> Bool {
        connection.caseInsensitiveEquals("close") || connection.caseInsensitiveEquals("keep-alive")
    }

    private static func wantsClose(_ request: HTTPRequest) -> Bool {
        request.headerFields[.connection]?.caseInsensitiveEquals("close") ?? false
    }

    /// With protected reads, only a valid token reads here; the router answers the rest with 401.
    private static func mayRead(_ request: HTTPRequest, tokens: TokenStore, protectReads: Bool) -> Bool {
        guard protectReads else { return true }
        guard let token = AuthMiddleware.presentedToken(request.headerFields) else { return false }
        return tokens.tokens.accepts(token)
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

    func answerHealth(_ held: Held, context: ChannelHandlerContext) {
        shared.metrics?.requestStarted()
        answer(
            held, route: Shared.healthRoute, routeIndex: Shared.healthRouteIndex, status: .ok, fields: Shared.healthFields,
            body: Shared.healthBody, context: context)
    }

    /// Answers as `GetUserHandler` would; false when the user is not in memory.
    func answerUser(_ held: Held, id: String, context: ChannelHandlerContext) -> Bool {
        guard let users = shared.users, let user = users.store.cachedUser(id: id) else { return false }
        shared.metrics?.requestStarted()
        var fields = HTTPFields()
        Responses.userHeaders(user, into: &fields)
        if EntityTags.noneMatchSatisfiedByCurrent(held.request.headerFields[.ifNoneMatch], current: user) {
            answer(
                held, route: Shared.userRoute, routeIndex: Shared.userRouteIndex, status: .notModified, fields: fields,
                body: ByteBuffer(), context: context)
        } else {
            let body = Responses.userBody(user)
            answer(
                held, route: Shared.userRoute, routeIndex: Shared.userRouteIndex, status: .ok, fields: fields,
                body: context.channel.allocator.buffer(bytes: body.bytes), json: true, context: context)
        }
        return true
    }

    /// Reads a list page as `ListUsersHandler` would; a full `http.max_in_flight`
    /// or a failed read sends the request to the router, which sheds or retries.
    ///
    /// The page is rendered where it was read, on the reader's thread: the
    /// event loop only writes it. Rendered on the loop, 1000 connections
    /// listing at once (the overload drill) kept the loops busy enough that
    /// accepting a liveness probe's connection took 3-5 s instead of ~1.5 s.
    func startList(_ held: Held, limit: Int, after: String?, context: ChannelHandlerContext) {
        guard let lists = shared.lists, lists.inFlight.enter() else {
            return routeWhole(held, context: context)
        }
        shared.metrics?.requestStarted()
        let query = UserListQuery(limit: limit + 1, after: after)
        let allocator = context.channel.allocator
        whileStorageWorks(context: context) { completion in
            lists.store.list(query) { result in
                completion(
                    result.map { rows in
                        let page = ListUsersHandler.page(rows, limit: limit, username: nil, email: nil)
                        return RenderedPage(headers: page.headers, body: allocator.buffer(bytes: page.body.bytes))
                    })
            }
        } finish: { handler, context, result in
            lists.inFlight.leave()
            handler.finishList(held, result, context: context)
        }
    }

    struct RenderedPage: Sendable {
        let headers: HTTPFields
        let body: ByteBuffer
    }

    private func finishList(_ held: Held, _ result: Result<RenderedPage, any Error>, context: ChannelHandlerContext) {
        switch result {
        case .success(let page):
            answer(
                held, route: Shared.usersRoute, routeIndex: Shared.usersRouteIndex, status: .ok, fields: page.headers,
                body: page.body, json: true, context: context)
        case .failure:
            routeAfterFailure(held, context: context)
        }
    }

    /// Validates a held create and queues its insert; anything invalid goes to
    /// the router, which answers with the problem naming the fields.
    func startCreate(_ held: Held, context: ChannelHandlerContext) {
        let user: User
        do {
            guard let body = held.body else { throw StoreError.notFound }
            let fields = try UserValidation.validateDocument(try JSONValue.parse(body.readableBytesView), current: nil)
            let now = Timestamp.nowMillis()
            user = User(
                id: UserID.make(), name: fields.name, username: fields.username, email: fields.email,
                createdAt: now, updatedAt: now, version: 1)
        } catch {
            return routeWhole(held, context: context)
        }
        guard let creates = shared.creates else { return routeWhole(held, context: context) }
        shared.metrics?.requestStarted()
        whileStorageWorks(context: context) { completion in
            creates.store.create(user, completion: completion)
        } finish: { handler, context, result in
            handler.finishCreate(held, result, context: context)
        }
    }

    /// Runs on the event loop once the insert is durable or has failed.
    private func finishCreate(_ held: Held, _ result: Result<User, any Error>, context: ChannelHandlerContext) {
        switch result {
        case .success(let user):
            // Durable now, whether or not the client is still there to hear it (as on the router's path).
            var fields = HTTPFields()
            fields[.location] = "/users/\(user.id)"
            Responses.userHeaders(user, into: &fields)
            answer(
                held, route: Shared.usersRoute, routeIndex: Shared.usersRouteIndex, status: .created, fields: fields,
                body: context.channel.allocator.buffer(bytes: Responses.userBody(user).bytes), json: true,
                context: context)
        case .failure:
            // Conflict, overload, a closed store: the router tries again and answers as it always does.
            routeAfterFailure(held, context: context)
        }
    }

    private func routeAfterFailure(_ held: Held, context: ChannelHandlerContext) {
        shared.metrics?.requestAbandoned()
        if context.channel.isActive {
            routeWhole(held, context: context)
        }
    }

    /// Writes an answer (the caller counted the request as started) and
    /// records it: HTTP metrics and the access-log line, as the router would.
    private func answer(
        _ held: Held, route: String, routeIndex: Int, status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer,
        json: Bool = false, context: ChannelHandlerContext
    ) {
        let requestID =
            RequestObservationMiddleware.saneRequestID(held.request.headerFields[RequestObservationMiddleware.requestIDHeader])
            ?? RequestObservationMiddleware.newRequestID()
        var fields = fields
        if json { fields[.contentType] = "application/json" }
        // `contains` and `append`, not the subscript: reading a present field
        // through the subscript joins its values into a new string, and the
        // setter first searches for entries to replace (measured ~4 % of a
        // `/healthz` answer). The handlers' header sets never carry these.
        if !fields.contains(.contentLength) {
            fields.append(HTTPField(name: .contentLength, value: String(body.readableBytes)))
        }
        fields.append(HTTPField(name: RequestObservationMiddleware.requestIDHeader, value: requestID))
        fields.append(HTTPField(name: .date, value: held.date))
        let close = Self.wantsClose(held.request)
        if close { fields.append(HTTPField(name: .connection, value: "close")) }

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

        let duration = ContinuousClock.now - held.start
        shared.metrics?.requestFinished(
            method: held.request.method, route: route, routeIndex: routeIndex, status: Int(status.code), duration: duration)
        if shared.accessLog.enabled {
            shared.accessLog.record(
                method: held.request.method.rawValue, route: route, path: Self.pathWithoutQuery(held.request.path ?? ""),
                status: Int(status.code), duration: duration, bytes: body.readableBytes, requestID: requestID)
        }
    }
}

extension EventLoopFastPath {
    /// The request target up to its query, as the router's access-log line
    /// shows it (`uri.path`); searched as bytes, not as characters.
    static func pathWithoutQuery(_ target: String) -> String {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return target }
        return String(target[..<mark])
    }
}

extension String {
    /// ASCII case-insensitive equality, without building a lower-cased copy.
    fileprivate func caseInsensitiveEquals(_ other: StaticString) -> Bool {
        let a = utf8
        guard a.count == other.utf8CodeUnitCount else { return false }
        var i = 0
        for byte in a {
            let b = other.utf8Start[i]
            if byte != b, byte | 0x20 != b | 0x20 || !(0x61...0x7A).contains(b | 0x20) { return false }
            i += 1
        }
        return true
    }
}
