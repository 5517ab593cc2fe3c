// A Hummingbird 2 application with one route answering like userapi's
// `GET /healthz`, default configuration, no middleware, logging at warning:
// what the framework's request path costs before any service code runs.
//
// Usage: hummingbird-fixed-200 <port>   (listens on 127.0.0.1)
import Foundation
import Hummingbird
import Logging

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]), (1...65535).contains(port) else {
    FileHandle.standardError.write(Data("usage: hummingbird-fixed-200 <port 1-65535>\n".utf8))
    exit(64)  // EX_USAGE
}
let body = ByteBuffer(string: #"{"status":"ok"}"#)
let router = Router()
router.get("/healthz") { _, _ -> Response in
    Response(
        status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
        body: .init(byteBuffer: body))
}
var logger = Logger(label: "hummingbird-fixed-200")
logger.logLevel = .warning
let app = Application(
    router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
try await app.runService()
