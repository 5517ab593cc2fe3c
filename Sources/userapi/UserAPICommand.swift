import ArgumentParser
import Foundation

@main
struct UserAPICommand: AsyncParsableCommand {

    static let configuration = CommandConfiguration(
        commandName: "userapi",
        abstract: "A users REST service: JSON over HTTP, embedded SQLite or PostgreSQL.",
        discussion: """
            Configuration comes from, highest first: command-line flags, environment variables \
            (HTTP_PORT, DATABASE_URL, AUTH_TOKENS, ...), a config file (--config or CONFIG_FILE, YAML or JSON), \
            a .env file (--env-file, ENV_FILE, or config/.env), then built-in defaults. \
            Run `userapi config` to see every key, its value and where it came from.
            """,
        version: VersionCommand.versionLine,
        subcommands: [
            ServeCommand.self, MigrateCommand.self, HealthcheckCommand.self, VersionCommand.self,
            ConfigCommand.self, DBCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}

/// Writes a line to standard output immediately (no stdio buffering), so
/// progress shows up as it happens even when piped, and nothing is lost if
/// the process is killed.
func say(_ text: String, terminator: String = "\n") {
    let bytes = Array((text + terminator).utf8)
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
