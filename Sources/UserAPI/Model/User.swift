/// A stored user: what a client wrote (`fields`) and what the server keeps.
///
/// `version` starts at 1 and grows by one on every change; the strong ETag is
/// derived from it, so two representations of the same user compare equal
/// exactly when nothing changed in between.
@dynamicMemberLookup
public struct User: Sendable, Equatable {
    public var id: String
    public var fields: UserFields
    /// Milliseconds since the Unix epoch (UTC). Millisecond precision keeps both
    /// backends byte-identical: SQLite stores integers, PostgreSQL timestamptz.
    public var createdAt: Int64
    public var updatedAt: Int64
    public var version: Int64

    public init(id: String, fields: UserFields, createdAt: Int64, updatedAt: Int64, version: Int64) {
        self.id = id
        self.fields = fields
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
    }

    /// A new user with a fresh time-ordered id, at version 1.
    public static func new(_ fields: UserFields, at now: Int64 = Timestamp.nowMillis()) -> User {
        User(id: UserID.make(), fields: fields, createdAt: now, updatedAt: now, version: 1)
    }

    public subscript<T>(dynamicMember keyPath: WritableKeyPath<UserFields, T>) -> T {
        get { fields[keyPath: keyPath] }
        set { fields[keyPath: keyPath] = newValue }
    }

    /// This user with its writable fields replaced: the next version, updated
    /// now (never before the last update). Unchanged fields give back the user as it is.
    public func updated(with fields: UserFields, at now: Int64 = Timestamp.nowMillis()) -> User {
        guard fields != self.fields else { return self }
        return User(id: id, fields: fields, createdAt: createdAt, updatedAt: max(now, updatedAt), version: version + 1)
    }

    /// The case-folded email: the uniqueness key for email addresses.
    public var emailKey: String { Self.emailKey(fields.email) }

    public static func emailKey(_ email: String) -> String { email.lowercased() }

    /// Strong entity tag for this representation (RFC 9110 §8.8.3).
    public var etag: String { "\"v\(version)\"" }

    /// The members the server assigns; a client may echo them back unchanged on PUT.
    static let readOnlyMembers = ["id", "created_at", "updated_at"]

    func readOnlyValue(_ member: String) -> String? {
        switch member {
        case "id": id
        case "created_at": Timestamp.rfc3339(millis: createdAt)
        case "updated_at": Timestamp.rfc3339(millis: updatedAt)
        default: nil
        }
    }

    /// The public JSON representation: `id`, every field of `UserFields.all`
    /// (null when an optional one is unset), `created_at`, `updated_at`.
    /// The internal `version` only shows in the ETag.
    func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.string(id)
        for field in UserFields.all {
            writer.key(escaping: field.name)
            if let value = field.get(fields) { writer.string(value) } else { writer.null() }
        }
        writer.key("created_at")
        writer.rawString { Timestamp.appendRFC3339(millis: createdAt, to: &$0) }
        writer.key("updated_at")
        writer.rawString { Timestamp.appendRFC3339(millis: updatedAt, to: &$0) }
        writer.endObject()
    }
}

/// What a client writes, after validation and normalisation (`name`
/// trimmed, `username` lower-cased).
///
/// Adding a field takes: a property here, its entry in `all`, a migration
/// per dialect (`Schema`), the OpenAPI schema, and tests. Everything else
/// (JSON in and out, validation, merge patch, both stores' columns) follows `all`.
public struct UserFields: Sendable, Equatable {
    public var name = ""
    public var username = ""
    public var email = ""

    public init() {}

    public init(name: String, username: String, email: String) {
        self.name = name
        self.username = username
        self.email = email
    }

    /// Every writable field, in the order JSON shows them. The name is both
    /// the JSON member and the database column.
    static let all: [UserField] = [
        UserField("name", required: \.name, rule: UserValidation.name),
        UserField("username", required: \.username, rule: UserValidation.username),
        UserField("email", required: \.email, rule: UserValidation.email),
    ]
}

/// One writable field of a user: its name, where it lives in `UserFields`,
/// whether it may be absent, and the rule that validates and normalises it.
struct UserField: Sendable {
    enum Storage: Sendable {
        case required(WritableKeyPath<UserFields, String> & Sendable)
        case optional(WritableKeyPath<UserFields, String?> & Sendable)
    }

    let name: String
    let storage: Storage
    /// Returns the normalised value, or throws a message for the client.
    let rule: @Sendable (String) throws(FieldRuleViolation) -> String

    init(
        _ name: String, required keyPath: WritableKeyPath<UserFields, String> & Sendable,
        rule: @escaping @Sendable (String) throws(FieldRuleViolation) -> String
    ) {
        self.name = name
        self.storage = .required(keyPath)
        self.rule = rule
    }

    init(
        _ name: String, optional keyPath: WritableKeyPath<UserFields, String?> & Sendable,
        rule: @escaping @Sendable (String) throws(FieldRuleViolation) -> String
    ) {
        self.name = name
        self.storage = .optional(keyPath)
        self.rule = rule
    }

    var isRequired: Bool {
        if case .required = storage { return true }
        return false
    }

    func get(_ fields: UserFields) -> String? {
        switch storage {
        case .required(let keyPath): fields[keyPath: keyPath]
        case .optional(let keyPath): fields[keyPath: keyPath]
        }
    }

    /// Sets the field; nil clears an optional field (callers never pass nil for a required one).
    func set(_ value: String?, in fields: inout UserFields) {
        switch storage {
        case .required(let keyPath): fields[keyPath: keyPath] = value ?? ""
        case .optional(let keyPath): fields[keyPath: keyPath] = value
        }
    }
}

/// Why a value breaks a field's rule, in words for the client.
struct FieldRuleViolation: Error {
    var message: String
}
