import Foundation
import HTTPTypes
import Testing
import Yams

@testable import UserAPI

/// The served OpenAPI document and the implementation must describe the same
/// API; Schemathesis (make test-api) then checks behaviour against it.
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    let document: [String: Any]

    init() throws {
        let text = String(decoding: OpenAPIHandler.document, as: UTF8.self)
        document = try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    var paths: [String: [String: Any]] { (document["paths"] as? [String: [String: Any]]) ?? [:] }

    @Test("documents exactly the routes and methods the router serves, each way round")
    func routesMatch() {
        let verbs = Set(["get", "put", "post", "patch", "delete", "head", "options"])
        let documented = Set(
            paths.flatMap { path, item in item.keys.filter(verbs.contains).map { "\($0.uppercased()) \(path)" } })
        let implemented = Set(Route.allCases.map { "\($0.method.rawValue) \($0.path)" })
        #expect(implemented.subtracting(documented).isEmpty, "served but not documented: \(implemented.subtracting(documented))")
        #expect(documented.subtracting(implemented).isEmpty, "documented but not served: \(documented.subtracting(implemented))")
    }

    @Test("declares the writable fields of a user once, exactly those of UserFields.all")
    func fieldsMatch() throws {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        let fields = try #require(schemas["UserFields"]?["properties"] as? [String: Any])
        #expect(Set(fields.keys) == Set(UserFields.all.map(\.name)))
        let required = Set(UserFields.all.filter(\.isRequired).map(\.name))
        for name in ["User", "UserInput", "UserReplacement", "UserPatch"] {
            let schema = try #require(schemas[name], "\(name)")
            #expect((schema["allOf"] as? [[String: Any]])?.first?["$ref"] as? String == "#/components/schemas/UserFields")
            #expect(schema["unevaluatedProperties"] as? Bool == false, "\(name) must refuse unknown members")
            let own = Set((schema["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
            #expect(own.isSubset(of: User.readOnlyMembers), "\(name) repeats fields: \(own)")
            let listed = Set(schema["required"] as? [String] ?? [])
            if name != "UserPatch" { #expect(listed.intersection(fields.keys) == required, "\(name).required") }
        }
    }

    @Test("every write documents auth, validation, conflict and body-limit answers")
    func writeResponses() throws {
        for (path, method) in [("/users", "post"), ("/users/{id}", "put"), ("/users/{id}", "patch")] {
            let operation = try #require(paths[path]?[method] as? [String: Any])
            let codes = Set((operation["responses"] as? [String: Any])?.keys.map { $0 } ?? [])
            #expect(
                codes.isSuperset(of: ["400", "401", "403", "409", "413", "415", "422", "429", "503"]),
                "\(method) \(path): \(codes)")
        }
        let delete = try #require(paths["/users/{id}"]?["delete"] as? [String: Any])
        #expect(
            Set((delete["responses"] as? [String: Any])?.keys.map { $0 } ?? [])
                == ["204", "401", "403", "404", "412", "429", "503"])
    }

    @Test("the documented limits are the ones the validator enforces")
    func limitsMatch() throws {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        #expect(schemas["Name"]?["maxLength"] as? Int == UserValidation.nameMaxLength)
        #expect(schemas["Email"]?["maxLength"] as? Int == UserValidation.emailMaxLength)
        #expect(schemas["Username"]?["pattern"] as? String == "^[A-Za-z0-9._-]{3,32}$")
        let list = try #require(paths["/users"]?["get"] as? [String: Any])
        let limit = try #require((list["parameters"] as? [[String: Any]])?.first { $0["name"] as? String == "limit" })
        let schema = try #require(limit["schema"] as? [String: Any])
        #expect(schema["maximum"] as? Int == ListUsersHandler.maxLimit)
        #expect(schema["default"] as? Int == ListUsersHandler.defaultLimit)
    }

    @Test("the Email pattern and the validator agree on sample addresses")
    func emailPatternMatchesValidator() throws {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        let pattern = try #require(schemas["Email"]?["pattern"] as? String)
        let regex = try NSRegularExpression(pattern: pattern)
        let samples = [
            "a@b.co", "x.y+z@sub.example.org", "x@example.xn--p1ai", "a..b@example.com", ".a@example.com", "a@b",
            "a@b.c1", "a@-b.com", "a b@c.com", "a@b.co ", "\"q\"@example.com", "a@b-.com", "a@example.123", "ü@example.com",
        ]
        for sample in samples {
            let range = NSRange(sample.startIndex..., in: sample)
            let schemaSays = regex.firstMatch(in: sample, range: range) != nil
            let validatorSays = (try? UserValidation.email(sample)) != nil
            #expect(schemaSays == validatorSays, "\(sample): schema \(schemaSays), validator \(validatorSays)")
        }
    }
}
