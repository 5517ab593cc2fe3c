import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered as `application/problem+json` (RFC 9457).
///
/// Every error response of the service goes through this type, so clients
/// see one shape: `type`, `title`, `status`, `detail`, and for validation
/// failures an `errors` array naming each field.
public struct Problem: Error, Sendable {
    public var status: HTTPResponse.Status
    /// A stable identifier for the kind of problem, a URI reference under /problems/.
    public var type: String
    public var title: String
    public var detail: String
    public var errors: [FieldError]
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, type: String, title: String, detail: String,
        errors: [FieldError] = [], headers: HTTPFields = [:]
    ) {
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }

    static let contentType = "application/problem+json"

    func response(requestID: String?) -> Response {
        var writer = JSONWriter(capacity: 256)
        writer.beginObject()
        writer.key("type")
        writer.string("/problems/\(type)")
        writer.key("title")
        writer.string(title)
        writer.key("status")
        writer.number(Int(status.code))
        writer.key("detail")
        writer.string(detail)
        if !errors.isEmpty {
            writer.key("errors")
            writer.beginArray()
            for error in errors {
                writer.beginObject()
                writer.key("field")
                writer.string(error.field)
                writer.key("message")
                writer.string(error.message)
                writer.endObject()
            }
            writer.endArray()
        }
        if let requestID {
            writer.key("request_id")
            writer.string(requestID)
        }
        writer.endObject()
        var headers = self.headers
        headers[.contentType] = Self.contentType
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }
}

extension Problem {
    static func badRequest(_ detail: String, errors: [FieldError] = []) -> Problem {
        Problem(.badRequest, type: "bad-request", title: "Bad request", detail: detail, errors: errors)
    }

    static func malformedJSON(_ detail: String) -> Problem {
        Problem(.badRequest, type: "malformed-json", title: "Malformed JSON", detail: detail)
    }

    static func incompleteBody() -> Problem {
        Problem(
            .badRequest, type: "incomplete-body", title: "Incomplete request body",
            detail: "The connection closed before the whole request body arrived.")
    }

    static func validation(_ errors: [FieldError]) -> Problem {
        let fields = errors.map(\.field)
        let unique = fields.enumerated().filter { fields.firstIndex(of: $0.element) == $0.offset }.map(\.element)
        return Problem(
            .unprocessableContent, type: "validation", title: "Invalid user",
            detail: "The request body has invalid fields: " + unique.joined(separator: ", ") + ".", errors: errors)
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, type: "not-found", title: "Not found", detail: detail)
    }

    static func conflict(fields: [String]) -> Problem {
        Problem(
            .conflict, type: "conflict", title: "Already taken",
            detail: "Another user already has this " + fields.joined(separator: " and ") + ".",
            errors: fields.map { FieldError(field: $0, message: "is already taken by another user") })
    }

    static func unauthorized(_ detail: String) -> Problem {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"userapi\""
        return Problem(.unauthorized, type: "unauthorized", title: "Unauthorized", detail: detail, headers: headers)
    }

    static func gone(_ detail: String) -> Problem {
        Problem(.gone, type: "gone", title: "Gone", detail: detail)
    }

    static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, type: "forbidden", title: "Forbidden", detail: detail)
    }

    static func tooManyAttempts(retryAfter: Duration) -> Problem {
        var headers = HTTPFields()
        headers[.retryAfter] = "\(max(1, Int(retryAfter.seconds.rounded(.up))))"
        return Problem(
            .tooManyRequests, type: "too-many-attempts", title: "Too many failed authentications",
            detail: "Too many requests from this address had no valid token; retry after the time in Retry-After.",
            headers: headers)
    }

    static func preconditionFailed(_ detail: String) -> Problem {
        Problem(.preconditionFailed, type: "precondition-failed", title: "Precondition failed", detail: detail)
    }

    static func unsupportedMediaType(_ detail: String, accept: String) -> Problem {
        var headers = HTTPFields()
        if let name = HTTPField.Name("Accept-Patch"), accept.contains("merge-patch") { headers[name] = accept }
        return Problem(
            .unsupportedMediaType, type: "unsupported-media-type", title: "Unsupported media type", detail: detail,
            headers: headers)
    }

    static func contentTooLarge(limit: Int) -> Problem {
        Problem(
            .contentTooLarge, type: "content-too-large", title: "Content too large",
            detail: "The request body exceeds the limit of \(limit) bytes.")
    }

    static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [String]) -> Problem {
        var headers = HTTPFields()
        headers[.allow] = allowed.joined(separator: ", ")
        return Problem(
            .methodNotAllowed, type: "method-not-allowed", title: "Method not allowed",
            detail: "\(method.rawValue) is not supported here; use \(allowed.joined(separator: ", ")).", headers: headers)
    }

    static func unavailable(_ detail: String, retryAfter: Int = 1) -> Problem {
        var headers = HTTPFields()
        headers[.retryAfter] = "\(retryAfter)"
        return Problem(
            .serviceUnavailable, type: "unavailable", title: "Service unavailable", detail: detail, headers: headers)
    }

    static func internalError() -> Problem {
        Problem(
            .internalServerError, type: "internal", title: "Internal server error",
            detail: "The server failed to handle the request; it has been logged with this request id.")
    }
}
