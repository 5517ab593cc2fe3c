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
