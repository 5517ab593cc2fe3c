// The pipeline userapi answers `/healthz` in (`EventLoopFastPath`), without
// userapi: SwiftNIO's HTTP/1 codec, the conversion to swift-http-types and
// Hummingbird's connection-state handler (idle timeout, graceful shutdown),
// then one handler answering on the event loop with the same headers as
// userapi's probe (a fixed `Date` and request id instead of fresh ones) and
// one flush per read. No metrics, no access log. The floor of userapi's
// event-loop answers on this machine.
//
// Usage: nio-httptypes-200 <port>   (listens on 127.0.0.1, one event loop)
import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix

final class FixedResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    static let body = ByteBuffer(string: #"{"status":"ok"}"#)
    static let fields: HTTPFields = {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.readableBytes)
        fields[.cacheControl] = "no-store"
        return fields
    }()
    static let requestID = HTTPField.Name("X-Request-ID")!

    private var unflushed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Answer once the whole request (head and any body) has arrived.
        guard case .end = unwrapInboundIn(data) else { return }
        var fields = Self.fields
        fields.append(HTTPField(name: Self.requestID, value: "0123456789abcdef"))
        fields.append(HTTPField(name: .date, value: "Tue, 01 Dec 2026 06:01:23 GMT"))
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(Self.body)), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        unflushed = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }
}

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]), (1...65535).contains(port) else {
    FileHandle.standardError.write(Data("usage: nio-httptypes-200 <port 1-65535>\n".utf8))
    exit(64)  // EX_USAGE
}
let logger = Logger(label: "nio-httptypes-200")
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: .seconds(60), logger: logger))
            try pipeline.addHandler(FixedResponder())
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
try server.closeFuture.wait()
