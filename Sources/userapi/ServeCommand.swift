import ArgumentParser
import Foundation
import Logging
import OTel
import ServiceLifecycle
import UserAPI

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the HTTP server (the default command).")

    @OptionGroup var flags: ConfigFlags

    func run() async throws {
        let eventLoops = EventLoopSizing.configure()
        let loaded = try await flags.load()
        let config = loaded.config
        var extraServices: [any Service] = []
        var metadataProvider: Logger.MetadataProvider?
        if config.tracing.enabled {
            extraServices.append(try Tracing.bootstrap())
            metadataProvider = OTel.makeLoggingMetadataProvider()
        }
        let logger = LoggingSetup.bootstrap(config, metadataProvider: metadataProvider)
        for warning in loaded.warnings { logger.warning("config: \(warning)") }
        logger.info(
            "starting",
            metadata: [
                "version": .string(BuildInfo.version), "commit": .string(BuildInfo.commit),
                "tracing": .stringConvertible(config.tracing.enabled),
                "event_loops": .stringConvertible(eventLoops),
            ])
        do {
            let app = try await buildApplication(config, logger: logger)
            try await ServerRunner.run(app, extraServices: extraServices, logger: logger)
        } catch let error as ConfigurationError {
            logger.critical("invalid configuration: \(error)")
            throw ExitCode(78)
        } catch let error as DatabaseInUse {
            logger.critical("storage: \(error)")
            throw ExitCode(75)  // EX_TEMPFAIL: it can start once the other process has stopped
        } catch StoreError.unavailable(let reason) {
            logger.critical("storage: \(reason)")
            throw ExitCode(74)  // EX_IOERR
        } catch {
            logger.critical("stopped by an error: \(error)")
            throw ExitCode.failure
        }
    }
}

enum Tracing {
    /// OTLP/HTTP trace export configured by the standard OTEL_* variables
    /// (endpoint, headers, sampler, service name); metrics and logs stay on
    /// Prometheus and stdout.
    static func bootstrap() throws -> some Service {
        var configuration = OTel.Configuration.default
        configuration.serviceName = "userapi"
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        return try OTel.bootstrap(configuration: configuration)
    }
}
