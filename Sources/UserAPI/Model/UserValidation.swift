/// The writable part of a user after validation and normalisation:
/// `name` trimmed, `username` lower-cased.
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
            throw ValidationFailed(errors: [
                FieldError(field: "body", message: "a merge patch must be a JSON object, not \(patch.typeName)")
            ])
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
        // Unicode code points, as JSON Schema's maxLength counts them.
        let length = name.unicodeScalars.count
        if length > nameMaxLength {
            return .failure(.init(message: "must be at most \(nameMaxLength) characters (got \(length))"))
        }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return .failure(.init(message: "must not contain control characters such as line breaks or tabs"))
        }
        return .success(name)
    }

    /// ASCII letters (stored lower-case), digits, `.`, `_`, `-`. Checked before
    /// lower-casing so look-alikes such as the Kelvin sign (which lower-cases
    /// to "k") cannot slip in.
    static func validateUsername(_ raw: String) -> Result<String, FieldErrorMessage> {
        let allowed = raw.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
        guard usernameLength.contains(raw.utf8.count), allowed else {
            return .failure(
                .init(message: "must be 3 to 32 characters, each a letter a-z, a digit, '.', '_' or '-'"))
        }
        return .success(raw.lowercased())
    }

    /// A pragmatic address check that catches typos, not every RFC 5322
    /// curiosity: dot-separated atoms of printable ASCII before the `@`, a
    /// dotted host name after it whose last label is letters (or an `xn--`
    /// IDN label), at most 254 characters. The same rule is the `Email`
    /// pattern in openapi.yaml, so clients can validate before sending.
    static func validateEmail(_ email: String) -> Result<String, FieldErrorMessage> {
        let invalid = FieldErrorMessage(message: "must be an email address like name@example.com")
        if email.isEmpty { return .failure(.init(message: "must not be empty")) }
        if email.utf8.count > emailMaxLength {
            return .failure(.init(message: "must be at most \(emailMaxLength) characters"))
        }
        let parts = email.utf8.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .failure(invalid) }
        let atomCharacters = Set("!#$%&'*+/=?^_`{|}~-".utf8)
        func isAlphanumeric(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
        }
        let atoms = parts[0].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard atoms.allSatisfy({ !$0.isEmpty && $0.allSatisfy { isAlphanumeric($0) || atomCharacters.contains($0) } })
        else { return .failure(invalid) }
        let labels = parts[1].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return .failure(invalid) }
        for label in labels.dropLast() {
            guard let first = label.first, let last = label.last, isAlphanumeric(first), isAlphanumeric(last),
                label.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { return .failure(invalid) }
        }
        let tld = labels.last!
        let letters = tld.count >= 2 && tld.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }
        let idn =
            tld.count > 4 && String(decoding: tld.prefix(4), as: UTF8.self).lowercased() == "xn--"
            && tld.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") } && isAlphanumeric(tld.last!)
        guard letters || idn else { return .failure(invalid) }
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
