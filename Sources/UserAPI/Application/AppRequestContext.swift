import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// Per-request state shared by middleware and handlers.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The WebSocket handler a `/users/watch` upgrade hands over to.
    public let webSocket = WebSocketHandlerReference<AppRequestContext>()
    /// The `X-Request-ID` echoed on the response and written to every log line.
    public var requestID: String = ""
    public let remoteAddress: SocketAddress?
    /// What inner middleware learn about the request, for the access log
    /// written by the outermost one (contexts are copied inward, so this is shared by reference).
    let notes = RequestNotes()

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address, for logs and per-client limits.
    var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}

/// Set by `AuthMiddleware`, read by `RequestObservationMiddleware`.
final class RequestNotes: @unchecked Sendable {
    // Written and read by the one task that handles the request.
    var tokenID: String?
}
