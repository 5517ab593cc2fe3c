import Dispatch
import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The SQLite store's threads yield to request handling when the CPU is short.
///
/// Reads and writes run on threads of their own (`SQLiteReaderPool`, the
/// writer), which the kernel schedules beside the event loops and the task
/// pool. Under a flood of requests those threads took enough CPU from the
/// task pool, which accepts connections in Hummingbird, that the overload
/// drill's liveness probe, sent as 2000 connections arrive, waited 2.0-2.5 s
/// (four runs). At nice +5 it waited 1.0-1.6 s (four runs) while as many
/// writes committed; `SCHED_BATCH` alone (1.9-2.1 s) and a longer listen
/// backlog (3.5-4.5 s) did not help. Niceness changes nothing while a core is
/// free.
///
/// Caveat: Linux threads inherit the nice value of the thread that starts
/// them, and libdispatch starts a task-pool thread from whichever thread
/// enqueues work when none is idle, so a storage thread resuming a caller
/// can start a task-pool thread at +5. Not seen in a check of the server's
/// threads after bursts of load with idle gaps; such a thread would only
/// lose out under contention.
enum StorageThreads {
    /// Added to the process's nice value for every storage thread.
    static let niceness: Int32 = 5

    /// Lowers the priority of each of the `threads` threads of `pool`.
    static func lowerPriority(of pool: NIOThreadPool, threads: Int) async throws {
        #if os(Linux)
            _ = try await onEachThread(of: pool, threads: threads) { lowerCallingThread(by: niceness) }
        #endif
    }

    /// Adds `niceness` to the nice value of the calling thread only.
    static func lowerCallingThread(by niceness: Int32) {
        #if os(Linux)
            // On Linux the nice value belongs to the thread, and PRIO_PROCESS
            // with id 0 means the calling thread (kernel/sys.c), not the process.
            let which = __priority_which_t(PRIO_PROCESS.rawValue)
            errno = 0
            let current = getpriority(which, 0)
            if errno == 0 { _ = setpriority(which, 0, current + niceness) }
        #endif
    }

    /// Runs `body` once on each of the `threads` threads of `pool`: one job per
    /// thread, each held until all have started, so no thread takes two.
    static func onEachThread<T: Sendable>(
        of pool: NIOThreadPool, threads: Int, _ body: @escaping @Sendable () -> T
    ) async throws -> [T] {
        let started = NIOLockedValueBox(0)
        let allStarted = DispatchSemaphore(value: 0)
        return try await withThrowingTaskGroup(of: T.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    try await pool.runIfActive {
                        let result = body()
                        if started.withLockedValue({
                            $0 += 1; return $0
                        }) == threads {
                            for _ in 1..<threads { allStarted.signal() }
                        } else {
                            // Bounded: if a job never runs (its task was cancelled
                            // during start-up), the others must not wait forever.
                            _ = allStarted.wait(timeout: .now() + .seconds(5))
                        }
                        return result
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }
}
