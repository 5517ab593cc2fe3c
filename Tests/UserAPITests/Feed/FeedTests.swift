import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import Synchronization
import Testing

@testable import UserAPI

/// The users feed: events recorded with their changes, read back in order,
/// served as Server-Sent Events and over a WebSocket.
@Suite("Users feed")
struct FeedTests {
    static func user(_ n: Int) -> User {
        User.new(UserFields(name: "User \(n)", username: "user\(n)", email: "user\(n)@example.com"))
    }

    @Test("every create, update and delete records its event, in commit order, once", arguments: Backend.available)
    func eventsFollowChanges(backend: Backend) async throws {
        let dir = TempDir()
        let store = try await StoreFactory.make(try await testConfig(dir, backend: backend), logger: TestEnv.logger)
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            let a = try await store.create(Self.user(1))
            let b = try await store.create(Self.user(2))
            let renamed = try await store.update(id: a.id) { current in
                var fields = current.fields
                fields.name = "Renamed"
                return fields
            }
            _ = try await store.update(id: a.id) { $0.fields }  // no change, no event
            try await store.delete(id: b.id) { _ in }
            await #expect(throws: StoreError.self) { try await store.create(Self.user(1)) }  // refused: no event

            let events = try await store.events(after: 0, limit: 100)
            #expect(events.map(\.kind) == [.created, .created, .updated, .deleted])
            #expect(events.map(\.id) == [a.id, b.id, a.id, b.id])
            #expect(events.map(\.seq) == [1, 2, 3, 4])
            #expect(events[3].user == nil)
            let updated = try JSONSerialization.jsonObject(with: Data(try #require(events[2].user))) as? [String: Any]
            #expect(updated?["name"] as? String == renamed.name)
            #expect(try await store.events(after: 2, limit: 1).map(\.seq) == [3])
            #expect(try await store.eventBounds() == EventBounds(oldest: 1, latest: 4))

            #expect(try await store.pruneEvents(before: 0, keep: 1) == 3)
            #expect(try await store.eventBounds() == EventBounds(oldest: 4, latest: 4))
        }
    }

    @Test("concurrent writes number their events without gaps, each seq once", arguments: Backend.available)
    func concurrentWrites(backend: Backend) async throws {
        let dir = TempDir()
        let store = try await StoreFactory.make(try await testConfig(dir, backend: backend), logger: TestEnv.logger)
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<60 { group.addTask { _ = try await store.create(Self.user(i)) } }
                try await group.waitForAll()
            }
            let events = try await store.events(after: 0, limit: 1000)
            #expect(events.map(\.seq) == Array(1...60))
            #expect(Set(events.map(\.id)).count == 60)
        }
    }

    @Test("a watcher that falls too far behind while live is dropped; one catching up from the table is not")
    func slowWatcher() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.events.maxLag = 5
        let store = try await StoreFactory.make(config, logger: TestEnv.logger)
        let feed = EventFeed(store: store, settings: config.events, metrics: nil, logger: TestEnv.logger)
        try await withRunningStores([store]) {
            _ = try await store.migrate()
            for i in 0..<20 { _ = try await store.create(Self.user(i)) }
            feed.start()
            let reader = Task { try await feed.run() }
            defer { reader.cancel() }
            try await waitUntil(within: .seconds(30)) { feed.latest == 20 }
            let start = try await feed.join(since: 0)
            defer { feed.leave() }
            guard case .events(let first) = try await feed.next(after: start, live: false, limit: 100) else {
                Issue.record("catching up from the table gives events")
                return
            }
            #expect(first.map(\.seq) == Array(1...20))
            guard case .tooSlow = try await feed.next(after: 2, live: true) else {
                Issue.record("a live watcher 18 behind with a limit of 5 is too slow")
                return
            }
        }
    }

    @Test("Server-Sent Events: every change as id/event/data, resumable with Last-Event-ID or since, 410 when gone")
    func serverSentEvents() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.events.heartbeat = .seconds(1)
        let app = try await buildApplication(config, logger: TestEnv.logger)
        try await app.test(.live) { client in
            let ada = try await client.createUser("Ada", "ada", "ada@example.com")
            let id = try #require(ada["id"] as? String)
            _ = try await client.request(.patch, "/users/\(id)", json: #"{"name":"Ada King"}"#)
            let port = app.port
            // From the start: both events, then a heartbeat comment.
            let stream = try await offPool {
                try SSEReader(port: port, path: "/users/events?since=0", token: TestEnv.token).read(until: ": heartbeat")
            }
            #expect(stream.contains("HTTP/1.1 200") && stream.lowercased().contains("content-type: text/event-stream"))
            #expect(stream.contains("id: 1\nevent: user.created\ndata: {\"seq\":1,\"type\":\"user.created\",\"id\":\"\(id)\""))
            #expect(stream.contains("id: 2\nevent: user.updated\ndata: "), "\(stream)")
            #expect(stream.contains("\"name\":\"Ada King\""))
            // Resuming after 1 gives 2 and only 2.
            let resumed = try await offPool {
                try SSEReader(port: port, path: "/users/events", token: TestEnv.token, lastEventID: "1").read(
                    until: ": heartbeat")
            }
            #expect(!resumed.contains("id: 1\n") && resumed.contains("id: 2\n"), "\(resumed)")

            try await client.request(.get, "/users/events?since=x").problem(.badRequest)
            try await client.request(.get, "/users/events?since=99").problem(.badRequest)
            try await client.request(.get, "/users/events?from=1").problem(.badRequest)
            try await client.request(.get, "/users/events", token: nil).problem(.unauthorized)
            _ = try await app.store.pruneEvents(before: Timestamp.nowMillis() + 1000, keep: 0)
            let gone = try await client.request(.get, "/users/events?since=0")
            let problem = try gone.problem(.gone)
            #expect((problem["detail"] as? String)?.contains("list the users again") == true)
        }
    }

    @Test("WebSocket: the token in the first message, then ready and every event; 1008 for a bad token, 1013 past max watchers")
    func webSocket() async throws {
        let dir = TempDir()
        var config = try await testConfig(dir)
        config.events.maxWatchers = 1
        let app = try await buildApplication(config, logger: TestEnv.logger)
        try await app.test(.live) { client in
            let received = Mutex<[String]>([])
            let url = "ws://127.0.0.1:\(app.port)/users/watch"
            let created = Mutex<String?>(nil)
            let closed = try await WebSocketClient.connect(url: url, logger: TestEnv.logger) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"token":"\#(TestEnv.token)"}"#))
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                while case .text(let text) = try await messages.next() {
                    received.withLock { $0.append(text) }
                    if text.contains(#""type":"ready""#) {
                        // A second watcher is one too many.
                        let second = try await WebSocketClient.connect(url: url, logger: TestEnv.logger) { inbound, outbound, _ in
                            try await outbound.write(.text(#"{"token":"\#(TestEnv.token)"}"#))
                            for try await _ in inbound {}
                        }
                        #expect(second?.closeCode == .unknown(1013))
                        let user = try await client.createUser("Ada", "ada", "ada@example.com")
                        created.withLock { $0 = user["id"] as? String }
                    }
                    if text.contains("user.created") { break }
                }
            }
            #expect(closed?.closeCode == .normalClosure)
            let messages = received.withLock { $0 }
            #expect(messages.first == #"{"type":"ready","latest":0}"#)
            let id = try #require(created.withLock { $0 })
            #expect(messages.last?.contains(#""seq":1,"type":"user.created","id":"\#(id)""#) == true, "\(messages)")

            let refused = try await WebSocketClient.connect(url: url, logger: TestEnv.logger) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"token":"wrong-token-0123456789"}"#))
                for try await _ in inbound {}
            }
            #expect(refused?.closeCode == .policyViolation)
        }
    }
}

/// A raw SSE client: reads the stream until `marker` appears, then hangs up.
struct SSEReader {
    let client: SlowClient
    init(port: Int, path: String, token: String, lastEventID: String? = nil) throws {
        client = try SlowClient(port: port)
        var request = "GET \(path) HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(token)\r\n"
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        try client.send(request + "\r\n")
    }

    func read(until marker: String) -> String {
        defer { client.close() }
        return client.readUntil(marker)
    }
}
