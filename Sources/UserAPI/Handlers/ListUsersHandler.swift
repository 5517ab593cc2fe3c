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

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let params = request.uri.queryParameters
        var errors: [FieldError] = []
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

        let rows = try await deps.store.list(
            UserListQuery(limit: limit + 1, after: after, username: username, email: email))
        let page = rows.prefix(limit)
        var w = JSONWriter(capacity: 64 + page.count * 220)
        w.beginArray()
        for user in page { user.writeJSON(into: &w) }
        w.endArray()
        var headers = HTTPFields()
        if rows.count > limit, let last = page.last {
            headers[Self.link] = "<\(Self.nextURL(limit: limit, after: last.id, username: username, email: email))>; rel=\"next\""
        }
        headers[.cacheControl] = "no-cache"
        return Responses.json(w, headers: headers)
    }

    static func nextURL(limit: Int, after: String, username: String?, email: String?) -> String {
        var components = URLComponents()
        components.path = "/users"
        var items = [URLQueryItem(name: "limit", value: String(limit)), URLQueryItem(name: "after", value: after)]
        if let username { items.append(URLQueryItem(name: "username", value: username)) }
        if let email { items.append(URLQueryItem(name: "email", value: email)) }
        components.queryItems = items
        // URLComponents leaves '+' and '@' alone; '+' would read back as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string ?? "/users"
    }
}
