import Synchronization

/// Deadlines for PostgreSQL calls, checked by one loop (`run()`) instead of a
/// timer per call.
///
/// Why: `Task.sleep` on Linux arms a libdispatch timer source for every call,
/// and a sleep that is cancelled because the query finished first keeps its
/// source until the time it would have fired. With a deadline on every
/// storage call that cost 8–30 % of PostgreSQL throughput and 3–4 MB of peak
/// memory under load (bench/README.md, "What was measured and changed").
/// Here a call costs a task for its body and a few short critical sections
/// (see `withDeadline` for why the body runs apart); while calls are waiting
/// the loop wakes every `resolution` and resumes those whose deadline has
/// passed, so a deadline fires up to one `resolution` late. With no call
/// waiting it parks until the next one registers: an idle replica does not
/// wake up 20 times a second for nothing.
final class DeadlineTimer: Sendable {
    let resolution: Duration

    private struct Deadlines {
        /// Applies while `started` is unset (waiting for a pooled connection).
        let untilStarted: ContinuousClock.Instant
        let started: LeaseFlag
        let overall: ContinuousClock.Instant

        func passed(at now: ContinuousClock.Instant) -> Bool {
            now >= overall || (now >= untilStarted && !started.isSet)
        }
    }

    /// Every call has an entry from `wait` until it is resumed, so neither a
    /// cancellation that comes before the continuation is stored nor one that
    /// comes after the deadline fired can leave anything behind.
    private enum Entry {
        case registered(Deadlines)
        case waiting(Deadlines, UnsafeContinuation<Bool, Never>)
        /// Decided before the continuation was stored: true = expired.
        case decided(Bool)
    }

    private struct State {
        var nextID: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
        /// The loop, parked while `entries` is empty.
        var parked: UnsafeContinuation<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())

    init(resolution: Duration = .milliseconds(50)) {
        self.resolution = resolution
    }

    /// Calls currently waiting on a deadline (for tests: nothing may linger).
    var pending: Int { state.withLock { $0.entries.count } }

    /// Whether the loop is parked for want of calls (for tests).
    var isParked: Bool { state.withLock { $0.parked != nil } }

    /// Suspends until a deadline passes (returns true) or the task is
    /// cancelled (returns false).
    func wait(
        until overall: ContinuousClock.Instant, orUntil untilStarted: ContinuousClock.Instant, unless started: LeaseFlag
    ) async -> Bool {
        await wait(register(until: overall, orUntil: untilStarted, unless: started))
    }

    /// Adds an entry; from here on `expire` or `resolve` can decide it.
    private func register(
        until overall: ContinuousClock.Instant, orUntil untilStarted: ContinuousClock.Instant, unless started: LeaseFlag
    ) -> UInt64 {
        let deadlines = Deadlines(untilStarted: untilStarted, started: started, overall: overall)
        let (id, parked) = state.withLock { s in
            s.nextID &+= 1
            s.entries[s.nextID] = .registered(deadlines)
            defer { s.parked = nil }
            return (s.nextID, s.parked)
        }
        parked?.resume()
        return id
    }

    /// Suspends until entry `id` is decided: true when its deadline passed,
    /// false when it was resolved otherwise (the call finished, or this task
    /// was cancelled).
    private func wait(_ id: UInt64) async -> Bool {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let decided: Bool? = state.withLock { s in
                    switch s.entries[id] {
                    case .registered(let deadlines):
                        s.entries[id] = .waiting(deadlines, continuation)
                        return nil
                    case .decided(let expired):
                        s.entries[id] = nil
                        return expired
                    case .waiting, nil:
                        preconditionFailure("deadline entry \(id) resumed twice")
                    }
                }
                if let decided { continuation.resume(returning: decided) }
            }
        } onCancel: {
            resolve(id, expired: false)
        }
    }

    /// Checks the deadlines every `resolution` while calls are waiting, until
    /// the task is cancelled.
    func run() async {
        while !Task.isCancelled {
            await waitForCalls()
            try? await Task.sleep(for: resolution)
            expire(at: .now)
        }
    }

    /// Returns at once while calls are waiting; otherwise parks until one
    /// registers or the loop is cancelled.
    private func waitForCalls() async {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if !s.entries.isEmpty || s.stopped { return true }
                    s.parked = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let parked = state.withLock { s in
                s.stopped = true
                defer { s.parked = nil }
                return s.parked
            }
            parked?.resume()
        }
    }

    /// Resumes every call whose deadline has passed at `now`.
    func expire(at now: ContinuousClock.Instant) {
        var ids: [UInt64] = []
        state.withLock { s in
            for (id, entry) in s.entries {
                switch entry {
                case .registered(let d), .waiting(let d, _): if d.passed(at: now) { ids.append(id) }
                case .decided: break
                }
            }
        }
        for id in ids { resolve(id, expired: true) }
    }

    private func resolve(_ id: UInt64, expired: Bool) {
        let continuation: UnsafeContinuation<Bool, Never>? = state.withLock { s in
            switch s.entries[id] {
            case .registered:
                s.entries[id] = .decided(expired)
                return nil
            case .waiting(_, let continuation):
                s.entries[id] = nil
                return continuation
            case .decided, nil:
                return nil  // already decided or resumed: the first outcome stands
            }
        }
        continuation?.resume(returning: expired)
    }

    /// Runs `body` with a deadline of `timeout`, and of `startTimeout` until
    /// `started` is set. When one passes, or the caller is cancelled, the call
    /// is given up: `onAbandon` runs, `body` is cancelled, and the caller gets
    /// `DeadlineExceeded` (or `CancellationError`) at once, without waiting
    /// for `body` to end.
    ///
    /// Why not wait for `body` (a task group would): postgres-nio's queries do
    /// not stop when cancelled, and a connection lease cancelled at an
    /// unlucky moment can stay queued in its pool; either would hold the
    /// request until the database answers again, minutes on a silent network.
    /// `onAbandon` closes the connection the call holds, which ends a stuck
    /// query, and the abandoned `body` finishes on its own.
    func withDeadline<T: Sendable>(
        _ timeout: Duration, untilStarted startTimeout: Duration, started: LeaseFlag,
        onAbandon: @escaping @Sendable () -> Void = {},
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let now = ContinuousClock.now
        let id = register(until: now + timeout, orUntil: now + startTimeout, unless: started)
        let outcome = Outcome<T>()
        let work = Task {
            do { outcome.set(.success(try await body())) } catch { outcome.set(.failure(error)) }
            self.resolve(id, expired: false)
        }
        let expired = await wait(id)
        // The body's result wins whenever it is there, even if the deadline passed meanwhile.
        if let result = outcome.take() { return try result.get() }
        onAbandon()
        work.cancel()
        if expired { throw DeadlineExceeded() }
        throw CancellationError()
    }
}

/// The result of a call's body, once it has one.
private final class Outcome<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)

    func set(_ value: Result<T, any Error>) { result.withLock { $0 = value } }

    func take() -> Result<T, any Error>? { result.withLock { $0 } }
}
