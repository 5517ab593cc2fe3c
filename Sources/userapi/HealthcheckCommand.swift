import ArgumentParser
import Foundation
import UserAPI

/// For container HEALTHCHECKs in images without curl: GET /readyz on the
/// local server, exit 0 on 200 and 1 otherwise.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck", abstract: "Probe the local server's /readyz; exit 0 when ready, 1 otherwise.")

    @OptionGroup var flags: ConfigFlags

    @Option(help: "Path to probe.") var path = "/readyz"
    @Option(help: "Seconds to wait for the answer.") var timeout: Double = 3

    func run() async throws {
        let config = try await flags.load().config
        // A server bound to every interface is reachable on loopback.
        let host = ["0.0.0.0", "::", "[::]"].contains(config.http.host) ? "127.0.0.1" : config.http.host
        do {
            let status = try HTTPProbe.get(host: host, port: config.http.port, path: path, timeout: timeout)
            say("\(path): \(status)")
            if status != 200 { throw ExitCode.failure }
        } catch let error as HTTPProbe.Failure {
            say("\(path): \(error.reason)")
            throw ExitCode.failure
        }
    }
}
