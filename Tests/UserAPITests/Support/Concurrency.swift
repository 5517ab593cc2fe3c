import Foundation
import Synchronization

/// A flag set from one task and read from another.
final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// A wait that ignores task cancellation, like a driver call blocked on a
/// silent socket; only `open()` ends it.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { s in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// A gate that opens by itself after `delay` (see `open(after:)`).
    convenience init(openingAfter delay: Duration) {
        self.init()
        open(after: delay)
    }

    /// Opens the gate after `delay` at the latest, so that a regression
    /// makes a test fail on its timing instead of hanging the run.
    func open(after delay: Duration) {
        Task {
            try? await Task.sleep(for: delay)
            self.open()
        }
    }

    func open() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Polls `condition` until it holds or `timeout` passes. Returns either way:
/// the caller's own assertion on the condition is what fails.
func waitUntil(within timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition(), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Runs `body` until it succeeds, for set-up steps that a loaded machine may
/// slow down; after `timeout` the last error is thrown.
func waitUntilSucceeds(within timeout: Duration = .seconds(10), _ body: () async throws -> Void) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        do {
            return try await body()
        } catch {
            if ContinuousClock.now >= deadline { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// A task executor whose jobs the test can hold back: tasks that prefer it
/// run on its own queue until `hold()`, then wait until `release()`. Lets a
/// test decide the order in which two suspended callers resume.
final class HoldingExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = DispatchQueue(label: "userapi-test.holding-executor")
    private let lock = NSLock()
    private var held = false
    private var pending: [UnownedJob] = []
    private var scheduled = 0
    private var ran = 0

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        if held {
            pending.append(job)
            lock.unlock()
            return
        }
        scheduled += 1
        lock.unlock()
        run(job)
    }

    private func run(_ job: UnownedJob) {
        queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
            self.lock.lock()
            self.scheduled -= 1
            self.ran += 1
            self.lock.unlock()
        }
    }

    /// True once a job ran and none is waiting or running: every task on this
    /// executor is suspended.
    var isIdle: Bool {
        lock.lock()
        defer { lock.unlock() }
        return ran > 0 && scheduled == 0
    }

    var heldJobs: Int {
        lock.lock()
        defer { lock.unlock() }
        return pending.count
    }

    func hold() {
        lock.lock()
        held = true
        lock.unlock()
    }

    func release() {
        lock.lock()
        held = false
        let jobs = pending
        pending = []
        scheduled += jobs.count
        lock.unlock()
        for job in jobs { run(job) }
    }
}

/// Runs blocking work (a socket read) on a thread of its own, so it never
/// holds one of the few threads Swift's concurrency pool has, which the
/// in-process server's handlers need to answer it.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
