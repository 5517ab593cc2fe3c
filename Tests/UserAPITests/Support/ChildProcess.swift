import CTestSpawn
import Foundation
import Synchronization

/// A child process for the tests, started with posix_spawn (see CTestSpawn.h
/// for why not Foundation's Process). Output is read by plain threads doing
/// blocking reads; exit is observed with waitpid. No libdispatch source is
/// involved (the semaphore is a plain futex wait).
final class ChildProcess: Sendable {
    struct SpawnError: Error, CustomStringConvertible {
        let path: String
        let errno: Int32
        var description: String { "cannot start \(path): \(String(cString: strerror(errno)))" }
    }

    let pid: pid_t
    /// The raw wait status once the child has been reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `path`; `stdout` and `stderr` are descriptors the child writes to
    /// (the caller closes its copies afterwards).
    init(path: String, arguments: [String], environment: [String: String], cwd: String?, stdout: Int32, stderr: Int32)
        throws
    {
        let argv = [path] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStrings(argv) { argv in
            withCStrings(envp) { envp in
                userapi_test_spawn(&pid, path, argv, envp, cwd, stdout, stderr)
            }
        }
        guard rc == 0 else { throw SpawnError(path: path, errno: rc) }
        self.pid = pid
    }

    /// Whether the child is still running (reaps it when it has exited).
    var isRunning: Bool {
        reaped.withLock { status in
            if status != nil { return false }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid { status = raw }
            return result == 0
        }
    }

    /// Blocks until the child exits. Returns its exit code, or minus the
    /// signal that ended it.
    @discardableResult
    func waitUntilExit() -> Int32 {
        let raw = reaped.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            status = raw
            return raw
        }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : -signal
    }

    func signal(_ sig: Int32) {
        // Never signal a reaped pid: the number may belong to another process by now.
        reaped.withLock { status in
            if status == nil { _ = kill(pid, sig) }
        }
    }
}

/// A pipe whose read end is drained by a thread of its own until end-of-file.
final class PipeReader: Sendable {
    let writeEnd: Int32
    private let collected = Collected()

    private final class Collected: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
    }

    /// `onData` sees each chunk as it arrives (from the reader thread).
    init(onData: @escaping @Sendable ([UInt8]) -> Void = { _ in }) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ChildProcess.SpawnError(path: "pipe", errno: errno) }
        let readEnd = fds[0]
        writeEnd = fds[1]
        let thread = Thread { [collected] in
            var buffer = [UInt8](repeating: 0, count: 16384)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                let chunk = Array(buffer[..<count])
                collected.bytes.withLock { $0 += chunk }
                onData(chunk)
            }
            close(readEnd)
            collected.done.signal()
        }
        thread.start()
    }

    /// Closes the parent's write end: call once the child has been started.
    func closeWriteEnd() { close(writeEnd) }

    /// Waits for end-of-file and returns everything read.
    func finish() -> String {
        collected.done.wait()
        collected.done.signal()
        return String(decoding: collected.bytes.withLock { $0 }, as: UTF8.self)
    }
}

/// Runs a command to completion: exit code (minus the signal if one ended
/// it), stdout, stderr.
func runChild(_ path: String, _ arguments: [String], environment: [String: String], cwd: String?) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let out = try PipeReader()
    let err = try PipeReader()
    let child: ChildProcess
    do {
        child = try ChildProcess(
            path: path, arguments: arguments, environment: environment, cwd: cwd, stdout: out.writeEnd,
            stderr: err.writeEnd)
    } catch {
        out.closeWriteEnd()
        err.closeWriteEnd()
        throw error
    }
    out.closeWriteEnd()
    err.closeWriteEnd()
    let stdout = out.finish()
    let stderr = err.finish()
    return (child.waitUntilExit(), stdout, stderr)
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
