import Foundation
import GRDB
import Synchronization
import Testing

/// `userapi db backup` beside a server that keeps writing, and `db restore`
/// into a stopped one, as real processes on a real SQLite file.
@Suite("db backup and restore", .serialized)
struct BackupProcessTests {
    static let token = "backup-test-token-0123"
    static let auth = ["Authorization": "Bearer \(token)", "Content-Type": "application/json"]

    func create(_ server: ServerProcess, _ i: Int) async throws -> String? {
        let body = #"{"name":"Backup \#(i)","username":"backup\#(i)","email":"b\#(i)@example.com"}"#
        let (data, status) = try await httpRequest("POST", "\(server.baseURL)/users", headers: Self.auth, body: Data(body.utf8))
        guard status == 201 else { return nil }
        return try (JSONSerialization.jsonObject(with: data) as? [String: Any])?["id"] as? String
    }

    @Test(
        "a backup taken during writes holds every user acknowledged before it, passes integrity_check; restore needs the server stopped"
    )
    func backupDuringWritesThenRestore() async throws {
        let dir = TempDir()
        let database = dir.file("users.sqlite")
        let env = ["DATABASE_URL": "sqlite:\(database)", "AUTH_TOKENS": Self.token]
        let server = try ServerProcess(environment: env)
        try await server.waitUntilListening()

        let acknowledged = Mutex<[String]>([])
        let stop = Flag()
        let writer = Task {
            var i = 0
            while !stop.isSet {
                i += 1
                if let id = try await create(server, i) { acknowledged.withLock { $0.append(id) } }
            }
        }
        try await waitUntil(within: .seconds(60)) { acknowledged.withLock { $0.count } >= 20 }
        let before = Set(acknowledged.withLock { $0 })
        let copy = dir.file("copy.sqlite")
        let backup = try await offPool { try Executable.run(["db", "backup", copy], environment: env) }
        let countAfterBackup = acknowledged.withLock { $0.count }
        try await waitUntil(within: .seconds(60)) { acknowledged.withLock { $0.count } >= countAfterBackup + 5 }
        stop.set()
        _ = try await writer.value
        #expect(backup.status == 0, "db backup: \(backup.stdout) \(backup.stderr)")

        var readOnly = Configuration()
        readOnly.readonly = true
        let queue = try DatabaseQueue(path: copy, configuration: readOnly)
        let (check, ids) = try await queue.read { db in
            (try String.fetchAll(db, sql: "PRAGMA integrity_check"), Set(try String.fetchAll(db, sql: "SELECT id FROM users")))
        }
        try queue.close()
        #expect(check == ["ok"])
        #expect(before.isSubset(of: ids), "users acknowledged before the backup are in it")
        #expect(ids.count <= countAfterBackup, "the copy holds no user acknowledged after the backup finished")
        #expect(backup.stdout.contains("\(ids.count) users"), "the report counts the copy: \(backup.stdout)")

        let refused = try await offPool { try Executable.run(["db", "restore", copy], environment: env) }
        #expect(refused.status == 75, "restore while the server holds the file: \(refused.stdout)")
        #expect(refused.stdout.contains("in use"))

        server.signal(SIGTERM)
        #expect(await server.waitForExit(timeout: .seconds(60)) == 0)
        let restored = try await offPool { try Executable.run(["db", "restore", copy], environment: env) }
        #expect(restored.status == 0, "db restore: \(restored.stdout) \(restored.stderr)")

        let again = try ServerProcess(environment: env)
        try await again.waitUntilListening()
        let all = acknowledged.withLock { $0 }
        let kept = try #require(all.first)
        let dropped = try #require(all.last)
        #expect(!ids.contains(dropped), "the last user was created after the backup")
        let (_, keptStatus) = try await httpGet("\(again.baseURL)/users/\(kept)", headers: Self.auth)
        let (_, droppedStatus) = try await httpGet("\(again.baseURL)/users/\(dropped)", headers: Self.auth)
        #expect(keptStatus == 200, "a user from before the backup is back")
        #expect(droppedStatus == 404, "a user created after the backup is gone with the restore")
        again.signal(SIGTERM)
        _ = await again.waitForExit(timeout: .seconds(60))
    }

    @Test("a damaged backup is refused before the database is touched; backup on PostgreSQL exits 64")
    func damagedBackupRefused() async throws {
        let dir = TempDir()
        let database = dir.file("users.sqlite")
        let env = ["DATABASE_URL": "sqlite:\(database)", "AUTH_TOKENS": Self.token]
        let server = try ServerProcess(environment: env)
        try await server.waitUntilListening()
        let id = try #require(try await create(server, 1))
        server.signal(SIGTERM)
        #expect(await server.waitForExit(timeout: .seconds(60)) == 0)

        let bad = dir.file("bad.sqlite")
        try Data("not a database, only some text that is long enough to look like one".utf8).write(to: URL(fileURLWithPath: bad))
        let refused = try await offPool { try Executable.run(["db", "restore", bad], environment: env) }
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("not a database"), "names the reason: \(refused.stdout)")

        let queue = try DatabaseQueue(path: database)
        let ids = try await queue.read { try String.fetchAll($0, sql: "SELECT id FROM users") }
        try queue.close()
        #expect(ids == [id], "the database is unchanged")

        let postgres = try await offPool {
            try Executable.run(
                ["db", "backup", dir.file("x.sqlite")], environment: ["DATABASE_URL": "postgres://u@127.0.0.1:1/db"])
        }
        #expect(postgres.status == 64)
        #expect(postgres.stdout.contains("pg_dump"))
    }
}
