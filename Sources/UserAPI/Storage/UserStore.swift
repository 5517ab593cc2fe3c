/// Filters and cursor for listing users. Results are ordered by id, which for
/// UUIDv7 ids is creation order.
public struct UserListQuery: Sendable, Equatable {
    public var limit: Int
    /// Return only users whose id sorts after this one (keyset pagination).
    public var after: String?
    /// Exact match on the (lower-case) username.
    public var username: String?
    /// Case-insensitive exact match on the email address.
    public var email: String?

    public init(limit: Int, after: String? = nil, username: String? = nil, email: String? = nil) {
        self.limit = limit
        self.after = after
        self.username = username
        self.email = email
    }
}

/// Where users live. Handlers only ever see this protocol; SQLite and
/// PostgreSQL implement it, and one contract test suite runs against both.
///
/// Every method either completes durably or throws; a `StoreError` says what
/// the client should be told, anything else is an internal error.
public protocol UserStore: Sendable {
    /// `sqlite` or `postgres`: used in metrics labels, `/` and logs.
    var backend: String { get }

    /// A short description of where the data lives, without credentials.
    var location: String { get }

    /// Applies pending schema migrations; safe to run concurrently from
    /// several processes and to repeat. Returns the versions applied now.
    func migrate() async throws -> MigrationReport

    /// The schema version recorded in the database (0 when never migrated).
    func schemaVersion() async throws -> Int

    /// Cheap round trip used by readiness checks.
    func ping() async throws

    func list(_ query: UserListQuery) async throws -> [User]
    /// Whether `list(_:completion:)` works (the event loop calls it, `EventLoopFastPath`).
    var listsWithoutTask: Bool { get }
    /// `list` for callers that are not tasks: `completion` runs once, on a
    /// thread of the store's, with the rows or the error `list` would throw.
    func list(_ query: UserListQuery, completion: @escaping @Sendable (Result<[User], any Error>) -> Void)
    func get(id: String) async throws -> User?

    /// Whether the store keeps users in memory (`cachedUser` can answer).
    var hasUserCache: Bool { get }

    /// The user, when the store holds it in memory and that copy is current;
    /// nil means "ask `get`". Synchronous and cheap: the event loop calls it
    /// (`EventLoopFastPath`).
    func cachedUser(id: String) -> User?

    /// Inserts `user`; throws `StoreError.conflict` naming the fields already taken.
    func create(_ user: User) async throws -> User

    /// Whether `create(_:completion:)` works (the event loop calls it, `EventLoopFastPath`).
    var createsWithoutTask: Bool { get }

    /// `create` for callers that are not tasks: `completion` runs once, on a
    /// thread of the store's, when the insert is durable or has failed.
    func create(_ user: User, completion: @escaping @Sendable (Result<User, any Error>) -> Void)

    /// Reads the current user, hands it to `change` (which may throw to refuse,
    /// e.g. a failed `If-Match`), and writes the result atomically: nobody else
    /// can change the row in between. Unchanged fields leave the row (and its
    /// version) untouched.
    func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User

    /// Deletes the user after `check` approved the current version.
    func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws

    /// Bulk import used by `userapi db copy`: inserts rows that are missing and
    /// overwrites older versions of rows that exist. Returns rows written.
    func importUsers(_ users: [User]) async throws -> Int

    func count() async throws -> Int

    /// Background work (connection pool, writer) until graceful shutdown or
    /// cancellation; then finishes queued writes and closes connections.
    func run() async throws

    /// Stops accepting work, finishes queued writes and closes connections.
    func shutdown() async
}

extension UserStore {
    public var listsWithoutTask: Bool { false }
    public func list(_ query: UserListQuery, completion: @escaping @Sendable (Result<[User], any Error>) -> Void) {
        completion(.failure(StoreError.unavailable(reason: "this store lists users from tasks only")))
    }
    public var hasUserCache: Bool { false }
    public func cachedUser(id: String) -> User? { nil }
    public var createsWithoutTask: Bool { false }
    public func create(_ user: User, completion: @escaping @Sendable (Result<User, any Error>) -> Void) {
        completion(.failure(StoreError.unavailable(reason: "this store creates users from tasks only")))
    }
}

public struct MigrationReport: Sendable, Equatable {
    /// Versions applied by this call (empty when the schema was current).
    public var applied: [Int]
    /// Schema version after the call.
    public var current: Int
}

/// Errors a store reports that map to a specific HTTP answer.
public enum StoreError: Error, Sendable, Equatable {
    /// No user with that id (404).
    case notFound
    /// Unique fields already used by another user (409), e.g. ["email"].
    case conflict(fields: [String])
    /// The database cannot be reached or did not answer in time (503).
    case unavailable(reason: String)
    /// Too many writes queued; shed load instead of growing memory (503).
    case overloaded
    /// The schema is older than this binary needs and migrations are off.
    case schemaOutdated(found: Int, required: Int)
}
