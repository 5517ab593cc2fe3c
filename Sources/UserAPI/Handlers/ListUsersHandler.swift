import Foundation
import HTTPTypes
import Hummingbird

/// `GET /users`: a bare JSON array in creation order, `limit` at a time.
/// More rows → a `Link: <…>; rel="next"` header whose `after` cursor is the
/// last id of this page (keyset pagination: stable under inserts, no OFFSET scans).
struct ListUsersHandler {
    let deps: AppDependencies
    static let defaultLimit = 50
    static let maxLimit = 500
    static let link = HTTPField.Name("Link")!
    static let parameters = ["limit", "after", "username", "email", "q"]
    static let maxSearchLength = 100

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let params = request.uri.queryParameters
        var errors: [FieldError] = []
        for (key, _) in params where !Self.parameters.contains(String(key)) {
            errors.append(
                FieldError(
                    field: String(key),
                    message: "is not a query parameter of this route (allowed: \(Self.parameters.joined(separator: ", ")))"))
        }
        var limit = Self.defaultLimit
        if let raw = params["limit"] {
            if let value = Int(raw), (1...Self.maxLimit).contains(value) {
                limit = value
            } else {
                errors.append(FieldError(field: "limit", message: "must be a whole number from 1 to \(Self.maxLimit)"))
            }
        }
        var after: String?
        if let raw = params["after"] {
            if let id = UserID.canonical(raw) {
                after = id
            } else {
                errors.append(FieldError(field: "after", message: "must be a user id from a previous page"))
            }
        }
        guard errors.isEmpty else {
            throw Problem.badRequest("Invalid query parameters: \(errors.map(\.field).joined(separator: ", ")).", errors: errors)
        }
        let username = params["username"].map { String($0).trimmingWhitespace().lowercased() }
        let email = params["email"].map { String($0).trimmingWhitespace() }
        let search = params["q"].map { String($0).trimmingWhitespace().lowercased() }
        if let search, search.isEmpty || search.unicodeScalars.count > Self.maxSearchLength {
            throw Problem.badRequest(
                "Invalid query parameters: q.",
                errors: [
                    FieldError(
                        field: "q", message: "must be 1 to \(Self.maxSearchLength) characters besides leading and trailing spaces"
                    )
                ])
        }

        // No stored name, username or email holds a NUL (validation refuses control
        // characters), and PostgreSQL text cannot carry one: such a filter matches nobody.
        let matchesNobody = [username, email, search].contains { $0?.unicodeScalars.contains("\u{0}") == true }
        let rows =
            matchesNobody
            ? []
            : try await deps.store.list(
                UserListQuery(limit: limit + 1, after: after, username: username, email: email, search: search))
        let page = Self.page(rows, limit: limit, filters: [("username", username), ("email", email), ("q", search)])
        return Responses.json(page.body, headers: page.headers)
    }

    /// A page from the rows of a query for `limit + 1` users: the JSON array of
    /// the first `limit`, and its headers (`Link` when there are more, cache
    /// policy; not the content type).
    static func page(_ rows: [User], limit: Int, filters: [(String, String?)]) -> (body: JSONWriter, headers: HTTPFields) {
        let page = rows.prefix(limit)
        var w = JSONWriter(capacity: 64 + page.count * 220)
        w.beginArray()
        for user in page { user.writeJSON(into: &w) }
        w.endArray()
        var headers = HTTPFields()
        if rows.count > limit, let last = page.last {
            headers[Self.link] = "<\(Self.nextURL(limit: limit, after: last.id, filters: filters))>; rel=\"next\""
        }
        headers[.cacheControl] = "no-store"
        return (w, headers)
    }

    static func nextURL(limit: Int, after: String, filters: [(String, String?)]) -> String {
        var url = "/users?limit=\(limit)&after=\(after)"
        for case (let name, let value?) in filters { url += "&\(name)=" + percentEncoded(value) }
        return url
    }

    /// RFC 3986 query-value encoding: unreserved characters and `@` stay, the
    /// rest (notably `+`, which would read back as a space, and `&`, `=`, `#`) is escaped.
    static func percentEncoded(_ value: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "@"):
                out.append(byte)
            default:
                out.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
