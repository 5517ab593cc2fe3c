import Tracing

/// Wraps a store with what an operator needs to see: a latency histogram and
/// error counter per operation, and a tracing span per call. Handlers talk to
/// this wrapper; backends stay free of observability code.
struct InstrumentedUserStore: UserStore {
    let base: any UserStore
    let metrics: AppMetrics
    /// Spans cost a task-local write per call; skip them when nobody exports.
    let tracing: Bool

    var backend: String { base.backend }
    var location: String { base.location }

    private func measure<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        guard tracing else { return try await timed(operation, body) }
        return try await withSpan("db.\(operation)", ofKind: .client) { span in
            span.attributes["db.system"] = base.backend == "postgres" ? "postgresql" : "sqlite"
            span.attributes["db.operation"] = operation
            return try await timed(operation, body)
        }
    }

    private func timed<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        do {
            let value = try await body()
            metrics.storageOperation(backend: base.backend, operation: operation, duration: .now - start, error: nil)
            return value
        } catch {
            metrics.storageOperation(
                backend: base.backend, operation: operation, duration: .now - start, error: Self.kind(of: error))
            throw error
        }
    }

    /// nil for outcomes caused by the request (not found, conflict, refused
    /// precondition, invalid input): those are answers, not storage errors.
    static func kind(of error: any Error) -> String? {
        switch error {
        case StoreError.notFound, StoreError.conflict: nil
        case StoreError.overloaded: "overloaded"
        case StoreError.unavailable, StoreError.schemaOutdated: "unavailable"
        // A caller's deadline (e.g. the readiness probe's 800 ms) ran out: the database did not answer.
        case is CancellationError, is DeadlineExceeded: "unavailable"
        case is Problem, is ValidationFailed: nil
        default: "internal"
        }
    }

    func migrate() async throws -> MigrationReport { try await base.migrate() }
    func schemaVersion() async throws -> Int { try await base.schemaVersion() }
    func ping() async throws { try await measure("ping") { try await base.ping() } }
    func list(_ query: UserListQuery) async throws -> [User] { try await measure("list") { try await base.list(query) } }
    func get(id: String) async throws -> User? { try await measure("get") { try await base.get(id: id) } }
    func create(_ user: User) async throws -> User { try await measure("create") { try await base.create(user) } }
    func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User {
        try await measure("update") { try await base.update(id: id, change) }
    }
    func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws {
        try await measure("delete") { try await base.delete(id: id, check) }
    }
    func importUsers(_ users: [User]) async throws -> Int { try await base.importUsers(users) }
    func events(after seq: Int64, limit: Int) async throws -> [UserEvent] {
        try await measure("events") { try await base.events(after: seq, limit: limit) }
    }
    func eventBounds() async throws -> EventBounds { try await base.eventBounds() }
    func pruneEvents(before cutoff: Int64, keep: Int) async throws -> Int {
        try await base.pruneEvents(before: cutoff, keep: keep)
    }
    var changes: ChangeSignal { base.changes }
    func count() async throws -> Int { try await base.count() }
    func run() async throws { try await base.run() }
    func shutdown() async { await base.shutdown() }
}
