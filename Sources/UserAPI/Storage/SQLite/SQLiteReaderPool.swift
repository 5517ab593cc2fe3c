import NIOPosix
import Synchronization

/// The SQLite store's read connections, each on a thread of its own pool.
///
/// The pool has as many threads as connections, so a job always finds an idle
/// connection: at most that many jobs run at once, and each takes one
/// connection for its duration and puts it back. Reads run concurrently with
/// the writer, as WAL allows, and never on an event loop or the cooperative
/// pool: a read that waits for the disk blocks only its own thread.
final class SQLiteReaderPool: Sendable {
    private let threadPool: NIOThreadPool
    private let idle: Mutex<[SQLiteHandle]>

    private init(threadPool: NIOThreadPool, handles: [SQLiteHandle]) {
        self.threadPool = threadPool
        self.idle = Mutex(handles)
    }

    /// Opens `count` read-only connections to the file at `path`, which must
    /// already be in WAL mode.
    static func open(path: String, count: Int, busyTimeoutMillis: Int) async throws -> SQLiteReaderPool {
        let threadPool = NIOThreadPool(numberOfThreads: count)
        threadPool.start()
        do {
            let handles = try await threadPool.runIfActive {
                var handles: [SQLiteHandle] = []
                do {
                    for _ in 0..<count {
                        let handle = try SQLiteHandle(path: path)
                        handles.append(handle)
                        try handle.execute("PRAGMA busy_timeout = \(busyTimeoutMillis)")
                        try handle.execute("PRAGMA query_only = ON")
                    }
                } catch {
                    handles.forEach { $0.close() }
                    throw error
                }
                return handles
            }
            try await StorageThreads.lowerPriority(of: threadPool, threads: count)
            return SQLiteReaderPool(threadPool: threadPool, handles: handles)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Runs `body` with an idle connection on one of the pool's threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteHandle) throws -> T) async throws -> T {
        try await threadPool.runIfActive { [self] in try withIdleHandle(body) }
    }

    /// `read` for callers that are not tasks: `completion` runs once, on one of
    /// the pool's threads (or at once on the caller's, with `CancellationError`,
    /// when the pool is shutting down).
    func read<T: Sendable>(
        _ body: @escaping @Sendable (SQLiteHandle) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        threadPool.submit { [self] state in
            guard case .active = state else { return completion(.failure(CancellationError())) }
            completion(Result(catching: { try withIdleHandle(body) }))
        }
    }

    private func withIdleHandle<T>(_ body: (SQLiteHandle) throws -> T) throws -> T {
        guard let handle = idle.withLock({ $0.popLast() }) else {
            // Unreachable while threads == connections; a clear error if that ever changes.
            throw SQLiteHandle.busy("no idle read connection")
        }
        defer { idle.withLock { $0.append(handle) } }
        return try body(handle)
    }

    /// Waits for running reads, refuses queued ones, and closes the connections.
    func close() async {
        try? await threadPool.shutdownGracefully()
        idle.withLock { handles in
            handles.forEach { $0.close() }
            handles.removeAll()
        }
    }
}
