import Foundation
import Prometheus

/// The standard `process_*` metrics, read from /proc at scrape time.
final class ProcessMetrics: Sendable {
    private let residentMemory: Gauge
    private let virtualMemory: Gauge
    private let cpuSeconds: Gauge
    private let openFDs: Gauge
    private let maxFDs: Gauge
    private let startTime: Gauge

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ unit: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: .init(metricName: name, unitName: unit, helpText: help), labels: [])
        }
        residentMemory = gauge("process_resident_memory", "bytes", "Resident memory size in bytes.")
        virtualMemory = gauge("process_virtual_memory", "bytes", "Virtual memory size in bytes.")
        // A gauge holding a monotonically growing total: swift-prometheus counters only take integer steps.
        cpuSeconds = gauge("process_cpu_seconds", "total", "Total user and system CPU time spent in seconds.")
        openFDs = gauge("process_open_fds", "", "Number of open file descriptors.")
        maxFDs = gauge("process_max_fds", "", "Maximum number of open file descriptors.")
        startTime = gauge("process_start_time", "seconds", "Start time of the process since the Unix epoch in seconds.")
        startTime.set(Self.processStartTime() ?? Date().timeIntervalSince1970)
    }

    func update() {
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count >= 2, let vm = Double(fields[0]), let rss = Double(fields[1]) {
                virtualMemory.set(vm * pageSize)
                residentMemory.set(rss * pageSize)
            }
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
            cpuSeconds.set(user + system)
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openFDs.set(Double(fds.count))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            maxFDs.set(Double(limit.rlim_cur))
        }
    }

    /// Boot time plus the process's start tick from /proc/self/stat.
    static func processStartTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let procStat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let btimeLine = procStat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let bootTime = Double(btimeLine.dropFirst("btime ".count))
        else { return nil }
        // Fields after the command name; starttime is field 22 overall, i.e. index 19 here.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        return bootTime + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
