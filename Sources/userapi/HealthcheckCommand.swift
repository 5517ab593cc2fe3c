import ArgumentParser
import Foundation
import UserAPI

/// For container HEALTHCHECKs in images without curl: GET /readyz on the
/// server, exit 0 on 200 and 1 otherwise.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Probe a server's /readyz; exit 0 when ready, 1 otherwise.",
        discussion: """
            Without --url it probes the local server on the configured management port, or the API
            port when there is none (the same configuration sources as serve).
            """)

    @OptionGroup var flags: ConfigFlags

    @Option(help: "Full URL to probe, e.g. http://127.0.0.1:9090/readyz (overrides the configuration).")
    var url: String?
    @Option(help: "Path to probe.") var path = "/readyz"
    @Option(help: "Seconds to wait for the answer.") var timeout: Double = 3

    func validate() throws {
        if let url {
            guard let components = URLComponents(string: url), components.scheme == "http", components.host != nil else {
                throw ValidationError("--url must be an http:// URL with a host, e.g. http://127.0.0.1:8080/readyz")
            }
        }
        guard timeout > 0, timeout <= 300 else { throw ValidationError("--timeout must be between 0 and 300 seconds") }
    }

    func run() async throws {
        let host: String
        let port: Int
        var path = self.path
        if let url, let components = URLComponents(string: url), let urlHost = components.host {
            host = urlHost
            port = components.port ?? 80
            if !components.path.isEmpty { path = components.path + (components.query.map { "?" + $0 } ?? "") }
        } else {
            let config = try await flags.load().config
            // A server bound to every interface is reachable on loopback.
            host = ["0.0.0.0", "::", "[::]"].contains(config.http.host) ? "127.0.0.1" : config.http.host
            port = config.http.managementPort != 0 ? config.http.managementPort : config.http.port
        }
        do {
            let status = try HTTPProbe.get(host: host, port: port, path: path, timeout: timeout)
            say("\(host):\(port)\(path): \(status)")
            if status != 200 { throw ExitCode.failure }
        } catch let error as HTTPProbe.Failure {
            say("\(host):\(port)\(path): \(error.reason)")
            throw ExitCode.failure
        }
    }
}
