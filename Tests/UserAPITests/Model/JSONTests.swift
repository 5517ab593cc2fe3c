import Foundation
import Testing

@testable import UserAPI

@Suite("JSON parsing and writing")
struct JSONTests {
    @Test("valid documents parse to the expected values")
    func parsesValid() throws {
        let value = try JSONValue.parse(
            Array(#"{"a":[1,-2.5e3,true,false,null],"b":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","c":{}}"#.utf8))
        #expect(
            value
                == .object([
                    "a": .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]),
                    "b": .string("x\"\\/\u{08}\u{0C}\n\r\té😀"),
                    "c": .object([:]),
                ]))
    }

    @Test(
        "malformed input is rejected with the position of the problem",
        arguments: [
            ("", "empty"),
            ("   ", "empty"),
            (#"{"name": }"#, "expected a value at line 1, column 10"),
            (#"{"a":1,}"#, "expected a quoted member name"),
            (#"{"a":1 "b":2}"#, "expected ',' or '}'"),
            ("{\n\"a\": tru}", "line 2, column 6"),
            (#"{"a":1}x"#, "unexpected data after the JSON document"),
            (#"{"a":"x"#, "unterminated string"),
            (#"{"a":01}"#, "expected ',' or '}'"),
            (#"{"a":"\q"}"#, "invalid escape"),
            (#"{"a":"\ud800"}"#, "unpaired surrogate"),
            ("{\"a\":\"\u{01}\"}", "control character"),
            (#"{"name":"a","name":"b"}"#, "duplicate member \"name\""),
            (#"[1e999]"#, "number out of range"),
            (#"// comment"#, "expected a value"),
        ])
    func rejectsMalformed(input: String, expected: String) {
        do {
            let value = try JSONValue.parse(Array(input.utf8))
            Issue.record("parsed \(input) as \(value)")
        } catch {
            #expect(error.detail.contains(expected), "\(error.detail)")
        }
    }

    @Test("invalid UTF-8 inside a string is rejected")
    func invalidUTF8() {
        #expect(throws: MalformedJSON.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test("deep nesting is refused instead of exhausting the stack")
    func depthLimit() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: MalformedJSON.self) { try JSONValue.parse(Array(deep.utf8)) }
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect((try? JSONValue.parse(Array(ok.utf8))) != nil)
    }

    @Test("the writer escapes strings so any input round-trips through a standard parser")
    func writerRoundTrip() throws {
        let tricky = "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} del\u{7F} é 😀 </script>"
        var w = JSONWriter()
        w.beginObject()
        w.key("s")
        w.string(tricky)
        w.key("n")
        w.number(42)
        w.key("list")
        w.beginArray()
        w.bool(true)
        w.null()
        w.number(1.5)
        w.endArray()
        w.endObject()
        let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any]
        #expect(parsed?["s"] as? String == tricky)
        #expect(parsed?["n"] as? Int == 42)
        #expect((parsed?["list"] as? [Any])?.count == 3)
    }
}

@Suite("Next-page links")
struct NextURLTests {
    @Test("filter values are percent-encoded so they read back unchanged")
    func encodes() throws {
        let url = ListUsersHandler.nextURL(
            limit: 5, after: "0193", filters: [("username", "a b"), ("email", "x+y&z=1#@example.com"), ("q", nil)])
        #expect(url == "/users?limit=5&after=0193&username=a%20b&email=x%2By%26z%3D1%23@example.com")
        let components = try #require(URLComponents(string: url))
        #expect(components.queryItems?.first { $0.name == "email" }?.value == "x+y&z=1#@example.com")
    }
}
