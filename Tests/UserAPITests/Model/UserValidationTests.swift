import Testing

@testable import UserAPI

@Suite("User validation")
struct UserValidationTests {
    func doc(_ fields: [String: JSONValue]) -> JSONValue { .object(fields) }

    func valid(
        name: JSONValue = .string("Ada Lovelace"), username: JSONValue = .string("ada"),
        email: JSONValue = .string("ada@example.com")
    ) -> [String: JSONValue] {
        ["name": name, "username": username, "email": email]
    }

    func errors(_ body: JSONValue, current: User? = nil) -> [FieldError] {
        do {
            _ = try UserValidation.validateDocument(body, current: current)
            return []
        } catch {
            return error.errors
        }
    }

    @Test("a valid document is normalised: name trimmed, username lower-cased, email kept as given")
    func normalises() throws {
        let fields = try UserValidation.validateDocument(
            doc(valid(name: .string("  Ada  "), username: .string("Ada.Lovelace_1"), email: .string("Ada@Example.COM"))),
            current: nil)
        #expect(fields == UserFields(name: "Ada", username: "ada.lovelace_1", email: "Ada@Example.COM"))
    }

    @Test("every missing field is named")
    func missing() {
        #expect(errors(doc([:])).map(\.field) == ["name", "username", "email"])
        #expect(errors(doc(["name": .null, "username": .string("abc"), "email": .string("a@b.co")])).map(\.field) == ["name"])
    }

    @Test("wrong JSON types are named with the type received")
    func wrongTypes() {
        let e = errors(doc(valid(name: .number(1), username: .bool(true), email: .array([]))))
        #expect(e.map(\.field) == ["name", "username", "email"])
        #expect(e[0].message.contains("not number"))
        #expect(e[1].message.contains("not boolean"))
        #expect(e[2].message.contains("not array"))
    }

    @Test("unknown fields are rejected by name; read-only ones say so")
    func unknownAndReadOnly() {
        var fields = valid()
        fields["age"] = .number(3)
        fields["id"] = .string("x")
        let e = errors(doc(fields))
        #expect(e.map(\.field) == ["age", "id"])
        #expect(e[1].message.contains("read-only"))
    }

    @Test("a body that is not an object is refused")
    func notObject() {
        #expect(errors(.array([])).map(\.field) == ["body"])
        #expect(errors(.string("x")).map(\.field) == ["body"])
    }

    @Test(
        "name length is 1 to 200 characters after trimming, without control characters",
        arguments: [
            ("", false), ("   ", false), ("A", true), (String(repeating: "é", count: 200), true),
            (String(repeating: "x", count: 201), false), ("Ada\nLovelace", false), ("Ada\tL", false),
            (String(repeating: "e\u{301}", count: 101), false), ("\u{85}Ada\u{85}", true),
            ("👩🏽‍💻 Grace", true), ("  José  ", true),
        ])
    func nameRules(name: String, ok: Bool) {
        #expect(errors(doc(valid(name: .string(name)))).isEmpty == ok)
    }

    @Test(
        "username is 3 to 32 of a-z 0-9 . _ -",
        arguments: [
            ("abc", true), ("ab", false), (String(repeating: "a", count: 32), true),
            (String(repeating: "a", count: 33), false), ("a.b_c-d9", true), ("ABC", true), ("a b", false),
            ("ab@", false), ("élan", false), ("a+b", false), (" abc", false), ("\u{212A}elvin", false),
        ])
    func usernameRules(username: String, ok: Bool) {
        #expect(errors(doc(valid(username: .string(username)))).isEmpty == ok)
    }

    @Test(
        "email gets a pragmatic syntax check",
        arguments: [
            ("a@b.co", true), ("first.last+tag@sub.example.org", true), ("x@xn--bcher-kva.example", true),
            ("x@example.xn--p1ai", true), ("x@example.xn--", false), (" a@b.co", false), ("a@b.co ", false),
            ("a@b-.co", false), ("a@1.2.3.4", false), ("a@[127.0.0.1]", false), ("\"quoted\"@example.com", false),
            ("plainaddress", false), ("@example.com", false), ("a@", false), ("a@b", false), ("a@b.c", false),
            ("a b@example.com", false), ("a@@example.com", false), ("a@-example.com", false), ("a@example..com", false),
            (".a@example.com", false), ("a..b@example.com", false), ("a@example.123", false),
            (String(repeating: "a", count: 64) + "@example.com", true),
            (String(repeating: "a", count: 65) + "@example.com", false),
            ("a@" + String(repeating: "b", count: 250) + ".com", false),
        ])
    func emailRules(email: String, ok: Bool) {
        #expect(errors(doc(valid(email: .string(email)))).isEmpty == ok, "\(email)")
    }

    @Test("read-only fields may be echoed unchanged on replace, not altered")
    func readOnlyEcho() {
        let current = User(
            id: "01a20175-af07-73a7-81a9-54b29c24c733",
            fields: UserFields(name: "Ada", username: "ada", email: "ada@example.com"),
            createdAt: 1_700_000_000_000, updatedAt: 1_700_000_000_000, version: 1)
        var same = valid()
        same["id"] = .string(current.id)
        same["created_at"] = .string("2023-11-14T22:13:20.000Z")
        #expect(errors(doc(same), current: current).isEmpty)
        var changed = same
        changed["created_at"] = .string("2020-01-01T00:00:00.000Z")
        #expect(errors(doc(changed), current: current).map(\.field) == ["created_at"])
    }

    @Test("merge patch changes only the given fields and refuses removal")
    func mergePatch() throws {
        let current = User.new(UserFields(name: "Ada", username: "ada", email: "ada@example.com"), at: 1)
        let patched = try UserValidation.applyMergePatch(.object(["name": .string(" Ada King ")]), to: current)
        #expect(patched == UserFields(name: "Ada King", username: "ada", email: "ada@example.com"))
        #expect(try UserValidation.applyMergePatch(.object([:]), to: current) == current.fields)
        #expect(throws: ValidationFailed.self) {
            try UserValidation.applyMergePatch(.object(["email": .null]), to: current)
        }
        #expect(throws: ValidationFailed.self) {
            try UserValidation.applyMergePatch(.object(["nickname": .string("x")]), to: current)
        }
        #expect(throws: ValidationFailed.self) { try UserValidation.applyMergePatch(.array([]), to: current) }
    }
}
