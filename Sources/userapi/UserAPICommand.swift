import ArgumentParser

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
        subcommands: [ServeCommand.self, MigrateCommand.self, HealthcheckCommand.self, VersionCommand.self,
            ConfigCommand.self, DBCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
