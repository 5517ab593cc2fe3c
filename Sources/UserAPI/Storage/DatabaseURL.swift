import Foundation

/// A parsed `database.url`: `sqlite:<path>` for the embedded database or
/// `postgres://user[:password]@host[:port]/database[?sslmode=...]`.
public enum DatabaseURL: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresURL)

    public struct PostgresURL: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String
        /// `sslmode` from the query string, if given (overridden by `database.tls_mode`).
        public var sslMode: String?
    }

    public struct Invalid: Error, Sendable {
        public var reason: String
    }

    public static func parse(_ text: String) throws(Invalid) -> DatabaseURL {
        if text.hasPrefix("sqlite:") {
            var path = String(text.dropFirst("sqlite:".count))
            // sqlite:///abs/path and sqlite://rel/path are accepted like SQLAlchemy's forms.
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
            guard !path.isEmpty, path != ":memory:" else {
                throw Invalid(reason: "a sqlite URL needs a file path, e.g. sqlite:data/userapi.sqlite")
            }
            return .sqlite(path: path)
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
                throw Invalid(reason: "expected postgres://user:password@host:port/database")
            }
            let database = String(components.path.drop(while: { $0 == "/" }))
            guard !database.isEmpty else {
                throw Invalid(reason: "the postgres URL names no database (postgres://user@host:5432/<database>)")
            }
            guard let user = components.user, !user.isEmpty else {
                throw Invalid(reason: "the postgres URL names no user (postgres://<user>@host/database)")
            }
            let port = components.port ?? 5432
            guard (1...65535).contains(port) else { throw Invalid(reason: "the postgres port must be 1 to 65535") }
            let sslMode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value
            return .postgres(
                PostgresURL(
                    host: host, port: port, user: user.removingPercentEncoding ?? user,
                    password: components.password.map { $0.removingPercentEncoding ?? $0 },
                    database: database.removingPercentEncoding ?? database, sslMode: sslMode))
        }
        throw Invalid(reason: "expected sqlite:<path> or postgres://user:password@host:port/database")
    }

    /// The URL with any password replaced, safe for logs and `userapi config`.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "REDACTED"
        return components.string ?? "REDACTED"
    }
}
