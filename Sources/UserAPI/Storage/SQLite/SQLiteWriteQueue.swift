import DequeModule
import Dispatch
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

/// The queue between request handlers and the writer's thread.
///
/// Writers never contend for SQLite's write lock; instead the writer takes
/// everything queued so far and commits it as one transaction: one fsync for
/// many writes (group commit).
/// The queue is bounded so overload sheds load instead of growing memory.
///
/// The writer blocks its own thread while the queue is empty, and `enqueue`
/// wakes it directly. Why not a task awaiting a continuation: then each batch
/// went event loop → cooperative pool (the writer task) → writer thread and
/// back, two more thread hand-offs per batch (bench/README.md, "What was
/// measured and changed").
final class SQLiteWriteQueue: Sendable {
    private struct State {
        var jobs = Deque<PendingWrite>()
        var writerSleeping = false
        var closed = false
    }

    private let state = Mutex(State())
    /// Signalled once per sleep of the writer, by whoever ends it.
    private let wakeUp = DispatchSemaphore(value: 0)
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func enqueue(_ job: PendingWrite) throws(StoreError) {
        let wake = try state.withLock { (s: inout State) throws(StoreError) -> Bool in
            if s.closed { throw StoreError.unavailable(reason: "the database is shutting down") }
            if s.jobs.count >= capacity { throw StoreError.overloaded }
            s.jobs.append(job)
            defer { s.writerSleeping = false }
            return s.writerSleeping
        }
        if wake { wakeUp.signal() }
    }

    /// Blocks the calling thread (the writer's) until there is work, and
    /// returns up to `limit` jobs, or nil once the queue is closed and empty.
    /// Only one thread may call this.
    func nextBatch(limit: Int) -> [PendingWrite]? {
        while true {
            let batch: [PendingWrite]? = state.withLock { s in
                if !s.jobs.isEmpty {
                    let n = min(limit, s.jobs.count)
                    let taken = Array(s.jobs.prefix(n))
                    s.jobs.removeFirst(n)
                    return taken
                }
                if s.closed { return [] }
                s.writerSleeping = true
                return nil
            }
            if let batch { return batch.isEmpty ? nil : batch }
            // A signal sent between the unlock and this wait is kept by the
            // semaphore, so no wake-up is lost.
            wakeUp.wait()
        }
    }

    /// Refuses new jobs; queued ones are still written.
    func close() {
        let wake = state.withLock { s in
            s.closed = true
            defer { s.writerSleeping = false }
            return s.writerSleeping
        }
        if wake { wakeUp.signal() }
    }

    /// Closes the queue and hands back what nobody will write: for when the
    /// writer could not start.
    func closeAndTakeAll() -> [PendingWrite] {
        state.withLock { s in
            s.closed = true
            defer { s.jobs.removeAll() }
            return Array(s.jobs)
        }
    }

    var depth: Int { state.withLock { $0.jobs.count } }
}
