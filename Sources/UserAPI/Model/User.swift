import Foundation

/// A stored user, as every backend returns it.
///
/// `version` starts at 1 and grows by one on every change; the strong ETag is
/// derived from it, so two representations of the same user compare equal
/// exactly when nothing changed in between.
public struct User: Sendable, Equatable {
    public var id: String
    public var name: String
    public var username: String
    public var email: String
    /// Milliseconds since the Unix epoch (UTC). Millisecond precision keeps both
    /// backends byte-identical: SQLite stores integers, PostgreSQL timestamptz.
    public var createdAt: Int64
    public var updatedAt: Int64
    public var version: Int64

    public init(
        id: String, name: String, username: String, email: String,
        createdAt: Int64, updatedAt: Int64, version: Int64
    ) {
        self.id = id
        self.name = name
        self.username = username
        self.email = email
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
    }

    /// The case-folded email: the uniqueness key for email addresses.
    public var emailKey: String { Self.emailKey(email) }

    public static func emailKey(_ email: String) -> String { email.lowercased() }

    /// Strong entity tag for this representation (RFC 9110 §8.8.3).
    public var etag: String { "\"v\(version)\"" }
}

extension User {
    /// Writes the public JSON representation: `id`, `name`, `username`, `email`,
    /// `created_at`, `updated_at`. The internal `version` only shows in the ETag.
    func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.string(id)
        writer.key("name")
        writer.string(name)
        writer.key("username")
        writer.string(username)
        writer.key("email")
        writer.string(email)
        writer.key("created_at")
        writer.rawString { Timestamp.appendRFC3339(millis: createdAt, to: &$0) }
        writer.key("updated_at")
        writer.rawString { Timestamp.appendRFC3339(millis: updatedAt, to: &$0) }
        writer.endObject()
    }
}
