import Hummingbird
import NIOCore

/// `GET /console` and `GET /console/{file}`: the web console, three static
/// files compiled into the binary (no CDN, nothing fetched at run time),
/// under a Content-Security-Policy that allows only this origin's script,
/// style and connections.
struct ConsoleHandler {
    static let policy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    static let files: [String: (contentType: String, bytes: [UInt8])] = [
        "index.html": ("text/html; charset=utf-8", PackageResources.index_html),
        "console.js": ("text/javascript; charset=utf-8", PackageResources.console_js),
        "console.css": ("text/css; charset=utf-8", PackageResources.console_css),
    ]

    func page(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.file("index.html")
    }

    func asset(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.file(context.parameters.get("file") ?? "")
    }

    static func file(_ name: String) throws -> Response {
        guard let file = files[name] else { throw Problem.notFound("The console has no file \(name).") }
        var response = Response(
            status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
        response.headers[.contentSecurityPolicy] = policy
        return response
    }
}
