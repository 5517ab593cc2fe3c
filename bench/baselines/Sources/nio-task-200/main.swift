// `nio-fixed-200` plus one Swift task per request: the handler starts a task
// once a request is complete, the task produces the answer, and the write hops
// back to the channel's event loop. Nothing else differs, so the gap between
// the two is what handing each request to Swift concurrency costs: the floor
// for any async request handler on SwiftNIO, whatever framework sits on top.
//
// Not a server to copy: answers to pipelined requests could overtake each
// other (wrk does not pipeline), and nothing bounds the number of tasks.
//
// Usage: nio-task-200 <port>   (listens on 127.0.0.1, one event loop)
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Kept out of line so the task really suspends into an async function.
@inline(never)
func answer() async -> ByteBuffer { TaskPerRequestResponder.body }

final class TaskPerRequestResponder: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let body = ByteBuffer(string: #"{"status":"ok"}"#)
    static let headers = HTTPHeaders([
        ("Content-Type", "application/json"), ("Content-Length", "\(body.readableBytes)"),
        ("Cache-Control", "no-store"),
    ])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let channel = context.channel
        Task {
            let body = await answer()
            channel.eventLoop.execute {
                let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: Self.headers)
                channel.write(HTTPServerResponsePart.head(head), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            }
        }
    }
}

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]), (1...65535).contains(port) else {
    FileHandle.standardError.write(Data("usage: nio-task-200 <port 1-65535>\n".utf8))
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
            try channel.pipeline.syncOperations.addHandler(TaskPerRequestResponder())
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
try server.closeFuture.wait()
