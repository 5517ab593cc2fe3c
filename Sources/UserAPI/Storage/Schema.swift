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
        ),
        Migration(
            version: 2,
            name: "events and search",
            sqlite: [
                // AUTOINCREMENT: a seq is never reused, even after the newest events are pruned.
                """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    type TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    user TEXT,
                    at INTEGER NOT NULL
                )
                """,
                "CREATE INDEX events_at ON events (at)",
                "CREATE INDEX users_name_search ON users (lower(name))",
            ],
            postgres: [
                """
                CREATE TABLE events (
                    seq bigint PRIMARY KEY,
                    type text NOT NULL,
                    user_id uuid NOT NULL,
                    "user" text,
                    at timestamptz NOT NULL
                )
                """,
                "CREATE INDEX events_at ON events (at)",
                // One row handing out seqs: its row lock orders commits, so seq order is commit order.
                """
                CREATE TABLE event_counter (
                    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                    seq bigint NOT NULL
                )
                """,
                "INSERT INTO event_counter (seq) VALUES (0)",
                // Prefix search compares bytes ("C"), so these indexes serve it.
                #"CREATE INDEX users_name_search ON users ((lower(name)) COLLATE "C")"#,
                #"CREATE INDEX users_username_search ON users (username COLLATE "C")"#,
                #"CREATE INDEX users_email_search ON users (email_key COLLATE "C")"#,
            ]
        ),
    ]

    static var latestVersion: Int { migrations.last?.version ?? 0 }
}
