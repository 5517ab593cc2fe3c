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
    /// Lower-cased prefix of the name, the username or the email.
    public var search: String?

    public init(limit: Int, after: String? = nil, username: String? = nil, email: String? = nil, search: String? = nil) {
        self.limit = limit
        self.after = after
        self.username = username
        self.email = email
        self.search = search
    }

    /// The prefix search as a range, `[search, search + U+10FFFF)`, in byte order.
    var searchRange: (from: String, to: String)? { search.map { ($0, $0 + "\u{10FFFF}") } }
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

    /// Applies pending schema migrations; safe to repeat, and on PostgreSQL
    /// to run from several replicas at once. Returns the versions applied now.
    func migrate() async throws -> MigrationReport

    /// The schema version recorded in the database (0 when never migrated).
    func schemaVersion() async throws -> Int

    /// Cheap round trip used by readiness checks.
    func ping() async throws

    func list(_ query: UserListQuery) async throws -> [User]

    func get(id: String) async throws -> User?

    /// Inserts `user`, with its `user.created` event; throws `StoreError.conflict` naming the fields already taken.
    func create(_ user: User) async throws -> User

    /// Reads the current user, hands it to `change` (which may throw to refuse,
    /// e.g. a failed `If-Match`), and writes `User.updated(with:)` of the
    /// result, unless someone changed the user in between: then it starts
    /// over with the newer user. Unchanged fields leave the row untouched;
    /// a change records its `user.updated` event.
    func update(id: String, _ change: @escaping @Sendable (User) throws -> UserFields) async throws -> User

    /// Deletes the user after `check` approved its current version, with its `user.deleted` event.
    func delete(id: String, _ check: @escaping @Sendable (User) throws -> Void) async throws

    /// Events after `seq`, oldest first, at most `limit`.
    func events(after seq: Int64, limit: Int) async throws -> [UserEvent]

    /// The oldest kept and the newest numbered event.
    func eventBounds() async throws -> EventBounds

    /// Deletes events before `cutoff` (milliseconds since the epoch) and all
    /// but the newest `keep`; returns how many went.
    func pruneEvents(before cutoff: Int64, keep: Int) async throws -> Int

    /// Wakes the feed after commits that recorded events (in this process,
    /// or, on PostgreSQL, in any replica).
    var changes: ChangeSignal { get }

    /// Bulk import used by `userapi db copy`: inserts rows that are missing and
    /// overwrites older versions of rows that exist. Returns rows written.
    /// Records no events: a copy is not a change of the users.
    func importUsers(_ users: [User]) async throws -> Int

    func count() async throws -> Int

    /// Background work (connection pool, group commit) until graceful shutdown
    /// or cancellation; then finishes queued writes and closes connections.
    func run() async throws

    /// Stops accepting work, finishes queued writes and closes connections.
    func shutdown() async
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

extension StoreError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notFound: "no such user"
        case .conflict(let fields): "already used by another user: \(fields.joined(separator: ", "))"
        case .unavailable(let reason): reason
        case .overloaded: "too many writes queued"
        case .schemaOutdated(let found, let required): "the schema is at version \(found), this binary needs \(required)"
        }
    }
}

/// A user in the source of `db copy` whose username or email belongs to a
/// different user in the target.
public struct ImportConflict: Error, Sendable {
    public var id: String
    public var error: StoreError
}

/// The columns of the `users` table, named once for both dialects: the id,
/// every field of `UserFields.all` under its own name, and what the server keeps.
enum UserColumns {
    static let names: [String] = ["id"] + UserFields.all.map(\.name) + ["email_key", "created_at", "updated_at", "version"]
    static let list = names.joined(separator: ", ")
    /// `name = excluded.name, ...` for every column but the id (upserts).
    static let fromExcluded = names.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")

    /// `$1, $2, ...` (PostgreSQL) or `?, ?, ...` (SQLite) for an INSERT of every column.
    static func placeholders(numbered: Bool) -> String {
        names.indices.map { numbered ? "$\($0 + 1)" : "?" }.joined(separator: ", ")
    }

    /// Which fields of `user` collide with `taken`, a row's (username, email key).
    static func conflicts(of user: User, with taken: [(username: String, emailKey: String)]) -> StoreError {
        var fields: [String] = []
        if taken.contains(where: { $0.username == user.username }) { fields.append("username") }
        if taken.contains(where: { $0.emailKey == user.emailKey }) { fields.append("email") }
        return .conflict(fields: fields.isEmpty ? ["id"] : fields)
    }
}
