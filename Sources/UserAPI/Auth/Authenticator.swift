import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// Decides whether a request's token allows what it asks for, and keeps
/// the bookkeeping around it: failures are counted, logged with the
/// client's address (never the token), and a client that fails too often
/// is refused for the rest of the minute.
final class Authenticator: Sendable {
    let tokens: TokenStore
    let protectReads: Bool
    private let limiter: FailureLimiter
    private let metrics: AppMetrics?

    static let xAuthToken = HTTPField.Name("X-Auth-Token")!

    init(tokens: TokenStore, protectReads: Bool, failuresPerMinute: Int, metrics: AppMetrics?) {
        self.tokens = tokens
        self.protectReads = protectReads
        self.limiter = FailureLimiter(limit: failuresPerMinute, window: .seconds(60))
        self.metrics = metrics
    }

    /// Throws the problem to answer unless the request may go on; records the token's id in `context`.
    func authorize(_ request: Request, context: AppRequestContext) throws {
        let isRead = request.method == .get || request.method == .head
        if isRead && !protectReads { return }
        let client = context.clientAddress
        if let wait = limiter.blocked(client) {
            metrics?.authFailure(reason: "limited")
            throw Problem.tooManyAttempts(retryAfter: wait)
        }
        let accepted = tokens.tokens
        if accepted.isEmpty {
            throw Problem.unauthorized(
                "No API token is configured on this server, so \(isRead ? "reads" : "writes") are refused. "
                    + "Start it with AUTH_TOKENS=<token> (for example AUTH_TOKENS=$(openssl rand -hex 24)) "
                    + "or point auth.tokens_file at a file of tokens, then send Authorization: Bearer <token>.")
        }
        guard let presented = Self.presentedToken(request.headers) else {
            fail(context, reason: "missing")
            throw Problem.unauthorized(
                "This request needs an API token: send Authorization: Bearer <token> or X-Auth-Token: <token>.")
        }
        guard let access = accepted.access(for: presented) else {
            fail(context, reason: "invalid")
            throw Problem.unauthorized("The API token is not valid.")
        }
        context.notes.tokenID = TokenSet.id(of: presented)
        if !isRead, access == .readOnly {
            metrics?.authFailure(reason: "read_only")
            throw Problem.forbidden("This token is read-only; writes need a read-write token.")
        }
    }

    /// A token for the feed's WebSocket, which authenticates outside the
    /// router: counted and limited like the router's failures.
    func acceptsWatcher(_ token: some StringProtocol, client: String) -> Bool {
        if limiter.blocked(client) != nil {
            metrics?.authFailure(reason: "limited")
            return false
        }
        guard tokens.tokens.accepts(token) else {
            metrics?.authFailure(reason: "invalid")
            limiter.recordFailure(client)
            return false
        }
        return true
    }

    /// Whether to show details (build, instance, checks) on the open routes:
    /// always when reads are public, else only to a valid token.
    func showsDetails(_ request: Request) -> Bool {
        guard protectReads else { return true }
        guard let presented = Self.presentedToken(request.headers) else { return false }
        return tokens.tokens.accepts(presented)
    }

    private func fail(_ context: AppRequestContext, reason: String) {
        metrics?.authFailure(reason: reason)
        limiter.recordFailure(context.clientAddress)
        context.logger.notice("auth: \(reason) token", metadata: ["client": .string(context.clientAddress)])
    }

    static func presentedToken(_ headers: HTTPFields) -> Substring? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = parts[1].drop(while: { $0 == " " })
                return token.isEmpty ? nil : token
            }
            return nil
        }
        if let token = headers[xAuthToken], !token.isEmpty { return token[...] }
        return nil
    }
}

/// Failed authentications per client address in a fixed window; a client at
/// the limit is refused until its window ends. At most `capacity` addresses
/// are tracked: the oldest windows go first.
final class FailureLimiter: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var failures: Int
    }

    let limit: Int
    let window: Duration
    let capacity: Int
    private let windows = Mutex<[String: Window]>([:])

    init(limit: Int, window: Duration, capacity: Int = 10_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// How long `client` must wait, or nil when it may try.
    func blocked(_ client: String, now: ContinuousClock.Instant = .now) -> Duration? {
        guard limit > 0 else { return nil }
        return windows.withLock { windows in
            guard let w = windows[client], now - w.start < window, w.failures >= limit else { return nil }
            return window - (now - w.start)
        }
    }

    func recordFailure(_ client: String, now: ContinuousClock.Instant = .now) {
        guard limit > 0 else { return }
        windows.withLock { windows in
            if var w = windows[client], now - w.start < window {
                w.failures += 1
                windows[client] = w
                return
            }
            if windows.count >= capacity {
                windows = windows.filter { now - $0.value.start < window }
                if windows.count >= capacity, let oldest = windows.min(by: { $0.value.start < $1.value.start }) {
                    windows[oldest.key] = nil
                }
            }
            windows[client] = Window(start: now, failures: 1)
        }
    }

    var tracked: Int { windows.withLock { $0.count } }
}
