/// The writable part of a user after validation and normalisation:
/// `name` trimmed, `username` trimmed and lower-cased, `email` trimmed.
public struct UserFields: Sendable, Equatable {
    public var name: String
    public var username: String
    public var email: String

    public init(name: String, username: String, email: String) {
        self.name = name
        self.username = username
        self.email = email
    }

    init(_ user: User) {
        self.init(name: user.name, username: user.username, email: user.email)
    }
}

/// One problem with one field of a request, reported in a problem's `errors`.
public struct FieldError: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// A request body that parsed as JSON but does not describe a valid user (422).
public struct ValidationFailed: Error, Sendable {
    public var errors: [FieldError]
}

/// Validation rules for user documents, shared by create, replace and patch.
public enum UserValidation {
    static let writableFields = ["name", "username", "email"]
    static let readOnlyFields = ["id", "created_at", "updated_at"]
    static let nameMaxLength = 200
    static let usernameLength = 3...32
    static let emailMaxLength = 254

    /// Validates a complete document (POST, PUT). `current` is the stored user
    /// for PUT: read-only fields may then be echoed back unchanged, which is what
    /// a client does after GET-modify-PUT.
    public static func validateDocument(_ body: JSONValue, current: User?) throws(ValidationFailed) -> UserFields {
        guard case .object(let object) = body else {
            throw ValidationFailed(errors: [FieldError(field: "body", message: "must be a JSON object, not \(body.typeName)")])
        }
        var errors = checkUnknownAndReadOnly(object, current: current)
        let name = field("name", in: object, errors: &errors, validate: validateName)
        let username = field("username", in: object, errors: &errors, validate: validateUsername)
        let email = field("email", in: object, errors: &errors, validate: validateEmail)
        guard errors.isEmpty, let name, let username, let email else {
            throw ValidationFailed(errors: errors)
        }
        return UserFields(name: name, username: username, email: email)
    }

    /// Applies a JSON merge patch (RFC 7386) to `current`. `null` removes a
    /// member, which is an error here because every writable field is required.
    public static func applyMergePatch(_ patch: JSONValue, to current: User) throws(ValidationFailed) -> UserFields {
        guard case .object(let object) = patch else {
            throw ValidationFailed(errors: [FieldError(field: "body", message: "a merge patch must be a JSON object, not \(patch.typeName)")])
        }
        var errors = checkUnknownAndReadOnly(object, current: current)
        var result = UserFields(current)
        for name in writableFields {
            guard let value = object[name] else { continue }
            if case .null = value {
                errors.append(FieldError(field: name, message: "is required and cannot be removed"))
                continue
            }
            let validated: String?
            switch name {
            case "name": validated = check(name, value, errors: &errors, validate: validateName)
            case "username": validated = check(name, value, errors: &errors, validate: validateUsername)
            default: validated = check(name, value, errors: &errors, validate: validateEmail)
            }
            guard let validated else { continue }
            switch name {
            case "name": result.name = validated
            case "username": result.username = validated
            default: result.email = validated
            }
        }
        guard errors.isEmpty else { throw ValidationFailed(errors: errors) }
        return result
    }

    private static func checkUnknownAndReadOnly(_ object: [String: JSONValue], current: User?) -> [FieldError] {
        var errors: [FieldError] = []
        for key in object.keys.sorted() {
            if writableFields.contains(key) { continue }
            if readOnlyFields.contains(key) {
                if let current, case .string(let given) = object[key], given == readOnlyValue(key, of: current) {
                    continue
                }
                errors.append(
                    FieldError(
                        field: key,
                        message: current == nil
                            ? "is read-only and assigned by the server; omit it"
                            : "is read-only; omit it or send the current value"))
                continue
            }
            errors.append(FieldError(field: key, message: "is not a known field (allowed: name, username, email)"))
        }
        return errors
    }

    private static func readOnlyValue(_ key: String, of user: User) -> String {
        switch key {
        case "id": user.id
        case "created_at": Timestamp.rfc3339(millis: user.createdAt)
        default: Timestamp.rfc3339(millis: user.updatedAt)
        }
    }

    private static func field(
        _ name: String, in object: [String: JSONValue], errors: inout [FieldError],
        validate: (String) -> Result<String, FieldErrorMessage>
    ) -> String? {
        guard let value = object[name], value != .null else {
            errors.append(FieldError(field: name, message: "is required"))
            return nil
        }
        return check(name, value, errors: &errors, validate: validate)
    }

    private static func check(
        _ name: String, _ value: JSONValue, errors: inout [FieldError],
        validate: (String) -> Result<String, FieldErrorMessage>
    ) -> String? {
        guard case .string(let text) = value else {
            errors.append(FieldError(field: name, message: "must be a string, not \(value.typeName)"))
            return nil
        }
        switch validate(text) {
        case .success(let normalized): return normalized
        case .failure(let problem):
            errors.append(FieldError(field: name, message: problem.message))
            return nil
        }
    }

    struct FieldErrorMessage: Error {
        var message: String
    }

    static func validateName(_ raw: String) -> Result<String, FieldErrorMessage> {
        let name = raw.trimmingWhitespace()
        if name.isEmpty { return .failure(.init(message: "must not be empty")) }
        if name.count > nameMaxLength {
            return .failure(.init(message: "must be at most \(nameMaxLength) characters (got \(name.count))"))
        }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return .failure(.init(message: "must not contain control characters such as line breaks or tabs"))
        }
        return .success(name)
    }

    static func validateUsername(_ raw: String) -> Result<String, FieldErrorMessage> {
        let username = raw.trimmingWhitespace().lowercased()
        let allowed = username.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
        guard usernameLength.contains(username.utf8.count), allowed else {
            return .failure(
                .init(message: "must be 3 to 32 characters, each a letter a-z, a digit, '.', '_' or '-'"))
        }
        return .success(username)
    }

    /// A pragmatic address check: one `@`, a local part without spaces or
    /// specials, and a dotted domain of letters, digits and hyphens (IDNs in
    /// their punycode form). It catches typos, not every RFC 5322 curiosity.
    static func validateEmail(_ raw: String) -> Result<String, FieldErrorMessage> {
        let email = raw.trimmingWhitespace()
        let invalid = FieldErrorMessage(message: "must be an email address like name@example.com")
        if email.isEmpty { return .failure(.init(message: "must not be empty")) }
        if email.utf8.count > emailMaxLength {
            return .failure(.init(message: "must be at most \(emailMaxLength) characters"))
        }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .failure(invalid) }
        let local = parts[0].utf8
        let domain = parts[1]
        let forbiddenLocal = Set("()<>[]\\,;:\" ".utf8)
        guard (1...64).contains(local.count),
            local.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !forbiddenLocal.contains($0) }),
            local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."),
            !parts[0].contains("..")
        else { return .failure(invalid) }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, domain.utf8.count <= 253 else { return .failure(invalid) }
        for label in labels {
            let bytes = label.utf8
            guard (1...63).contains(bytes.count),
                bytes.allSatisfy({ c in
                    (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                        || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-")
                }),
                bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-")
            else { return .failure(invalid) }
        }
        guard let tld = labels.last, tld.count >= 2, tld.utf8.contains(where: { !($0 >= 0x30 && $0 <= 0x39) }) else {
            return .failure(invalid)
        }
        return .success(email)
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.unicodeScalars.first, first.properties.isWhitespace {
            scalars = Substring(scalars.unicodeScalars.dropFirst())
        }
        while let last = scalars.unicodeScalars.last, last.properties.isWhitespace {
            scalars = Substring(scalars.unicodeScalars.dropLast())
        }
        return String(scalars)
    }
}
