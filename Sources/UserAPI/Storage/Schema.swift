/// The schema history, shared by both backends: same versions, same meaning.
/// Migrations are forward-only; each runs in a transaction together with its
/// record (GRDB's `grdb_migrations` on SQLite, `schema_migrations` on
/// PostgreSQL), so a crash leaves either all of it or none.
enum Schema {
    struct Migration {
        let version: Int
        let name: String
        let sqlite: [String]
        let postgres: [String]

        /// The name GRDB's migrator records it under.
        var identifier: String { "\(version) \(name)" }
    }

    static let migrations: [Migration] = [
        Migration(
            version: 1,
            name: "create users",
            sqlite: [
                """
                CREATE TABLE IF NOT EXISTS users (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL,
                    username TEXT NOT NULL,
                    email TEXT NOT NULL,
                    email_key TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    version INTEGER NOT NULL DEFAULT 1,
                    CONSTRAINT users_username_key UNIQUE (username),
                    CONSTRAINT users_email_key UNIQUE (email_key)
                ) WITHOUT ROWID
                """
            ],
            postgres: [
                """
                CREATE TABLE users (
                    id uuid PRIMARY KEY,
                    name text NOT NULL,
                    username text NOT NULL,
                    email text NOT NULL,
                    email_key text NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    version bigint NOT NULL DEFAULT 1,
                    CONSTRAINT users_username_key UNIQUE (username),
                    CONSTRAINT users_email_key UNIQUE (email_key)
                )
                """
            ]
        )
    ]

    static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Maps a unique-constraint name (or the column SQLite reports) to the API field.
    static func field(forConstraint text: String) -> String? {
        if text.contains("username") { return "username" }
        if text.contains("email") { return "email" }
        return nil
    }
}
