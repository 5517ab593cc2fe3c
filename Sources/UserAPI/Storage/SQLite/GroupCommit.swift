// Hand-written: GRDB gives each write a transaction (and an fsync) of its own; this shares one among concurrent writes.
import DequeModule
import GRDB
import Synchronization

/// Concurrent writes wait here and commit together: the writer takes every
/// queued write, runs each in a savepoint of one transaction, commits once
/// (one fsync with `synchronous=FULL`), and only then answers them. A write
/// that fails on its own (a unique conflict, a refused precondition) is
/// rolled back to its savepoint and reported while the others commit; any
/// other database error fails the whole batch, which SQLite rolled back.
///
/// The queue is bounded, so overload sheds load instead of growing memory.
final class GroupCommit: Sendable {
    private struct Job {
        let work: @Sendable (Database) throws -> any Sendable
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private struct State {
        var jobs = Deque<Job>()
        /// Taken by the writer and not yet answered.
        var committing = 0
        var writer: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let batches = Atomic<Int>(0)
    private let failure = Mutex<String?>(nil)
    let capacity: Int
    let maxBatch: Int

    init(capacity: Int, maxBatch: Int = 256) {
        self.capacity = capacity
        self.maxBatch = maxBatch
    }

    /// Writes waiting for the next batch.
    var depth: Int { state.withLock { $0.jobs.count } }

    /// Writes submitted and not yet answered (queued or being committed).
    var pending: Int { state.withLock { $0.jobs.count + $0.committing } }

    /// Transactions committed so far.
    var committedBatches: Int { batches.load(ordering: .relaxed) }

    /// Why the last batch failed, until one commits again.
    var lastFailure: String? { failure.withLock { $0 } }

    /// Queues `work` and returns its result once the batch it ran in is committed.
    func submit<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let value = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let outcome = state.withLock { s -> Result<CheckedContinuation<Void, Never>?, StoreError> in
                if s.closed { return .failure(.unavailable(reason: "the database is shutting down")) }
                if s.jobs.count >= capacity { return .failure(.overloaded) }
                s.jobs.append(Job(work: work, continuation: continuation))
                defer { s.writer = nil }
                return .success(s.writer)
            }
            switch outcome {
            case .success(let writer): writer?.resume()
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
        return value as! T
    }

    /// Refuses new writes; queued ones are still committed by `run`.
    func close() {
        let writer = state.withLock { s in
            s.closed = true
            defer { s.writer = nil }
            return s.writer
        }
        writer?.resume()
    }

    /// Commits batches on `pool` until `close()` and the queue is empty.
    /// `report` turns a database error into what the callers are told.
    /// `committed` runs after each commit, before the callers are answered.
    func run(
        on pool: DatabasePool, report: @escaping @Sendable (any Error) -> any Error, committed: @Sendable () -> Void
    ) async {
        while let batch = await nextBatch() {
            let work = batch.map(\.work)
            do {
                let results = try await pool.write { db in
                    try work.map { job -> Result<any Sendable, any Error> in
                        do {
                            var value: (any Sendable)?
                            try db.inSavepoint {
                                value = try job(db)
                                return .commit
                            }
                            return .success(value!)
                        } catch let error as DatabaseError {
                            throw error  // not this write's own failure: abort the batch
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                batches.add(1, ordering: .relaxed)
                failure.withLock { $0 = nil }
                committed()
                state.withLock { $0.committing -= batch.count }
                for (job, result) in zip(batch, results) { job.continuation.resume(with: result) }
            } catch {
                state.withLock { $0.committing -= batch.count }
                let reported = report(error)
                failure.withLock { $0 = HealthHandlers.reason(reported) }
                for job in batch { job.continuation.resume(throwing: reported) }
            }
        }
    }

    private func nextBatch() async -> [Job]? {
        while true {
            let batch: [Job]? = state.withLock { s in
                guard !s.jobs.isEmpty else { return s.closed ? [] : nil }
                let batch = Array(s.jobs.prefix(maxBatch))
                s.jobs.removeFirst(batch.count)
                s.committing += batch.count
                return batch
            }
            if let batch { return batch.isEmpty ? nil : batch }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if !s.jobs.isEmpty || s.closed { return true }
                    s.writer = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }
}
