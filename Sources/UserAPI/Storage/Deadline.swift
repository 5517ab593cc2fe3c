import Synchronization

struct DeadlineExceeded: Error {}

/// Runs `body` and returns its result, or throws `DeadlineExceeded` when
/// `timeout` passes first; `body` is then cancelled but not waited for.
///
/// Why not a task group: a group returns only after every child has ended,
/// and a driver call that does not honour cancellation (postgres-nio's
/// `query` waits for the server's answer whatever happens) would hold the
/// caller until the kernel gives up on the socket, minutes on a silent
/// network. Here the caller gets its answer at the deadline, and the
/// abandoned call ends on its own: every PostgreSQL call has its own
/// deadline, which closes a connection that stopped answering.
///
/// For rare calls (the readiness check, `migrate`): each call starts two
/// tasks and a `Task.sleep`. Request-path storage calls use `DeadlineTimer`.
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = FirstOutcome<T>()
    let work = Task {
        do { outcome.settle(.success(try await body())) } catch { outcome.settle(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        if !Task.isCancelled { outcome.settle(.failure(DeadlineExceeded())) }
    }
    defer {
        timer.cancel()
        work.cancel()
    }
    return try await withTaskCancellationHandler {
        try await outcome.value()
    } onCancel: {
        outcome.settle(.failure(CancellationError()))
    }
}

/// The first of several results to arrive; later ones are dropped.
private final class FirstOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case settled(Result<T, any Error>)
        case delivered
    }

    private let state = Mutex(State.pending)

    func settle(_ result: Result<T, any Error>) {
        let waiter: CheckedContinuation<T, any Error>? = state.withLock { s in
            switch s {
            case .pending:
                s = .settled(result)
                return nil
            case .waiting(let continuation):
                s = .delivered
                return continuation
            case .settled, .delivered:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<T, any Error>? = state.withLock { s in
                switch s {
                case .pending:
                    s = .waiting(continuation)
                    return nil
                case .settled(let result):
                    s = .delivered
                    return result
                case .waiting, .delivered:
                    preconditionFailure("FirstOutcome.value() called twice")
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
