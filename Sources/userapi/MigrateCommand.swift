import ArgumentParser
import Logging
import UserAPI

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations, then exit.",
        discussion: """
            Safe to run repeatedly. On PostgreSQL, replicas may run it at once (an advisory lock orders them);
            on SQLite it waits up to database.sqlite.busy_timeout for another process to let go of the file.
            """)

    @OptionGroup var flags: ConfigFlags

    func run() async throws {
        let config = try await flags.load().config
        let logger = LoggingSetup.bootstrap(config)
        do {
            let store = try await StoreFactory.make(config, logger: logger, waitForLock: config.database.sqliteBusyTimeout)
            let report = try await withRunningStores([store]) { try await store.migrate() }
            say(
                report.applied.isEmpty
                    ? "schema is current (version \(report.current)) at \(store.location)"
                    : "applied migrations \(report.applied.map(String.init).joined(separator: ", ")); schema version \(report.current) at \(store.location)"
            )
        } catch {
            logger.critical("migration failed: \(error)")
            throw ExitCode.failure
        }
    }
}
