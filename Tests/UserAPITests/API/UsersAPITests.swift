import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import UserAPI

/// The users API over real HTTP, against every available backend.
@Suite("Users API")
struct UsersAPITests {
    @Test("create, read, list, replace, patch and delete a user", arguments: Backend.available)
    func lifecycle(backend: Backend) async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, backend: backend)) { client, _ in
            let created = try await client.request(
                .post, "/users", json: #"{"name":" Ada Lovelace ","username":"Ada","email":"ada@example.com"}"#)
            #expect(created.status == .created)
            let user = try created.object()
            let id = try #require(user["id"] as? String)
            #expect(created.headers[.location] == "/users/\(id)")
            #expect(created.headers[.eTag] == "\"v1\"")
            #expect(user["name"] as? String == "Ada Lovelace")
            #expect(user["username"] as? String == "ada")
            #expect(user["email"] as? String == "ada@example.com")
            #expect(Set(user.keys) == ["id", "name", "username", "email", "created_at", "updated_at"])
            #expect(user["created_at"] as? String == user["updated_at"] as? String)

            let fetched = try await client.request(.get, "/users/\(id)")
            #expect(fetched.status == .ok)
            #expect(fetched.headers[.eTag] == "\"v1\"")
            #expect(try fetched.object()["id"] as? String == id)
            #expect(try await client.request(.get, "/users/\(id.uppercased())").status == .ok)

            let list = try await client.request(.get, "/users")
            #expect(try list.array().map { $0["id"] as? String } == [id])
            #expect(try await client.request(.get, "/users/").array().count == 1)

            let replaced = try await client.request(
                .put, "/users/\(id)", json: #"{"name":"Ada King","username":"ada.king","email":"ada@king.example"}"#)
            #expect(replaced.status == .ok)
            #expect(replaced.headers[.eTag] == "\"v2\"")
            #expect(try replaced.object()["username"] as? String == "ada.king")
            #expect(try replaced.object()["created_at"] as? String == user["created_at"] as? String)

            let patched = try await client.request(
                .patch, "/users/\(id)", json: #"{"email":"countess@example.com"}"#,
                contentType: "application/merge-patch+json")
            #expect(patched.status == .ok)
            #expect(try patched.object()["email"] as? String == "countess@example.com")
            #expect(try patched.object()["name"] as? String == "Ada King")
            #expect(patched.headers[.eTag] == "\"v3\"")

            let unchanged = try await client.request(.patch, "/users/\(id)", json: "{}")
            #expect(unchanged.headers[.eTag] == "\"v3\"", "an empty patch must not create a new version")

            #expect(try await client.request(.delete, "/users/\(id)").status == .noContent)
            try await client.request(.get, "/users/\(id)").problem(.notFound)
            try await client.request(.delete, "/users/\(id)").problem(.notFound)
            #expect(try await client.request(.get, "/users").array().isEmpty)
        }
    }

    @Test("keyset pagination walks every user once, in creation order, with filters kept in Link", arguments: Backend.available)
    func pagination(backend: Backend) async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, backend: backend)) { client, _ in
            var ids: [String] = []
            for i in 0..<23 {
                let user = try await client.createUser("User \(i)", "user\(i)", "u\(i)@example.com")
                ids.append(try #require(user["id"] as? String))
            }
            var seen: [String] = []
            var next: String? = "/users?limit=5"
            var pages = 0
            while let uri = next {
                let page = try await client.request(.get, uri)
                #expect(page.status == .ok)
                seen += try page.array().compactMap { $0["id"] as? String }
                pages += 1
                next = try page.headers[HTTPField.Name("Link")!].map { link in
                    let match = try #require(link.firstMatch(of: /^<([^>]+)>; rel="next"$/))
                    return String(match.1)
                }
            }
            #expect(seen == ids)
            #expect(pages == 5)

            let exact = try await client.request(.get, "/users?limit=23")
            #expect(exact.headers[HTTPField.Name("Link")!] == nil, "no next link when nothing follows")
            #expect(try await client.request(.get, "/users").array().count == 23, "default limit is 50")

            let byName = try await client.request(.get, "/users?username=USER7").array()
            #expect(byName.map { $0["username"] as? String } == ["user7"])
            let byEmail = try await client.request(.get, "/users?email=U8@EXAMPLE.COM").array()
            #expect(byEmail.map { $0["username"] as? String } == ["user8"])
            #expect(try await client.request(.get, "/users?username=nobody").array().isEmpty)
            // A NUL matches nobody (PostgreSQL text cannot even hold one).
            for filter in ["username=user%007", "email=u8%00@example.com", "q=us%00"] {
                #expect(try await client.request(.get, "/users?\(filter)").array().isEmpty, "\(filter)")
            }
            let plus = try await client.createUser("Plus", "plus", "a+b@example.com")
            let filtered = try await client.request(.get, "/users?email=a%2Bb@example.com&limit=1")
            #expect(try filtered.array().first?["id"] as? String == plus["id"] as? String)
        }
    }

    @Test("invalid pagination parameters are 400 naming the parameter")
    func paginationErrors() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            for uri in ["/users?limit=0", "/users?limit=501", "/users?limit=ten", "/users?after=nope"] {
                let response = try await client.request(.get, uri)
                try response.problem(.badRequest)
                #expect(try response.problemFields().count == 1, "\(uri)")
            }
            #expect(try await client.request(.get, "/users?limit=500").status == .ok)
        }
    }

    @Test("conditional requests: If-None-Match gives 304, If-Match guards writes with 412", arguments: Backend.available)
    func conditionals(backend: Backend) async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, backend: backend)) { client, _ in
            let id = try #require(try await client.createUser("Ada", "ada", "ada@example.com")["id"] as? String)
            let notModified = try await client.request(.get, "/users/\(id)", headers: [.ifNoneMatch: "\"v1\""])
            #expect(notModified.status == .notModified)
            #expect(notModified.body.readableBytes == 0)
            #expect(notModified.headers[.eTag] == "\"v1\"")
            #expect(
                try await client.request(.get, "/users/\(id)", headers: [.ifNoneMatch: "W/\"v1\""]).status
                    == .notModified)
            #expect(
                try await client.request(.get, "/users/\(id)", headers: [.ifNoneMatch: "\"v0\", \"v9\""]).status
                    == .ok)

            try await client.request(
                .patch, "/users/\(id)", json: #"{"name":"X"}"#, headers: [.ifMatch: "\"v2\""]
            ).problem(.preconditionFailed)
            try await client.request(
                .patch, "/users/\(id)", json: #"{"name":"X"}"#, headers: [.ifMatch: "W/\"v1\""]
            ).problem(.preconditionFailed)
            let ok = try await client.request(.patch, "/users/\(id)", json: #"{"name":"X"}"#, headers: [.ifMatch: "\"v1\""])
            #expect(ok.status == .ok)
            try await client.request(
                .put, "/users/\(id)", json: #"{"name":"Y","username":"ada","email":"ada@example.com"}"#,
                headers: [.ifMatch: "\"v1\""]
            ).problem(.preconditionFailed)
            #expect(
                try await client.request(
                    .put, "/users/\(id)", json: #"{"name":"Y","username":"ada","email":"ada@example.com"}"#,
                    headers: [.ifMatch: "*"]
                ).status == .ok)
            try await client.request(.delete, "/users/\(id)", headers: [.ifMatch: "\"v2\""]).problem(.preconditionFailed)
            #expect(try await client.request(.get, "/users/\(id)").status == .ok, "a refused delete deletes nothing")
            #expect(try await client.request(.delete, "/users/\(id)", headers: [.ifMatch: "\"v3\""]).status == .noContent)
        }
    }

    @Test("duplicate usernames and emails are 409 naming each field, case-insensitively", arguments: Backend.available)
    func conflicts(backend: Backend) async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir, backend: backend)) { client, _ in
            _ = try await client.createUser("Ada", "ada", "ada@example.com")
            let bob = try await client.createUser("Bob", "bob", "bob@example.com")
            let both = try await client.request(
                .post, "/users", json: #"{"name":"A","username":"ADA","email":"Ada@Example.com"}"#)
            try both.problem(.conflict)
            #expect(try both.problemFields() == ["username", "email"])
            let email = try await client.request(
                .post, "/users", json: #"{"name":"A","username":"other","email":"ADA@example.com"}"#)
            #expect(try email.problemFields() == ["email"])
            let bobID = try #require(bob["id"] as? String)
            let patch = try await client.request(.patch, "/users/\(bobID)", json: #"{"username":"Ada"}"#)
            try patch.problem(.conflict)
            #expect(try patch.problemFields() == ["username"])
            // Changing only the case of one's own email is not a conflict.
            #expect(try await client.request(.patch, "/users/\(bobID)", json: #"{"email":"BOB@example.com"}"#).status == .ok)
            #expect(
                try await client.request(.get, "/users").array().count == 2,
                "nothing was written by the refused requests")
        }
    }

    @Test("request bodies: 415 wrong type, 413 too large, 400 malformed, 422 invalid — in that order")
    func bodyErrors() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.http.maxBodySize = 1024
        try await withApp(config) { client, _ in
            try await client.request(.post, "/users", json: "{}", contentType: "text/plain").problem(.unsupportedMediaType)
            try await client.request(.post, "/users", json: "{}", contentType: nil).problem(.unsupportedMediaType)
            try await client.request(.post, "/users", json: "{}", contentType: "application/json; charset=latin1")
                .problem(.unsupportedMediaType)
            #expect(
                try await client.request(
                    .post, "/users", json: #"{"name":"A","username":"abc","email":"a@b.co"}"#,
                    contentType: "Application/JSON; charset=UTF-8"
                ).status == .created)
            let patchType = try await client.request(
                .post, "/users", json: "{}", contentType: "application/merge-patch+json")
            try patchType.problem(.unsupportedMediaType)

            let big = #"{"name":""# + String(repeating: "x", count: 2000) + #"","username":"abc","email":"a@b.co"}"#
            try await client.request(.post, "/users", json: big).problem(.contentTooLarge)
            try await client.request(.post, "/users", json: "{not json").problem(.badRequest)
            try await client.request(.post, "/users", json: "").problem(.badRequest)
            let dup = try await client.request(.post, "/users", json: #"{"name":"a","name":"b"}"#)
            let detail = try dup.problem(.badRequest)["detail"] as? String
            #expect(detail?.contains("duplicate member") == true)
            let invalid = try await client.request(
                .post, "/users", json: #"{"name":"","username":"x","email":"no","role":"admin"}"#)
            try invalid.problem(.unprocessableContent)
            #expect(try invalid.problemFields() == ["role", "name", "username", "email"])
            try await client.request(.post, "/users", json: "[1,2]").problem(.unprocessableContent)
        }
    }

    @Test("a client-chosen X-Request-ID is echoed when sane, replaced when not, and appears in problems")
    func requestID() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let name = HTTPField.Name("X-Request-ID")!
            let echoed = try await client.request(
                .get, "/users/00000000-0000-7000-8000-000000000000", headers: [name: "abc-123"])
            #expect(echoed.headers[name] == "abc-123")
            #expect(try echoed.object()["request_id"] as? String == "abc-123")
            let replaced = try await client.request(.get, "/healthz", headers: [name: "bad id\u{7F}\"}"])
            #expect(replaced.headers[name]?.count == 16)
            #expect(try await client.request(.get, "/healthz").headers[name]?.isEmpty == false)
        }
    }

    @Test("unknown routes are 404, wrong methods 405 with Allow, both as problems")
    func routing() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            try await client.request(.get, "/nothing/here").problem(.notFound)
            let put = try await client.request(.put, "/users", json: "{}")
            try put.problem(.methodNotAllowed)
            #expect(put.headers[.allow] == "GET, HEAD, POST")
            let post = try await client.request(.post, "/users/00000000-0000-7000-8000-000000000000", json: "{}")
            #expect(post.headers[.allow] == "GET, HEAD, PUT, PATCH, DELETE")
            try post.problem(.methodNotAllowed)
            #expect(try await client.request(.delete, "/healthz").headers[.allow] == "GET, HEAD")
            try await client.request(.get, "/users/not-a-uuid").problem(.notFound)
            try await client.request(.patch, "/users/00000000-0000-7000-8000-000000000000", json: "{}").problem(.notFound)
            try await client.request(.put, "/users/00000000-0000-7000-8000-000000000000", json: "{}").problem(.notFound)
        }
    }

    @Test("HEAD answers every GET route with GET's status and headers and no body")
    func head() async throws {
        let dir = TempDir()
        try await withApp(try await testConfig(dir)) { client, _ in
            let id = try #require(try await client.createUser("Head Test", "headtest", "head@example.com")["id"] as? String)
            for path in ["/users/\(id)", "/users?limit=5", "/healthz", "/readyz", "/openapi.yaml", "/version"] {
                let get = try await client.request(.get, path)
                let head = try await client.request(.head, path)
                #expect(get.status == .ok, "GET \(path): \(get.text)")
                #expect(head.status == get.status, "HEAD \(path)")
                #expect(head.body.readableBytes == 0, "HEAD \(path) sent a body")
                #expect(head.headers[.contentType] == get.headers[.contentType], "HEAD \(path)")
                #expect(head.headers[.contentLength] == String(get.body.readableBytes), "HEAD \(path)")
            }
            let user = try await client.request(.head, "/users/\(id)")
            #expect(user.headers[.eTag] == "\"v1\"")
            let notModified = try await client.request(.head, "/users/\(id)", headers: [.ifNoneMatch: "\"v1\""])
            #expect(notModified.status == .notModified)
            let missing = try await client.request(.head, "/users/00000000-0000-7000-8000-000000000000")
            #expect(missing.status == .notFound)
            #expect(missing.body.readableBytes == 0)
        }
    }
}
