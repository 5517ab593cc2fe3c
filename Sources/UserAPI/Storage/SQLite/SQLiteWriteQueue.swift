import DequeModule
import Synchronization

/// One write waiting for the writer connection. The work runs inside the
/// batch's transaction; its result is only handed back after COMMIT, so a
/// client never hears "created" for a row that is not on disk.
final class PendingWrite: @unchecked Sendable {
    // `outcome` is touched only by the writer's thread; `resume` is called exactly once.
    let work: @Sendable (SQLiteHandle) throws -> any Sendable
    /// Runs on the writer after COMMIT, job by job in commit order, before the
    /// caller is resumed. Why there: effects applied by the callers themselves
    /// (the user cache) would race, and an older update could land after a
    /// newer one or after a delete.
    private let committed: @Sendable (any Sendable) -> Void
    /// Hands the outcome to the caller: a task's continuation, or the event
    /// loop that answers the request (`EventLoopFastPath`).
    private let resume: @Sendable (Result<any Sendable, any Error>) -> Void
    var outcome: Result<any Sendable, any Error>?

    init(
        work: @escaping @Sendable (SQLiteHandle) throws -> any Sendable,
        committed: @escaping @Sendable (any Sendable) -> Void,
        resume: @escaping @Sendable (Result<any Sendable, any Error>) -> Void
    ) {
        self.work = work
        self.committed = committed
        self.resume = resume
    }

    /// Resumes the waiting request: with its own outcome when the batch
    /// committed, or with the batch's error when it did not.
    func finish(batchError: (any Error)?) {
        if let batchError {
            resume(.failure(batchError))
        } else {
            let result = outcome ?? .failure(StoreError.unavailable(reason: "write was not executed"))
            if case .success(let value) = result { committed(value) }
            resume(result)
        }
    }
}

/// The queue between request handlers and the single writer task.
///
/// Writers never contend for SQLite's write lock; instead the writer takes
/// everything queued so far and commits it as one transaction: one fsync for
/// many writes (group commit).
/// The queue is bounded so overload sheds load instead of growing memory.
final class SQLiteWriteQueue: Sendable {
    private struct State {
        var jobs = Deque<PendingWrite>()
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func enqueue(_ job: PendingWrite) throws(StoreError) {
        let waiter: CheckedContinuation<Void, Never>? = try state.withLock { (s: inout State) throws(StoreError) in
            if s.closed { throw StoreError.unavailable(reason: "the database is shutting down") }
            if s.jobs.count >= capacity { throw StoreError.overloaded }
            s.jobs.append(job)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Waits for work and returns up to `limit` jobs, or nil once the queue is
    /// closed and empty.
    func nextBatch(limit: Int) async -> [PendingWrite]? {
        while true {
            let batch: [PendingWrite]? = state.withLock { s in
                if !s.jobs.isEmpty {
                    let n = min(limit, s.jobs.count)
                    let taken = Array(s.jobs.prefix(n))
                    s.jobs.removeFirst(n)
                    return taken
                }
                return s.closed ? [] : nil
            }
            if let batch { return batch.isEmpty ? nil : batch }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if !s.jobs.isEmpty || s.closed { return true }
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Refuses new jobs; queued ones are still written.
    func close() {
        let waiter = state.withLock { s in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    var depth: Int { state.withLock { $0.jobs.count } }
}
