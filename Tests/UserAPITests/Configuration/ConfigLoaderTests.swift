import Foundation
import Testing

@testable import UserAPI

@Suite("Configuration loading")
struct ConfigLoaderTests {
    /// Loads as `userapi` would, except that the default `.env` file is one of the test's
    /// (never a developer's `config/.env` in the working directory).
    func load(
        flags: [String: String] = [:], env: [String: String] = [:], configFile: String? = nil, envFile: String? = nil,
        defaultEnvFile: String = "/nonexistent/userapi-test/config/.env", terminal: Bool = false
    ) async throws -> LoadedConfig {
        try await ConfigLoader.load(
            ConfigSources(
                flags: flags, environment: env, configFile: configFile, envFile: envFile, defaultEnvFile: defaultEnvFile,
                isTerminal: terminal))
    }

    func errors(_ body: () async throws -> LoadedConfig) async -> [ConfigurationError] {
        do {
            _ = try await body()
            Issue.record("expected invalid configuration")
            return []
        } catch let e as ConfigurationErrors {
            return e.errors
        } catch {
            Issue.record("unexpected \(error)")
            return []
        }
    }

    @Test("defaults apply when nothing is set")
    func defaults() async throws {
        let dir = TempDir()
        let loaded = try await load(envFile: nil)
        _ = dir
        #expect(loaded.config.http.host == "127.0.0.1")
        #expect(loaded.config.http.port == 8080)
        #expect(loaded.config.http.maxBodySize == 1 << 20)
        #expect(loaded.config.database.url == "sqlite:data/userapi.sqlite")
        #expect(loaded.config.shutdown.drainDelay == .seconds(5))
        #expect(loaded.config.shutdown.timeout == .seconds(20))
        #expect(loaded.config.log.format == .json)
        #expect(loaded.config.memory.mallocArenas == 2)
        #expect(loaded.origins.isEmpty)
    }

    @Test("log format defaults to text on a terminal")
    func terminalFormat() async throws {
        #expect(try await load(terminal: true).config.log.format == .text)
        #expect(try await load(env: ["LOG_FORMAT": "json"], terminal: true).config.log.format == .json)
    }

    @Test("precedence: flags over environment over config file over .env over defaults, each source reported")
    func precedence() async throws {
        let dir = TempDir()
        let yaml = dir.write(
            "config.yaml",
            """
            http:
              port: 7001
              max_body_size: 2MiB
            log:
              level: debug
            shutdown:
              drain_delay: 2s
            """)
        let dotenv = dir.write("app.env", "HTTP_PORT=7000\nLOG_LEVEL=error\nSHUTDOWN_TIMEOUT=3s\nINSTANCE_NAME=from-dotenv\n")
        let loaded = try await load(
            flags: ["http.port": "7003"], env: ["HTTP_PORT": "7002", "LOG_LEVEL": "warning"], configFile: yaml,
            envFile: dotenv)
        let c = loaded.config
        #expect(c.http.port == 7003)
        #expect(loaded.origins["http.port"] == "command line")
        #expect(c.log.level == .warning)
        #expect(loaded.origins["log.level"] == "environment variable LOG_LEVEL")
        #expect(c.http.maxBodySize == 2 << 20)
        #expect(loaded.origins["http.max_body_size"] == "config file \(yaml)")
        #expect(c.shutdown.drainDelay == .seconds(2))
        #expect(c.shutdown.timeout == .seconds(3))
        #expect(loaded.origins["shutdown.timeout"] == ".env file \(dotenv) (SHUTDOWN_TIMEOUT)")
        #expect(c.instanceName == "from-dotenv")
    }

    @Test("a JSON config file works like YAML; CONFIG_FILE and ENV_FILE name the files")
    func jsonAndEnvNames() async throws {
        let dir = TempDir()
        let json = dir.write("c.json", #"{"http":{"port":7100},"auth":{"protect_reads":true}}"#)
        let dotenv = dir.write("x.env", "DATABASE_URL=sqlite:/tmp/elsewhere.sqlite\n")
        let loaded = try await load(env: ["CONFIG_FILE": json, "ENV_FILE": dotenv])
        #expect(loaded.config.http.port == 7100)
        #expect(loaded.config.auth.protectReads)
        #expect(loaded.config.database.url == "sqlite:/tmp/elsewhere.sqlite")
    }

    @Test("invalid values fail with the key, the value, the source and what is allowed — all at once")
    func invalidValues() async {
        let errors = await errors {
            try await load(
                flags: ["http.port": "http"],
                env: [
                    "SHUTDOWN_DRAIN_DELAY": "forever", "LOG_LEVEL": "loud", "DATABASE_URL": "mysql://x",
                    "AUTH_PROTECT_READS": "maybe",
                ])
        }
        let byKey = Dictionary(uniqueKeysWithValues: errors.map { ($0.key, $0) })
        #expect(Set(byKey.keys) == ["http.port", "shutdown.drain_delay", "log.level", "database.url", "auth.protect_reads"])
        #expect(
            byKey["http.port"]?.description == #"http.port = "http" (from command line): expected a whole number from 0 to 65535"#
        )
        #expect(byKey["shutdown.drain_delay"]?.source == "environment variable SHUTDOWN_DRAIN_DELAY")
        #expect(byKey["log.level"]?.reason.contains("warning") == true)
        #expect(byKey["database.url"]?.reason.contains("postgres://") == true)
        // database.url can hold a password: its value is never echoed.
        #expect(byKey["database.url"]?.value == "REDACTED")
    }

    @Test(
        "durations and sizes accept the documented forms",
        arguments: [("500ms", 500), ("5s", 5000), ("1.5s", 1500), ("2m", 120_000), ("7", 7000)])
    func durations(text: String, millis: Int64) async throws {
        let loaded = try await load(env: ["SHUTDOWN_TIMEOUT": text])
        #expect(loaded.config.shutdown.timeout.milliseconds == millis)
    }

    @Test(arguments: [("1048576", 1_048_576), ("512KiB", 524_288), ("1MiB", 1_048_576), ("2Mi", 2_097_152), ("1MB", 1_000_000)])
    func sizes(text: String, bytes: Int) async throws {
        #expect(try await load(env: ["HTTP_MAX_BODY_SIZE": text]).config.http.maxBodySize == bytes)
    }

    @Test(
        "out-of-range values are refused",
        arguments: [
            "SHUTDOWN_TIMEOUT=-1s", "HTTP_MAX_BODY_SIZE=1GiB", "DATABASE_POOL_SIZE=0", "HTTP_PORT=70000",
            "MEMORY_MALLOC_ARENAS=65", "MEMORY_MALLOC_ARENAS=-1",
        ])
    func ranges(assignment: String) async {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        let errors = await errors { try await load(env: [parts[0]: parts[1]]) }
        #expect(errors.count == 1)
        // HTTP_MAX_BODY_SIZE names http.max_body_size: the error names the key.
        let key = parts[0].lowercased().replacingOccurrences(of: "_", with: ".", options: [], range: nil)
        #expect(errors.first.map { $0.key.replacingOccurrences(of: "_", with: ".") } == key)
    }

    @Test("cross-key rule: http.management_port must differ from http.port")
    func crossCheck() async {
        let errors = await errors { try await load(env: ["HTTP_PORT": "9000", "HTTP_MANAGEMENT_PORT": "9000"]) }
        #expect(errors.map(\.key) == ["http.management_port"])
    }

    @Test("a malformed or missing explicit file is an error; the default config/.env may be absent")
    func files() async {
        let dir = TempDir()
        let bad = dir.write("bad.yaml", "http: [unclosed")
        #expect(await !errors { try await load(configFile: bad) }.isEmpty)
        #expect(await !errors { try await load(configFile: dir.file("missing.yaml")) }.isEmpty)
        #expect(await !errors { try await load(envFile: dir.file("missing.env")) }.isEmpty)
        let scalarForMapping = dir.write("list.yaml", "http:\n  port: [1, 2]\n")
        #expect(await errors { try await load(configFile: scalarForMapping) }.map(\.key) == ["http.port"])
    }

    @Test("a config/.env present in the working directory is read when no .env file is named")
    func defaultEnvFile() async throws {
        let dir = TempDir()
        let file = dir.write(".env", "# local settings\nHTTP_PORT=8099\nSHUTDOWN_DRAIN_DELAY=2s\n")
        let loaded = try await load(env: ["SHUTDOWN_DRAIN_DELAY": "3s"], defaultEnvFile: file)
        #expect(loaded.config.http.port == 8099)
        #expect(loaded.origins["http.port"]?.contains(".env file") == true)
        #expect(loaded.config.shutdown.drainDelay == .seconds(3), "the environment wins over the .env file")
        #expect(try await load(defaultEnvFile: dir.file("absent.env")).config.http.port == 8080)
    }

    @Test("unknown keys in the config file are reported as warnings")
    func unknownKeys() async throws {
        let dir = TempDir()
        let yaml = dir.write("c.yaml", "http:\n  prot: 1\n  port: 8081\nfeature: true\n")
        let loaded = try await load(configFile: yaml)
        #expect(loaded.warnings.count == 2)
        #expect(loaded.warnings.contains { $0.contains("http.prot") })
        #expect(loaded.config.http.port == 8081)
    }

    @Test("OTEL_TRACES_EXPORTER=otlp turns tracing on unless OTEL_SDK_DISABLED")
    func tracing() async throws {
        #expect(try await load(env: ["OTEL_TRACES_EXPORTER": "otlp"]).config.tracing.enabled)
        #expect(try await !load(env: ["OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"]).config.tracing.enabled)
        #expect(try await !load().config.tracing.enabled)
    }

    @Test("the config report redacts secrets and names sources")
    func report() async throws {
        let loaded = try await load(
            env: ["AUTH_TOKENS": "supersecret1,supersecret2", "DATABASE_URL": "postgres://app:hunter2@db:5432/users"])
        for format in ConfigReport.Format.allCases where format != .markdown {
            let text = ConfigReport.render(loaded, format: format)
            #expect(!text.contains("supersecret"))
            #expect(!text.contains("hunter2"))
            #expect(text.contains("environment variable AUTH_TOKENS"))
            #expect(text.contains("db:5432"))
        }
        let json = try JSONSerialization.jsonObject(with: Data(ConfigReport.render(loaded, format: .json).utf8)) as? [String: Any]
        #expect((json?["http.port"] as? [String: String])?["source"] == "default")
    }
}

@Suite("Database URLs")
struct DatabaseURLTests {
    @Test func parses() throws {
        #expect(try DatabaseURL.parse("sqlite:data/u.sqlite") == .sqlite(path: "data/u.sqlite"))
        #expect(try DatabaseURL.parse("sqlite:///var/lib/u.sqlite") == .sqlite(path: "/var/lib/u.sqlite"))
        guard case .postgres(let pg) = try DatabaseURL.parse("postgres://app:p%40ss@db.internal:6543/users?sslmode=verify-full")
        else { Issue.record("not postgres"); return }
        #expect(pg.host == "db.internal")
        #expect(pg.port == 6543)
        #expect(pg.user == "app")
        #expect(pg.password == "p@ss")
        #expect(pg.database == "users")
        #expect(pg.sslMode == "verify-full")
    }

    @Test(arguments: ["sqlite:", "sqlite::memory:", "postgres://db:5432/", "postgres://db/users", "mysql://x", "users.db"])
    func rejects(url: String) {
        #expect(throws: DatabaseURL.Invalid.self) { try DatabaseURL.parse(url) }
    }

    @Test func redacts() {
        #expect(DatabaseURL.redacted("postgres://app:secret@db/users") == "postgres://app:REDACTED@db/users")
        #expect(DatabaseURL.redacted("sqlite:data/x.sqlite") == "sqlite:data/x.sqlite")
    }
}
