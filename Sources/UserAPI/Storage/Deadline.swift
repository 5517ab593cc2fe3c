struct DeadlineExceeded: Error {}

/// Runs `body` and returns its result, or throws `DeadlineExceeded` when
/// `timeout` passes first; `body` is then cancelled (a PostgreSQL call closes
/// its connection, see `PostgresUserStore`) and waited for.
/// For rare calls such as the readiness check; request-path storage calls are
/// bounded by the stores themselves.
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            try Task.checkCancellation()
            throw DeadlineExceeded()
        }
        // The caller was cancelled and the call ended anyway: the caller still hears of its cancellation.
        try Task.checkCancellation()
        return value
    }
}
