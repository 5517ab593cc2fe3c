import ArgumentParser
import Foundation
import Logging
import UserAPI

/// Flags shared by every command that reads the service configuration.
/// Declared without defaults so that, when absent, lower sources apply.
struct ConfigFlags: ParsableArguments {
    @Option(name: .customLong("config"), help: "Config file (YAML, or JSON by .json extension). Env: CONFIG_FILE.")
    var configFile: String?

    @Option(name: .customLong("env-file"), help: "A .env file of KEY=value lines. Default: config/.env if present.")
    var envFile: String?

    @Option(help: "Listen address (http.host).")
    var host: String?

    @Option(help: "Listen port (http.port).")
    var port: String?

    @Option(name: .customLong("database-url"), help: "sqlite:<path> or postgres://... (database.url).")
    var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "Log level (log.level).")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "text or json (log.format).")
    var logFormat: String?

    @Option(
        name: .customLong("set"), parsing: .singleValue,
        help: ArgumentHelp("Any configuration key, e.g. --set shutdown.drain_delay=2s.", valueName: "key=value"))
    var settings: [String] = []

    func sources() throws -> ConfigSources {
        var flags: [String: String] = [:]
        if let host { flags["http.host"] = host }
        if let port { flags["http.port"] = port }
        if let databaseURL { flags["database.url"] = databaseURL }
        if let logLevel { flags["log.level"] = logLevel }
        if let logFormat { flags["log.format"] = logFormat }
        for setting in settings {
            guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
                throw ValidationError("--set expects key=value, got \"\(setting)\"")
            }
            flags[String(setting[..<eq])] = String(setting[setting.index(after: eq)...])
        }
        return ConfigSources(flags: flags, configFile: configFile, envFile: envFile)
    }

    /// Loads and validates; on invalid configuration prints every problem and
    /// exits 78 (EX_CONFIG) before anything starts.
    func load() async throws -> LoadedConfig {
        do {
            return try await ConfigLoader.load(try sources())
        } catch let errors as ConfigurationErrors {
            FileHandle.standardError.write(Data("userapi: \(errors)\n".utf8))
            throw ExitCode(78)
        }
    }
}

/// Process-wide logging: one line per event on stdout, text or JSON.
enum LoggingSetup {
    static func bootstrap(_ config: AppConfig, metadataProvider: Logger.MetadataProvider? = nil) -> Logger {
        let format: StdoutLogHandler.Format = config.log.format == .json ? .json : .text
        let level = config.log.level
        LoggingSystem.bootstrap(
            { label, provider in
                StdoutLogHandler(label: label, format: format, level: level, metadataProvider: provider)
            }, metadataProvider: metadataProvider)
        var logger = Logger(label: "userapi")
        logger[metadataKey: "instance"] = .string(config.instanceName)
        return logger
    }
}
