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

    @Test("documents exactly the routes and methods the router serves")
    func routesMatch() {
        let verbs = Set(["get", "put", "post", "patch", "delete", "head", "options"])
        let documented = Set(
            paths.flatMap { path, item in item.keys.filter(verbs.contains).map { "\($0.uppercased()) \(path)" } })
        let implemented = Set(RouteTable.routes.flatMap { route in route.methods.map { "\($0.rawValue) \(route.template)" } })
        #expect(documented == implemented)
    }

    @Test("every write documents auth, validation, conflict and body-limit answers")
    func writeResponses() throws {
        for (path, method) in [("/users", "post"), ("/users/{id}", "put"), ("/users/{id}", "patch")] {
            let operation = try #require(paths[path]?[method] as? [String: Any])
            let codes = Set((operation["responses"] as? [String: Any])?.keys.map { $0 } ?? [])
            #expect(codes.isSuperset(of: ["400", "401", "409", "413", "415", "422", "503"]), "\(method) \(path): \(codes)")
        }
        let delete = try #require(paths["/users/{id}"]?["delete"] as? [String: Any])
        #expect(Set((delete["responses"] as? [String: Any])?.keys.map { $0 } ?? []) == ["204", "401", "404", "412", "503"])
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
            let validatorSays = (try? UserValidation.validateEmail(sample).get()) != nil
            #expect(schemaSays == validatorSays, "\(sample): schema \(schemaSays), validator \(validatorSays)")
        }
    }
}
