import ArgumentParser
import UserAPI

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration and where each value came from (secrets redacted).")

    @OptionGroup var flags: ConfigFlags

    @Option(help: "Output format: table, json or markdown (the table in docs/configuration.md).")
    var format: ConfigReport.Format = .table

    func run() async throws {
        let loaded = try await flags.load()
        say(ConfigReport.render(loaded, format: format), terminator: "")
    }
}

extension ConfigReport.Format: ExpressibleByArgument {}
