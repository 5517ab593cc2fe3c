// Hand-written: hummingbird-websocket's channel adds extra handlers only after its HTTP-types codec, where the request's raw bytes and HTTP version are gone.
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// hummingbird-websocket's HTTP/1 channel (Hummingbird's HTTP/1 set-up
/// plus the WebSocket upgrade of `/users/watch`) with the connection rules
/// of `ConnectionRules.swift` in front of it: a deadline for each request, a
/// limit on connections per client, HTTP/1.0 and early-error connection
/// closing, and refusal of requests whose framing cannot be trusted. Every
/// request still goes to Hummingbird's router; these handlers know nothing
/// about users.
struct HTTPServerChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value

    let http: HTTP1WebSocketUpgradeChannel
    let limits: RequestLimits
    let clients: ConnectionsPerClient
    let metrics: AppMetrics?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard clients.admit(channel) else {
            metrics?.connectionClosed(reason: "per_client_limit")
            return channel.close().flatMapThrowing { throw ChannelError.ioOnClosedChannel }
        }
        let deadline = RequestDeadlineHandler(limits: limits, metrics: metrics)
        do {
            try channel.pipeline.syncOperations.addHandler(deadline, position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            // Right after NIO's HTTP/1 decoder, before the upgrade handler: every request passes it.
            let pipeline = channel.pipeline.syncOperations
            let upgrade = try pipeline.handler(
                type: NIOTypedHTTPServerUpgradeHandler<HTTP1WebSocketUpgradeChannel.UpgradeResult>.self)
            try pipeline.addHandler(HTTP1RequestRules(deadline: deadline, metrics: metrics), position: .before(upgrade))
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await http.handle(value: value, logger: logger)
    }
}
