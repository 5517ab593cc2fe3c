// SwiftNIO's HTTP/1 server pipeline answering every request with the same
// bytes as userapi's `GET /healthz`: no framework, no Swift concurrency, no
// logging. The floor for any server built on SwiftNIO on this machine.
//
// Usage: nio-fixed-200 <port>   (listens on 127.0.0.1, one event loop)
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

final class FixedResponder: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let body = ByteBuffer(string: #"{"status":"ok"}"#)
    static let headers = HTTPHeaders([
        ("Content-Type", "application/json"), ("Content-Length", "\(body.readableBytes)"),
        ("Cache-Control", "no-store"),
    ])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Answer once the whole request (head and any body) has arrived.
        guard case .end = unwrapInboundIn(data) else { return }
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: Self.headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(Self.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]), (1...65535).contains(port) else {
    FileHandle.standardError.write(Data("usage: nio-fixed-200 <port 1-65535>\n".utf8))
    exit(64)  // EX_USAGE
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(FixedResponder())
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
try server.closeFuture.wait()
