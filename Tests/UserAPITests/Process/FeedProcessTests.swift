import Foundation
import Testing

/// The users feed across process boundaries: a restart on SQLite, and two
/// replicas on one PostgreSQL database.
@Suite("Users feed across processes", .serialized)
struct FeedProcessTests {
    static let token = "feed-process-token-0123"
    static let auth = ["Authorization": "Bearer \(token)", "Content-Type": "application/json"]

    func create(_ server: ServerProcess, _ name: String) async throws -> String {
        let body = #"{"name":"\#(name)","username":"\#(name)","email":"\#(name)@example.com"}"#
        let (data, status) = try await httpRequest("POST", "\(server.baseURL)/users", headers: Self.auth, body: Data(body.utf8))
        #expect(status == 201)
        return try #require((JSONSerialization.jsonObject(with: data) as? [String: Any])?["id"] as? String)
    }

    /// The `id:` lines of an event stream, in arrival order.
    static func seqs(_ stream: String) -> [Int] {
        // "\r\n" (the HTTP head) is one Character: split on scalars' lines, not on Character "\n".
        let lines = stream.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n")
        return lines.compactMap { line in line.hasPrefix("id: ") ? Int(line.dropFirst(4)) : nil }
    }

    @Test("SQLite: a watcher cut off by SIGTERM resumes with Last-Event-ID after the restart and gets each later event once")
    func resumeAcrossRestart() async throws {
        let dir = TempDir()
        let env = [
            "DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": Self.token, "SHUTDOWN_DRAIN_DELAY": "1s",
        ]
        let first = try ServerProcess(environment: env)
        try await first.waitUntilListening()
        for name in ["ada", "bob", "cyd"] { _ = try await create(first, name) }
        let port = first.port
        let watcher = try SSEReader(port: port, path: "/users/events?since=0", token: Self.token)
        let head = try await offPool { watcher.client.readUntil("id: 3\n") }
        first.signal(SIGTERM)
        // The stream ends when the server goes away; nothing more arrives on it.
        let rest = try await offPool { watcher.read(until: "\u{0}") }
        #expect(await first.waitForExit(timeout: .seconds(60)) == 0)
        #expect(Self.seqs(head + rest) == [1, 2, 3], "\(head + rest)")

        let second = try ServerProcess(environment: env)
        try await second.waitUntilListening()
        let dan = try await create(second, "dan")
        _ = try await create(second, "eve")
        let resumed = try await offPool {
            try SSEReader(port: second.port, path: "/users/events", token: Self.token, lastEventID: "3").read(until: "id: 5\n")
        }
        let later = try await offPool {
            try SSEReader(port: second.port, path: "/users/events?since=5", token: Self.token).client.readWithin(.seconds(1))
        }
        #expect(Self.seqs(resumed) == [4, 5], "\(resumed)")
        #expect(resumed.contains(#""seq":4,"type":"user.created","id":"\#(dan)""#))
        #expect(Self.seqs(later).isEmpty, "nothing after the latest event: \(later)")
        second.signal(SIGTERM)
        _ = await second.waitForExit(timeout: .seconds(60))
    }

    @Test(
        "PostgreSQL: two replicas on one database; each replica's watchers see the other's changes in seq order",
        .enabled(if: TestEnv.postgresURL != nil || TestEnv.requirePostgres))
    func replicasSeeEachOther() async throws {
        let url = try await freshPostgresDatabase()
        let env = ["DATABASE_URL": url, "AUTH_TOKENS": Self.token]
        let a = try ServerProcess(environment: env)
        try await a.waitUntilListening()
        let b = try ServerProcess(environment: env)
        try await b.waitUntilListening()

        let onA = try SSEReader(port: a.port, path: "/users/events?since=0", token: Self.token)
        let onB = try SSEReader(port: b.port, path: "/users/events?since=0", token: Self.token)
        let ada = try await create(a, "ada")
        let bob = try await create(b, "bob")
        let cyd = try await create(a, "cyd")
        // Through the third event's data line (the blank line that ends it).
        let (streamA, streamB) = try await offPool {
            (onA.client.readUntil("id: 3\n") + onA.read(until: "\n\n"), onB.client.readUntil("id: 3\n") + onB.read(until: "\n\n"))
        }
        for stream in [streamA, streamB] {
            #expect(Self.seqs(stream) == [1, 2, 3], "\(stream)")
            for (seq, id) in [(1, ada), (2, bob), (3, cyd)] {
                #expect(stream.contains(#""seq":\#(seq),"type":"user.created","id":"\#(id)""#), "\(stream)")
            }
        }
        for server in [a, b] {
            server.signal(SIGTERM)
            _ = await server.waitForExit(timeout: .seconds(60))
        }
    }
}
