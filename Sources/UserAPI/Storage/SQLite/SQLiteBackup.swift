import Foundation
import GRDB

/// Copies of the embedded SQLite database made with SQLite's online backup
/// API (through GRDB), checked with `PRAGMA integrity_check` before they count.
public enum SQLiteBackup {
    /// What a finished backup or restore holds.
    public struct Report: Sendable, CustomStringConvertible {
        public var users: Int
        public var events: Int
        public var schemaVersion: String
        public var bytes: Int64

        public var description: String {
            "\(users) users, \(events) events, schema \(schemaVersion), \(bytes) bytes"
        }
    }

    /// Copies the database at `source` to `destination` while a server may
    /// be writing to it: the copy is one read transaction, so it is
    /// consistent, and it takes no file lock. The copy is written beside
    /// `destination`, checked, flushed to disk and then renamed into place;
    /// an existing `destination` is replaced only by a good copy.
    public static func backup(database source: String, to destination: String) throws -> Report {
        guard FileManager.default.fileExists(atPath: source) else {
            throw StoreError.unavailable(reason: "there is no database file at \(source)")
        }
        var options = Configuration()
        options.readonly = true
        options.busyMode = .timeout(10)
        let partial = destination + ".partial"
        removeFiles(partial)
        defer { removeFiles(partial) }
        do {
            let reader = try DatabaseQueue(path: source, configuration: options)
            defer { try? reader.close() }
            let copy = try DatabaseQueue(path: partial)
            try reader.backup(to: copy)
            // A rollback-journal file: reading the copy needs no -wal/-shm beside it.
            try copy.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = DELETE") }
            let report = try check(copy, path: partial)
            try copy.close()
            try durableRename(partial, to: destination)
            return report
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable(reason: "backup of \(source) failed: \(SQLiteUserStore.cause(error))")
        }
    }

    /// Replaces the database at `database` with the backup at `source`. The
    /// server must be stopped: the database's file lock is taken first and a
    /// running server makes this fail with `DatabaseInUse`. A backup that
    /// fails its integrity check is refused before anything is changed.
    public static func restore(from source: String, database: String) async throws -> Report {
        guard FileManager.default.fileExists(atPath: source) else {
            throw StoreError.unavailable(reason: "there is no backup file at \(source)")
        }
        try SQLiteUserStore.makeDirectories(for: database)
        let lock = try await DatabaseFileLock.acquire(database: database)
        defer { lock.release() }
        return try copyIn(source, database: database)
    }

    private static func copyIn(_ source: String, database: String) throws -> Report {
        do {
            var options = Configuration()
            options.readonly = true
            let backup = try DatabaseQueue(path: source, configuration: options)
            defer { try? backup.close() }
            _ = try check(backup, path: source)
            let target = try DatabasePool(path: database)
            try backup.backup(to: target)
            try target.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            let report = try check(target, path: database)
            try target.close()
            return report
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable(reason: "restore of \(database) from \(source) failed: \(SQLiteUserStore.cause(error))")
        }
    }

    /// `PRAGMA integrity_check`, then what the file holds.
    static func check(_ reader: some DatabaseReader, path: String) throws -> Report {
        try reader.read { db in
            let result = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            guard result == ["ok"] else {
                throw StoreError.unavailable(
                    reason: "\(path) is damaged (integrity_check: \(result.prefix(3).joined(separator: "; ")))")
            }
            guard try db.tableExists("users") else {
                throw StoreError.unavailable(reason: "\(path) is not a userapi database (it has no users table)")
            }
            let users = try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0
            let events = try db.tableExists("events") ? try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0 : 0
            let version =
                try db.tableExists("grdb_migrations")
                ? try String.fetchOne(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid DESC LIMIT 1") ?? "none"
                : "none"
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let bytes = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
            return Report(users: users, events: events, schemaVersion: version, bytes: bytes)
        }
    }

    /// fsync the file, rename it over `destination`, fsync the directory.
    static func durableRename(_ path: String, to destination: String) throws {
        for file in [path] {
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0, fsync(fd) == 0 else {
                let reason = String(cString: strerror(errno))
                if fd >= 0 { close(fd) }
                throw StoreError.unavailable(reason: "cannot flush \(file): \(reason)")
            }
            close(fd)
        }
        guard rename(path, destination) == 0 else {
            throw StoreError.unavailable(reason: "cannot move the backup to \(destination): \(String(cString: strerror(errno)))")
        }
        let directory = (destination as NSString).deletingLastPathComponent
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    private static func removeFiles(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
    }
}
