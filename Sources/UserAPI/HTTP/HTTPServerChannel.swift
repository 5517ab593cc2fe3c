// Hand-written: Hummingbird's HTTP1Channel adds extra handlers only after its HTTP-types codec, where the request's raw bytes and HTTP version are gone.
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1 connection set-up with the connection rules of
/// `ConnectionRules.swift` in front of it: a deadline for each request, a
/// limit on connections per client, HTTP/1.0 and early-error connection
/// closing, and refusal of requests whose framing cannot be trusted. Every
/// request still goes to Hummingbird's router; these handlers know nothing
/// about users.
struct HTTPServerChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let idleTimeout: Duration
    let limits: RequestLimits
    let clients: ConnectionsPerClient
    let metrics: AppMetrics?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard clients.admit(channel) else {
            metrics?.connectionClosed(reason: "per_client_limit")
            return channel.close().flatMapThrowing { throw ChannelError.ioOnClosedChannel }
        }
        return channel.eventLoop.makeCompletedFuture {
            let decoder = HTTP1Channel.Configuration.DecoderConfiguration()
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = decoder.maxHeaderFieldSize
            decoderLimits.maxHeaderListSize = decoder.maxHeaderListSize
            decoderLimits.maxHeaderFieldCount = decoder.maxHeaderFieldCount
            let pipeline = channel.pipeline.syncOperations
            let deadline = RequestDeadlineHandler(limits: limits, metrics: metrics)
            try pipeline.addHandler(deadline)
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // NIOAsyncChannel orders pipelined requests
                withErrorHandling: false,  // Hummingbird's request loop answers parse errors
                withOutboundHeaderValidation: false,  // swift-http-types validates fields
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: decoderLimits
            )
            try pipeline.addHandler(HTTP1RequestRules(deadline: deadline, metrics: metrics))
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
            return try NIOAsyncChannel(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}
