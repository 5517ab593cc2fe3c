import HTTPTypes
import Hummingbird
import NIOCore

/// Response builders for the JSON bodies the service sends.
enum Responses {
    static func json(_ writer: JSONWriter, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }

    static func user(_ user: User, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        userHeaders(user, into: &headers)
        return json(userBody(user), status: status, headers: headers)
    }

    /// A user's representation.
    static func userBody(_ user: User) -> JSONWriter {
        var writer = JSONWriter(capacity: 256)
        user.writeJSON(into: &writer)
        return writer
    }

    /// The headers that go with a user's representation, also on a 304.
    static func userHeaders(_ user: User, into headers: inout HTTPFields) {
        headers[.eTag] = user.etag
        headers[.cacheControl] = "no-store"
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8")
        -> Response
    {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
