import ArgumentParser
import UserAPI

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the build stamp.")

    static var versionLine: String { "userapi \(BuildInfo.version) (commit \(BuildInfo.commit), built \(BuildInfo.built))" }

    @Flag(help: "Print JSON.") var json = false

    func run() {
        if json {
            say("{\"version\":\"\(BuildInfo.version)\",\"commit\":\"\(BuildInfo.commit)\",\"built\":\"\(BuildInfo.built)\"}")
        } else {
            say(Self.versionLine)
        }
    }
}
