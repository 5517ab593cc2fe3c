import Configuration
import Foundation
import SystemPackage
import Yams

/// What the process was started with; `ConfigLoader` turns it into an `AppConfig`.
public struct ConfigSources: Sendable {
    /// Values from command-line flags, by configuration key (`http.port`).
    public var flags: [String: String]
    public var environment: [String: String]
    /// `--config`; otherwise `CONFIG_FILE` from the environment.
    public var configFile: String?
    /// `--env-file`; otherwise `ENV_FILE`, otherwise `defaultEnvFile` if it exists.
    public var envFile: String?
    /// The `.env` file read when present and none is named: `config/.env` in the working directory.
    public var defaultEnvFile: String
    /// Whether standard output is a terminal (picks the default log format).
    public var isTerminal: Bool

    public init(
        flags: [String: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment,
        configFile: String? = nil, envFile: String? = nil, defaultEnvFile: String = "config/.env",
        isTerminal: Bool = isatty(STDOUT_FILENO) == 1
    ) {
        self.defaultEnvFile = defaultEnvFile
        self.flags = flags
        self.environment = environment
        self.configFile = configFile
        self.envFile = envFile
        self.isTerminal = isTerminal
    }
}

/// One invalid setting: which key, the offending value (redacted when the
/// key is secret), where it came from and what is allowed.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var value: String?
    public var source: String?
    public var reason: String

    public var description: String {
        var text = key
        if let value { text += " = \"\(value)\"" }
        if let source { text += " (from \(source))" }
        return text + ": " + reason
    }
}

/// All invalid settings found while loading, reported together.
public struct ConfigurationErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigurationError]
    public var description: String {
        "invalid configuration:\n" + errors.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// The effective configuration and where each value came from.
public struct LoadedConfig: Sendable {
    public var config: AppConfig
    /// Source of every key that was not left at its default.
    public var origins: [String: String]
    /// Non-fatal findings, e.g. unknown keys in the config file.
    public var warnings: [String]
}

public enum ConfigLoader {
    private struct Source {
        let provider: any ConfigProvider
        let describe: @Sendable (String) -> String
    }

    /// Reads every known key from the sources, highest first: flags,
    /// environment, config file, `.env` file; then the built-in default.
    public static func load(_ sources: ConfigSources) async throws -> LoadedConfig {
        var warnings: [String] = []
        var chain: [Source] = [
            Source(
                provider: InMemoryProvider(
                    name: "flags",
                    values: Dictionary(
                        uniqueKeysWithValues: sources.flags.map {
                            (AbsoluteConfigKey(stringLiteral: $0.key), ConfigValue(.string($0.value), isSecret: false))
                        }
                    )),
                describe: { _ in "command line" }),
            Source(
                provider: EnvironmentVariablesProvider(environmentVariables: sources.environment),
                describe: { "environment variable \($0)" }),
        ]
        if let path = sources.configFile ?? sources.environment["CONFIG_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do {
                let provider: any ConfigProvider =
                    path.lowercased().hasSuffix(".json")
                    ? try await FileProvider<JSONSnapshot>(filePath: FilePath(path))
                    : try await FileProvider<YAMLSnapshot>(filePath: FilePath(path))
                chain.append(Source(provider: provider, describe: { _ in "config file \(path)" }))
                warnings += unknownKeys(inConfigFile: path).map { "config file \(path): unknown key \($0) is ignored" }
            } catch {
                throw ConfigurationErrors(errors: [
                    ConfigurationError(
                        key: "config file", value: path, source: nil,
                        reason: "cannot be read as \(path.lowercased().hasSuffix(".json") ? "JSON" : "YAML"): \(error)")
                ])
            }
        }
        let explicitEnvFile = sources.envFile ?? sources.environment["ENV_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        let envFile = explicitEnvFile ?? sources.defaultEnvFile
        do {
            let provider = try await EnvironmentVariablesProvider(
                environmentFilePath: FilePath(envFile), allowMissing: explicitEnvFile == nil)
            chain.append(Source(provider: provider, describe: { ".env file \(envFile) (\($0))" }))
        } catch {
            throw ConfigurationErrors(errors: [
                ConfigurationError(key: "env file", value: envFile, source: nil, reason: "cannot be read: \(error)")
            ])
        }

        var config = AppConfig()
        var origins: [String: String] = [:]
        var errors: [ConfigurationError] = []
        for option in ConfigOption.all {
            let key = AbsoluteConfigKey(stringLiteral: option.key)
            for source in chain {
                let found: (String, String)?
                do {
                    found = try rawValue(of: key, in: source.provider)
                } catch {
                    errors.append(
                        ConfigurationError(
                            key: option.key, value: nil, source: source.describe(option.key),
                            reason: "must be a single value, not a list or a mapping"))
                    break
                }
                guard let (raw, encodedKey) = found else { continue }
                do {
                    try option.apply(&config, raw)
                    origins[option.key] = source.describe(encodedKey)
                } catch {
                    errors.append(
                        ConfigurationError(
                            key: option.key, value: option.secret ? "REDACTED" : raw,
                            source: source.describe(encodedKey), reason: error.reason))
                }
                break
            }
        }
        if origins["log.format"] == nil { config.log.format = sources.isTerminal ? .text : .json }
        if origins["tracing.enabled"] == nil {
            let exporter = sources.environment["OTEL_TRACES_EXPORTER"]?.lowercased()
            let disabled = sources.environment["OTEL_SDK_DISABLED"]?.lowercased() == "true"
            if exporter == "otlp", !disabled {
                config.tracing.enabled = true
                origins["tracing.enabled"] = "environment variable OTEL_TRACES_EXPORTER"
            }
        }
        errors += crossChecks(config)
        guard errors.isEmpty else { throw ConfigurationErrors(errors: errors) }
        return LoadedConfig(config: config, origins: origins, warnings: warnings)
    }

    /// Rules that involve more than one key.
    static func crossChecks(_ config: AppConfig) -> [ConfigurationError] {
        var errors: [ConfigurationError] = []
        if config.http.managementPort != 0, config.http.managementPort == config.http.port {
            errors.append(
                ConfigurationError(
                    key: "http.management_port", value: "\(config.http.managementPort)", source: nil,
                    reason: "must differ from http.port (use 0 to serve probes and metrics on the API port)"))
        }
        return errors
    }

    /// The value of `key` in `provider` as text, and the provider's own name
    /// for the key (e.g. `HTTP_PORT`), or nil when the provider lacks it.
    private static func rawValue(of key: AbsoluteConfigKey, in provider: any ConfigProvider) throws -> (String, String)? {
        var firstError: (any Error)?
        for type in [ConfigType.string, .int, .double, .bool, .stringArray] {
            do {
                let result = try provider.value(forKey: key, type: type)
                guard let value = result.value else { return nil }
                switch value.content {
                case .string(let s): return (s, result.encodedKey)
                case .int(let i): return (String(i), result.encodedKey)
                case .double(let d): return (String(d), result.encodedKey)
                case .bool(let b): return (String(b), result.encodedKey)
                case .stringArray(let a): return (a.joined(separator: ","), result.encodedKey)
                default: continue
                }
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return nil
    }

    /// Keys present in a YAML/JSON config file that no option reads: most
    /// likely typos, so they are reported instead of silently ignored.
    static func unknownKeys(inConfigFile path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let document = try? Yams.load(yaml: text)  // YAML is a superset of JSON
        else { return [] }
        var keys: [String] = []
        func walk(_ node: Any, _ prefix: String) {
            if let map = node as? [String: Any] {
                for (k, v) in map { walk(v, prefix.isEmpty ? k : "\(prefix).\(k)") }
            } else if !prefix.isEmpty {
                keys.append(prefix)
            }
        }
        walk(document as Any, "")
        let known = Set(ConfigOption.all.map(\.key))
        return keys.filter { !known.contains($0) }.sorted()
    }
}
