import Hummingbird
import NIOCore

/// `GET /openapi.yaml`: the API contract this binary implements, compiled
/// into the binary (SwiftPM `embedInCode`) so there is no file to forget.
struct OpenAPIHandler {
    static var document: [UInt8] { PackageResources.openapi_yaml }

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/yaml", .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: Self.document)))
    }
}
