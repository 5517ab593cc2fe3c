import Foundation
import Testing

@testable import UserAPI

@Suite("event loops")
struct EventLoopSizingTests {
    @Test(
        "the affinity mask of /proc/<pid>/status counts CPUs",
        arguments: [
            ("Name:\tuserapi\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n", 2),
            ("Cpus_allowed:\t00000000,00000000,00000000,00000004\n", 1),
            ("Cpus_allowed:\tffffffff,ffffffff\n", 64),
            ("Cpus_allowed:\tf0\n", 4),
        ])
    func affinityMask(status: String, cpus: Int) {
        #expect(EventLoopSizing.allowedCPUs(procStatus: status) == cpus)
    }

    @Test("no mask, or one that is not hex, counts as unknown")
    func unknownMask() {
        #expect(EventLoopSizing.allowedCPUs(procStatus: "Name:\tx\n") == nil)
        #expect(EventLoopSizing.allowedCPUs(procStatus: "Cpus_allowed:\t\n") == nil)
        #expect(EventLoopSizing.allowedCPUs(procStatus: "Cpus_allowed:\tzz\n") == nil)
    }

    @Test("loops: the smaller of NIO's core count (cgroup limits) and the CPUs the process may run on")
    func loopCount() {
        #expect(EventLoopSizing.loopCount(coreCount: 8, allowedCPUs: 2) == 2)
        #expect(EventLoopSizing.loopCount(coreCount: 2, allowedCPUs: 8) == 2)
        #expect(EventLoopSizing.loopCount(coreCount: 4, allowedCPUs: nil) == 4)
        #expect(EventLoopSizing.loopCount(coreCount: 4, allowedCPUs: 0) == 4)
    }

    /// The first CPU this test process may run on (taskset needs an allowed one).
    static var firstAllowedCPU: String? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
            let first = line.dropFirst("Cpus_allowed_list:".count).firstMatch(of: /\d+/)
        else { return nil }
        return String(first.output)
    }

    /// How many event-loop threads the server has (NIO names the shared group's `NIO-SGLTN-…`).
    static func loopThreads(of pid: pid_t) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.filter { task in
            let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
            return name.hasPrefix("NIO-SGLTN-")
        }.count
    }

    @Test(
        "pinned to one CPU with taskset, the server runs one event loop; NIO_SINGLETON_GROUP_LOOP_COUNT still wins",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset")),
        arguments: [nil, "3"] as [String?])
    func pinnedServer(override: String?) async throws {
        let cpu = try #require(Self.firstAllowedCPU)
        let dir = TempDir()
        var env = ["DATABASE_URL": "sqlite:\(dir.file("users.sqlite"))", "AUTH_TOKENS": "event-loop-test-token"]
        env["NIO_SINGLETON_GROUP_LOOP_COUNT"] = override
        let server = try ServerProcess(environment: env, launcher: ["/usr/bin/taskset", "-c", cpu])
        try await server.waitUntilListening()
        defer { server.signal(SIGKILL) }
        let expected = override.flatMap { Int($0) } ?? 1
        let starting = server.log.first { $0.contains(#""msg":"starting""#) } ?? ""
        #expect(starting.firstMatch(of: try Regex(#""event_loops":\#(expected)[,}]"#)) != nil, "\(starting)")
        #expect(Self.loopThreads(of: server.pid) == expected)
        let (body, _) = try await httpGet("\(server.baseURL)/healthz")
        #expect(String(decoding: body, as: UTF8.self) == #"{"status":"ok"}"#)
    }
}
