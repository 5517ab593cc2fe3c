import Foundation
import Synchronization
import Testing

/// The built `userapi` executable, run as a real process.
enum Executable {
    static var url: URL {
        if let path = ProcessInfo.processInfo.environment["USERAPI_BIN"] { return URL(fileURLWithPath: path) }
        // The test runner lives next to the products of the same build.
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = runner.deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("userapi")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: ".build/debug/userapi")
    }

    /// Runs a command to completion: exit status, stdout, stderr.
    static func run(_ arguments: [String], environment: [String: String] = [:], cwd: String? = nil) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.environment = baseEnvironment.merging(environment) { _, new in new }
        process.currentDirectoryURL = cwd.map { URL(fileURLWithPath: $0) } ?? neutralDirectory
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// A clean environment: only what a server needs, so the developer's own
    /// HTTP_PORT or DATABASE_URL cannot leak into a test.
    static var baseEnvironment: [String: String] {
        let keep = ["PATH", "HOME", "LANG", "TMPDIR"]
        var env = ProcessInfo.processInfo.environment.filter { keep.contains($0.key) }
        env["LOG_FORMAT"] = "json"
        return env
    }

    /// Processes run in an empty directory, so no config/.env of the
    /// developer's checkout is picked up.
    static let neutralDirectory: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("userapi-test-cwd")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()
}

/// A `userapi serve` process on a free port, with its log lines collected.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let output = LineBuffer()
    private(set) var port = 0

    /// Splits a byte stream into lines, safely from the pipe's reader thread.
    final class LineBuffer: Sendable {
        private let state = Mutex<(lines: [String], pending: String)>(([], ""))

        func append(_ data: Data) {
            state.withLock { s in
                s.pending += String(decoding: data, as: UTF8.self)
                var parts = s.pending.components(separatedBy: "\n")
                s.pending = parts.removeLast()
                s.lines += parts
            }
        }

        var lines: [String] { state.withLock { $0.lines } }
    }

    init(environment: [String: String], arguments: [String] = ["serve"], cwd: String? = nil) throws {
        process.executableURL = Executable.url
        process.arguments = arguments
        var env = Executable.baseEnvironment.merging(environment) { _, new in new }
        if env["HTTP_PORT"] == nil { env["HTTP_PORT"] = "0" }
        process.environment = env
        process.currentDirectoryURL = cwd.map { URL(fileURLWithPath: $0) } ?? Executable.neutralDirectory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            output.append(data)
        }
        try process.run()
    }

    var log: [String] { output.lines }

    /// Waits for the "listening" line and records the bound port.
    func waitUntilListening(timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in log where line.contains(#""msg":"listening""#) {
                if let match = line.firstMatch(of: /"port":(\d+)/), let p = Int(match.1) {
                    port = p
                    return
                }
            }
            if !process.isRunning {
                Issue.record("server exited early (\(process.terminationStatus)):\n\(log.joined(separator: "\n"))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("server did not start listening:\n\(log.joined(separator: "\n"))")
        throw CancellationError()
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for exit; returns the status, or nil on timeout (the process is then killed).
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}
