import ArgumentParser
import Foundation
import Logging
import UserAPI

struct DBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Database maintenance.",
        subcommands: [DBCopyCommand.self, DBBackupCommand.self, DBRestoreCommand.self])
}

struct DBCopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy all users between databases, e.g. from the embedded SQLite file to PostgreSQL.",
        discussion: """
            Upserts by id and keeps the newer version of a user present on both sides, so it can be
            re-run after an interruption. Migrates both schemas first. Stop writes to the source (or
            scale the service to zero) for a consistent copy. Exits 1 if the final counts differ.
            Example: userapi db copy --from sqlite:data/userapi.sqlite --to postgres://userapi@db:5432/userapi
            Passwords can come from PGPASSWORD instead of the URL.
            """)

    @Option(help: "Source database URL.") var from: String
    @Option(help: "Target database URL.") var to: String
    @Option(help: "Users per batch.") var batchSize: Int = 500

    func validate() throws {
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
        guard from != to else { throw ValidationError("--from and --to name the same database") }
        for (name, url) in [("--from", from), ("--to", to)] {
            do {
                _ = try DatabaseURL.parse(url)
            } catch {
                throw ValidationError("\(name): \(error.reason)")
            }
        }
    }

    func run() async throws {
        var config = AppConfig()
        config.log.level = .warning
        let logger = LoggingSetup.bootstrap(config)
        func store(_ url: String) async throws -> any UserStore {
            var c = config
            c.database.url = Self.withEnvironmentPassword(url)
            c.database.statementTimeout = .seconds(60)
            return try await StoreFactory.make(c, logger: logger, waitForLock: c.database.sqliteBusyTimeout)
        }
        do {
            let source = try await store(from)
            let target: any UserStore
            do {
                target = try await store(to)
            } catch {
                await source.shutdown()
                throw error
            }
            let batchSize = self.batchSize
            let report = try await withRunningStores([source, target]) {
                _ = try await source.migrate()
                _ = try await target.migrate()
                say("copying from \(source.location) to \(target.location)")
                return try await StoreCopier.copy(from: source, to: target, batchSize: batchSize) { read, total, written in
                    say("  \(read)/\(total) read, \(written) written")
                }
            }
            say(
                "done: \(report.read) read, \(report.written) written; source has \(report.sourceCount), target has \(report.targetCount)"
            )
            guard report.sourceCount == report.targetCount else {
                say(
                    "count check FAILED: the target has \(report.targetCount) users, the source \(report.sourceCount) "
                        + "(users existing only in the target, or writes to the source during the copy)")
                throw ExitCode.failure
            }
            say("count check passed")
        } catch let conflict as ImportConflict {
            say("copy stopped: user \(conflict.id) collides with a different user in the target (\(conflict.error))")
            throw ExitCode.failure
        } catch let exit as ExitCode {
            throw exit
        } catch {
            say("copy failed: \(error)")
            throw ExitCode.failure
        }
    }

    /// Inserts PGPASSWORD into a postgres URL that has none, so the password
    /// need not appear on the command line (and in `ps`).
    static func withEnvironmentPassword(_ url: String) -> String {
        guard url.hasPrefix("postgres"), let password = ProcessInfo.processInfo.environment["PGPASSWORD"],
            var components = URLComponents(string: url), components.password == nil
        else { return url }
        components.password = password
        return components.string ?? url
    }
}

/// The SQLite file named by `database.url`, or exit 64 naming what is configured instead.
private func sqlitePath(_ config: AppConfig, command: String) throws -> String {
    guard case .sqlite(let path) = try? DatabaseURL.parse(config.database.url) else {
        say(
            "db \(command) works on the embedded SQLite database; database.url names another backend (on PostgreSQL use pg_dump or the provider's snapshots)"
        )
        throw ExitCode(64)
    }
    return path
}

struct DBBackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent copy of the SQLite database to a file while the server runs.",
        discussion: """
            Uses SQLite's online backup API: the copy is one read transaction, taken beside a
            running server without stopping its writes. The copy is checked with PRAGMA
            integrity_check, flushed to disk, then renamed over <file>. Exits 1 on failure.
            Example: userapi db backup /backup/userapi-$(date -u +%Y%m%dT%H%M%SZ).sqlite
            """)

    @OptionGroup var flags: ConfigFlags
    @Argument(help: "Where to write the copy.") var file: String

    func run() async throws {
        let config = try await flags.load().config
        let path = try sqlitePath(config, command: "backup")
        do {
            let report = try SQLiteBackup.backup(database: path, to: file)
            say("backup of \(path) written to \(file): \(report)")
        } catch {
            say("backup failed: \(error)")
            throw ExitCode.failure
        }
    }
}

struct DBRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace the SQLite database with a backup (the server must be stopped).",
        discussion: """
            Checks the backup with PRAGMA integrity_check, takes the database's file lock (exit 75
            while a server holds it), copies the backup in and checks the result. Migrations
            newer than the backup run on the next start or with userapi migrate.
            Example: userapi db restore /backup/userapi-20261203T020000Z.sqlite
            """)

    @OptionGroup var flags: ConfigFlags
    @Argument(help: "The backup file to restore.") var file: String

    func run() async throws {
        let config = try await flags.load().config
        let path = try sqlitePath(config, command: "restore")
        do {
            let report = try await SQLiteBackup.restore(from: file, database: path)
            say("restored \(path) from \(file): \(report)")
        } catch let busy as DatabaseInUse {
            say("restore refused: \(busy)")
            throw ExitCode(75)
        } catch {
            say("restore failed: \(error)")
            throw ExitCode.failure
        }
    }
}
