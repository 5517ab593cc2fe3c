// Hand-written: neither GRDB nor Foundation offers a whole-process advisory lock on a file; this is flock(2).
import Foundation
import Synchronization

/// Makes one process the only writer of a SQLite file: an exclusive
/// `flock` on `<database>.lock`, held until `release()` or the process
/// ends (the kernel drops it on exit, `kill -9` included). The holder
/// writes its pid and host into the file, so a refused process can name it.
final class DatabaseFileLock: Sendable {
    let path: String
    private let descriptor: Atomic<Int32>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Atomic(descriptor)
    }

    /// Takes the lock for `database`, waiting up to `wait` for a holder to let go.
    static func acquire(database: String, wait: Duration = .zero) async throws -> DatabaseFileLock {
        let path = database + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw StoreError.unavailable(reason: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + wait
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK, ContinuousClock.now < deadline else {
                let holder = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                close(fd)
                if code == EWOULDBLOCK {
                    throw DatabaseInUse(database: database, holder: holder?.isEmpty == false ? holder : nil)
                }
                throw StoreError.unavailable(reason: "cannot lock \(path): \(String(cString: strerror(code)))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let owner = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(fd, 0)
        _ = owner.withCString { pwrite(fd, $0, strlen($0), 0) }
        return DatabaseFileLock(path: path, descriptor: fd)
    }

    deinit { release() }

    /// Lets the next process in; the lock file stays (removing it would race a waiting process).
    func release() {
        let fd = descriptor.exchange(-1, ordering: .relaxed)
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
    }
}

/// Another process holds a SQLite file's lock.
public struct DatabaseInUse: Error, CustomStringConvertible {
    public var database: String
    /// What the holder wrote into the lock file: its pid and host.
    public var holder: String?
    public var description: String {
        "the database \(database) is in use by another userapi process"
            + (holder.map { " (\($0))" } ?? "")
            + "; a SQLite file has one writer: stop that process, or use PostgreSQL for several replicas"
    }
}
