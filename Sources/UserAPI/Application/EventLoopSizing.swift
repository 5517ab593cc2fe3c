import Foundation
import NIOCore

/// How many event loops the server runs: one per CPU the process may use.
///
/// NIO sizes its shared event-loop group by `System.coreCount`, which honours
/// a cgroup CPU quota and cpuset (a Kubernetes CPU limit, `--cpuset-cpus`) but
/// not the process's own CPU affinity (`taskset`, `numactl`, a parent that
/// pinned itself). With more loops than CPUs they take turns on a core, and a
/// request that arrives on the waiting loop waits for the other one's time
/// slice, which shows as a higher tail latency on a pinned core.
/// NIO's own `NIO_SINGLETON_GROUP_LOOP_COUNT`, when set, wins.
public enum EventLoopSizing {
    static let overrideVariable = "NIO_SINGLETON_GROUP_LOOP_COUNT"

    /// Sizes NIO's shared group; call before anything uses it (first thing in
    /// `serve`). Returns the number of loops the group will have.
    @discardableResult
    public static func configure() -> Int {
        if ProcessInfo.processInfo.environment[overrideVariable] == nil,
            let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        {
            // System.coreCount reads the cgroup files on every call: once is enough.
            let cores = System.coreCount
            let loops = loopCount(coreCount: cores, allowedCPUs: allowedCPUs(procStatus: status))
            if loops != cores { NIOSingletons.groupLoopCountSuggestion = loops }
        }
        return NIOSingletons.groupLoopCountSuggestion
    }

    static func loopCount(coreCount: Int, allowedCPUs: Int?) -> Int {
        guard let allowedCPUs, allowedCPUs > 0 else { return coreCount }
        return max(1, min(coreCount, allowedCPUs))
    }

    /// The number of CPUs in the `Cpus_allowed:` mask of a `/proc/<pid>/status`
    /// text (comma-separated 32-bit hex words), or nil if there is none.
    static func allowedCPUs(procStatus: String) -> Int? {
        for line in procStatus.split(separator: "\n") where line.hasPrefix("Cpus_allowed:") {
            let mask = line.dropFirst("Cpus_allowed:".count).filter { !$0.isWhitespace && $0 != "," }
            guard !mask.isEmpty else { return nil }
            var count = 0
            for digit in mask {
                guard let value = digit.hexDigitValue else { return nil }
                count += value.nonzeroBitCount
            }
            return count
        }
        return nil
    }
}
