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

    /// Runs a command to completion: exit code (minus the signal if one ended it), stdout, stderr.
    static func run(_ arguments: [String], environment: [String: String] = [:], cwd: String? = nil) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        try runChild(
            url.path, arguments, environment: baseEnvironment.merging(environment) { _, new in new },
            cwd: cwd ?? neutralDirectory.path)
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
final class ServerProcess: Sendable {
    private let process: ChildProcess
    private let output = LineBuffer()
    private let port_ = Mutex(0)
    var port: Int { port_.withLock { $0 } }

    /// Splits a byte stream into lines, safely from the pipe's reader thread.
    final class LineBuffer: Sendable {
        private let state = Mutex<(lines: [String], pending: [UInt8])>(([], []))

        func append(_ data: [UInt8]) {
            state.withLock { s in
                s.pending += data
                while let newline = s.pending.firstIndex(of: UInt8(ascii: "\n")) {
                    s.lines.append(String(decoding: s.pending[..<newline], as: UTF8.self))
                    s.pending.removeSubrange(...newline)
                }
            }
        }

        var lines: [String] { state.withLock { $0.lines } }
    }

    /// `launcher`: a command that runs the server, e.g. `["/usr/bin/taskset", "-c", "0"]`.
    init(
        environment: [String: String], arguments: [String] = ["serve"], cwd: String? = nil, launcher: [String] = []
    ) throws {
        var env = Executable.baseEnvironment.merging(environment) { _, new in new }
        if env["HTTP_PORT"] == nil { env["HTTP_PORT"] = "0" }
        let output = self.output
        let pipe = try PipeReader { output.append($0) }
        defer { pipe.closeWriteEnd() }
        process = try ChildProcess(
            path: launcher.first ?? Executable.url.path,
            arguments: launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [Executable.url.path] + arguments,
            environment: env,
            cwd: cwd ?? Executable.neutralDirectory.path, stdout: pipe.writeEnd, stderr: pipe.writeEnd)
    }

    var log: [String] { output.lines }

    var pid: pid_t { process.pid }

    var isRunning: Bool { process.isRunning }

    /// Waits for the "listening" line and records the bound port.
    func waitUntilListening(timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in log where line.contains(#""msg":"listening""#) {
                if let match = line.firstMatch(of: /"port":(\d+)/), let p = Int(match.1) {
                    port_.withLock { $0 = p }
                    return
                }
            }
            if !process.isRunning {
                Issue.record("server exited early (\(process.waitUntilExit())):\n\(log.joined(separator: "\n"))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("server did not start listening:\n\(log.joined(separator: "\n"))")
        throw CancellationError()
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    func signal(_ sig: Int32) { process.signal(sig) }

    /// Waits for exit; returns the exit code (minus the signal if one ended
    /// it), or nil on timeout (the process is then killed).
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.signal(SIGKILL)
                process.waitUntilExit()
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            process.signal(SIGKILL)
            process.waitUntilExit()
        }
    }
}
