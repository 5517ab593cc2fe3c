import Foundation
import Logging

/// Every setting of the service, validated. Built by `ConfigLoader` from
/// flags, environment, config file, `.env` file and these defaults; tests
/// build it directly.
public struct AppConfig: Sendable {
    public struct HTTP: Sendable {
        /// 127.0.0.1 by default so a laptop run is not exposed; the container sets 0.0.0.0.
        public var host = "127.0.0.1"
        public var port = 8080
        public var maxBodySize = 1 << 20
        /// Connections idle between requests this long are closed.
        public var idleTimeout: Duration = .seconds(60)
        /// A request must arrive in full (head and body) within this of its first byte.
        public var requestTimeout: Duration = .seconds(30)
        /// Longest pause between two reads while a request is arriving.
        public var readTimeout: Duration = .seconds(10)
        /// Connections one client address may hold open (0 = no limit).
        public var maxConnectionsPerClient = 1024
        /// Requests processed at once before new ones get a fast 503; 0 = unlimited.
        public var maxInFlight = 1024
        /// Open connections accepted at once (each costs ~30 KB); more wait in
        /// the listen backlog. Bounds memory under a connection flood. 0 = unlimited.
        public var maxConnections = 4096
        /// A second listener for /healthz, /readyz and /metrics only (0 = none:
        /// they are on the API port).
        public var managementPort = 0
        public init() {}
    }

    public struct Database: Sendable {
        public enum TLSMode: String, Sendable, CaseIterable {
            case disable, require
            case verifyFull = "verify-full"
        }
        public var url = "sqlite:data/userapi.sqlite"
        public var passwordFile: String?
        public var poolSize = 10
        public var connectTimeout: Duration = .seconds(5)
        /// Attempts to reach PostgreSQL at start before giving up (each within `connectTimeout`).
        public var connectAttempts = 5
        public var statementTimeout: Duration = .seconds(5)
        /// Longest wait for a pooled PostgreSQL connection when all are in use.
        public var acquireTimeout: Duration = .seconds(1)
        /// A pooled PostgreSQL connection idle this long is closed. Not a
        /// configuration key; the tests shorten it.
        var idleConnectionTimeout: Duration = .seconds(10)
        public var tlsMode: TLSMode = .disable
        public var tlsCAFile: String?
        public var migrateOnStart = true
        public var sqliteSynchronous: SQLiteSettings.Synchronous = .full
        public var sqliteBusyTimeout: Duration = .seconds(5)
        public var sqliteReaders = 2
        public var sqliteCheckOnStart = false
        public var maxQueuedWrites = 1024
        public init() {}
    }

    public struct Auth: Sendable {
        /// Comma-separated plain tokens. Secret: never logged or printed.
        public var tokens: String?
        public var tokensFile: String?
        public var protectReads = true
        /// Failed authentications per client address and minute before it is refused (0 = no limit).
        public var failureLimit = 30
        public var reloadInterval: Duration = .seconds(5)
        public init() {}
    }

    public struct Log: Sendable {
        public enum Format: String, Sendable, CaseIterable {
            case text, json
        }
        public var level: Logger.Level = .info
        public var format: Format = .json
        public var access = true
        public init() {}
    }

    public struct Shutdown: Sendable {
        /// Time between SIGTERM and closing the listener: readiness is already
        /// 503, so load balancers stop sending new requests meanwhile.
        public var drainDelay: Duration = .seconds(5)
        /// Time in-flight requests get to finish once the listener is closed.
        public var timeout: Duration = .seconds(20)
        public init() {}
    }

    public struct Memory: Sendable {
        /// Once ready, hand the pages of the binary touched only during start-up
        /// back to the kernel (see MemoryTrim).
        public var releaseStartupPages = true
        /// Upper bound on glibc malloc arenas (0 = glibc's default, 8 per
        /// core). Every thread that allocates (event loops, Swift's task
        /// pool, SQLite's thread pool) otherwise gets an arena of its own,
        /// and each keeps freed memory for reuse (see MemoryTrim).
        public var mallocArenas = 2
        public init() {}
    }

    public struct Metrics: Sendable {
        public var enabled = true
        public init() {}
    }

    public struct Tracing: Sendable {
        /// Off unless configured: `tracing.enabled=true` or the standard
        /// `OTEL_TRACES_EXPORTER=otlp`. Exporter details come from `OTEL_*`.
        public var enabled = false
        public init() {}
    }

    public var http = HTTP()
    public var database = Database()
    public var auth = Auth()
    public var log = Log()
    public var shutdown = Shutdown()
    public var metrics = Metrics()
    public var memory = Memory()
    public var tracing = Tracing()
    /// The users feed (`GET /users/events`, `GET /users/watch`).
    public var events = EventFeed.Settings()
    /// Host or pod name reported by `/` and in logs.
    public var instanceName = AppConfig.defaultInstanceName()

    public init() {}

    static func defaultInstanceName() -> String {
        if let name = ProcessInfo.processInfo.environment["HOSTNAME"], !name.isEmpty { return name }
        return ProcessInfo.processInfo.hostName
    }
}

extension Duration {
    /// Whole and fractional seconds, for settings and metrics.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}

/// Configuration appears in logs only through `userapi config` (which
/// redacts secrets): printing it anywhere else, as a library's debug log may,
/// shows no values at all.
extension AppConfig: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "AppConfig(see `userapi config`)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
