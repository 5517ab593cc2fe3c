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

/// Reading user documents: every rule is per field (`UserFields.all`), and
/// every broken rule is reported, not just the first.
public enum UserValidation {
    /// A complete document (POST, PUT). `current` is the stored user for PUT:
    /// read-only members may then be echoed back unchanged, which is what a
    /// client does after GET-modify-PUT. Absent optional fields are unset.
    public static func validateDocument(_ body: JSONValue, current: User?) throws(ValidationFailed) -> UserFields {
        let object = try members(of: body, what: "the body")
        var errors = unknownAndReadOnly(object, current: current)
        var fields = UserFields()
        for field in UserFields.all {
            let value = object[field.name] ?? .null
            if case .null = value {
                if field.isRequired { errors.append(FieldError(field: field.name, message: "is required")) }
                continue
            }
            if let valid = check(field, value, errors: &errors) { field.set(valid, in: &fields) }
        }
        guard errors.isEmpty else { throw ValidationFailed(errors: errors) }
        return fields
    }

    /// Applies a JSON merge patch (RFC 7386) to `current`: members present
    /// replace fields, `null` unsets an optional field (a required one cannot be removed).
    public static func applyMergePatch(_ patch: JSONValue, to current: User) throws(ValidationFailed) -> UserFields {
        let object = try members(of: patch, what: "a merge patch")
        var errors = unknownAndReadOnly(object, current: current)
        var fields = current.fields
        for field in UserFields.all {
            guard let value = object[field.name] else { continue }
            if case .null = value {
                if field.isRequired {
                    errors.append(FieldError(field: field.name, message: "is required and cannot be removed"))
                } else {
                    field.set(nil, in: &fields)
                }
                continue
            }
            if let valid = check(field, value, errors: &errors) { field.set(valid, in: &fields) }
        }
        guard errors.isEmpty else { throw ValidationFailed(errors: errors) }
        return fields
    }

    private static func members(of value: JSONValue, what: String) throws(ValidationFailed) -> [String: JSONValue] {
        guard case .object(let object) = value else {
            throw ValidationFailed(errors: [
                FieldError(field: "body", message: "\(what) must be a JSON object, not \(value.typeName)")
            ])
        }
        return object
    }

    private static func unknownAndReadOnly(_ object: [String: JSONValue], current: User?) -> [FieldError] {
        var errors: [FieldError] = []
        for key in object.keys.sorted() where !UserFields.all.contains(where: { $0.name == key }) {
            guard User.readOnlyMembers.contains(key) else {
                let allowed = UserFields.all.map(\.name).joined(separator: ", ")
                errors.append(FieldError(field: key, message: "is not a known field (allowed: \(allowed))"))
                continue
            }
            if let current, case .string(let given) = object[key], given == current.readOnlyValue(key) { continue }
            errors.append(
                FieldError(
                    field: key,
                    message: current == nil
                        ? "is read-only and assigned by the server; omit it"
                        : "is read-only; omit it or send the current value"))
        }
        return errors
    }

    private static func check(_ field: UserField, _ value: JSONValue, errors: inout [FieldError]) -> String? {
        guard case .string(let text) = value else {
            errors.append(FieldError(field: field.name, message: "must be a string, not \(value.typeName)"))
            return nil
        }
        do {
            return try field.rule(text)
        } catch {
            errors.append(FieldError(field: field.name, message: error.message))
            return nil
        }
    }

    // MARK: Rules

    static let nameMaxLength = 200
    static let usernameLength = 3...32
    static let emailMaxLength = 254
    static let emailLocalMaxLength = 64

    /// Trimmed, 1–200 code points (as JSON Schema's maxLength counts them), no
    /// control characters, no bidirectional overrides (they make a name display
    /// as something else), and at least one visible character.
    static func name(_ raw: String) throws(FieldRuleViolation) -> String {
        let name = raw.trimmingWhitespace()
        if name.isEmpty { throw FieldRuleViolation(message: "must not be empty") }
        let length = name.unicodeScalars.count
        if length > nameMaxLength {
            throw FieldRuleViolation(message: "must be at most \(nameMaxLength) characters (got \(length))")
        }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw FieldRuleViolation(message: "must not contain control characters such as line breaks or tabs")
        }
        if name.unicodeScalars.contains(where: isBidiControl) {
            throw FieldRuleViolation(message: "must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069)")
        }
        if name.unicodeScalars.allSatisfy(isInvisible) {
            throw FieldRuleViolation(message: "must contain at least one visible character")
        }
        return name
    }

    static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
    }

    /// Format characters (zero-width joiners, marks) and whitespace of any kind.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || scalar.properties.generalCategory == .format
            || scalar.properties.isDefaultIgnorableCodePoint
    }

    /// 3–32 ASCII letters (stored lower-case), digits, `.`, `_`, `-`, at least
    /// one a letter or digit. Checked before lower-casing so look-alikes such
    /// as the Kelvin sign (which lower-cases to "k") cannot slip in.
    static func username(_ raw: String) throws(FieldRuleViolation) -> String {
        let allowed = raw.utf8.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
        guard usernameLength.contains(raw.utf8.count), allowed else {
            throw FieldRuleViolation(message: "must be 3 to 32 characters, each a letter a-z, a digit, '.', '_' or '-'")
        }
        guard raw.utf8.contains(where: isAlphanumeric) else {
            throw FieldRuleViolation(message: "must contain at least one letter or digit")
        }
        return raw.lowercased()
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    /// A pragmatic address check that catches typos, not every RFC 5322
    /// curiosity: dot-separated atoms of printable ASCII before the `@` (at
    /// most 64 characters), a dotted host name after it whose last label is
    /// letters (or an `xn--` IDN label), at most 254 characters in all. The
    /// same rule is the `Email` pattern in openapi.yaml, so clients can
    /// validate before sending.
    static func email(_ email: String) throws(FieldRuleViolation) -> String {
        let invalid = FieldRuleViolation(message: "must be an email address like name@example.com")
        if email.isEmpty { throw FieldRuleViolation(message: "must not be empty") }
        if email.utf8.count > emailMaxLength {
            throw FieldRuleViolation(message: "must be at most \(emailMaxLength) characters")
        }
        let parts = email.utf8.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw invalid }
        if parts[0].count > emailLocalMaxLength {
            throw FieldRuleViolation(message: "must have at most \(emailLocalMaxLength) characters before the @")
        }
        let atomCharacters = Set("!#$%&'*+/=?^_`{|}~-".utf8)
        let atoms = parts[0].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard atoms.allSatisfy({ !$0.isEmpty && $0.allSatisfy { isAlphanumeric($0) || atomCharacters.contains($0) } })
        else { throw invalid }
        let labels = parts[1].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw invalid }
        for label in labels.dropLast() {
            guard let first = label.first, let last = label.last, isAlphanumeric(first), isAlphanumeric(last),
                label.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { throw invalid }
        }
        let tld = labels.last!
        let letters = tld.count >= 2 && tld.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }
        let idn =
            tld.count > 4 && String(decoding: tld.prefix(4), as: UTF8.self).lowercased() == "xn--"
            && tld.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") } && isAlphanumeric(tld.last!)
        guard letters || idn else { throw invalid }
        return email
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
