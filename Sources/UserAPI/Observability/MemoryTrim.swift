import CMalloc
import Foundation
import ServiceLifecycle

/// Lowers resident memory once the server is ready.
///
/// Start-up (argument parsing, configuration, migrations, runtime
/// initialisation) touches much of the executable's code and read-only data,
/// and the kernel maps pages around every touched one; that code never runs
/// again. Advising the kernel to page those clean, file-backed mappings out
/// returns them; the code a request needs comes back on first use from the
/// page cache. Writable and heap memory are never touched.
/// `memory.release_startup_pages` turns it off.
enum MemoryTrim {
    /// `releaseStartupPages` on a thread of its own, beside the first requests; `done` gets its result there.
    static func releaseStartupPagesInBackground(then done: @escaping @Sendable (Int) -> Void) {
        Thread.detachNewThread { done(releaseStartupPages()) }
    }

    /// Returns the number of bytes advised (0 when unsupported).
    @discardableResult
    static func releaseStartupPages() -> Int {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        else { return 0 }
        let pageout: Int32 = 21  // MADV_PAGEOUT, Linux 5.4+; older kernels answer EINVAL, harmlessly
        var advised = 0
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[5] == executable, fields[1] == "r-xp" || fields[1] == "r--p" else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let low = UInt(bounds[0], radix: 16), let high = UInt(bounds[1], radix: 16) else {
                continue
            }
            if madvise(UnsafeMutableRawPointer(bitPattern: low), Int(high - low), pageout) == 0 {
                advised += Int(high - low)
            }
        }
        return advised
    }

    /// Caps the number of glibc malloc arenas at `count` (0 leaves glibc's
    /// default, 8 per core). glibc gives each allocating thread its own arena
    /// while fewer than the cap exist, and an arena keeps what is freed in it,
    /// so every event loop, storage and task thread would hold its own.
    /// Threads past the cap share arenas. Arenas that already exist stay.
    /// Returns false when glibc refuses.
    @discardableResult
    static func limitMallocArenas(_ count: Int) -> Bool {
        guard count > 0 else { return true }
        return userapi_malloc_arena_max(Int32(count)) == 1
    }

    /// Gives freed heap memory back to the kernel. glibc keeps what a burst
    /// of connections freed (their buffers) for reuse, so without this the
    /// resident size stays at its peak after the burst is gone.
    @discardableResult
    static func trimHeap() -> Bool { userapi_malloc_trim() == 1 }
}

/// Trims the heap every `interval` while the server runs (see `MemoryTrim.trimHeap`).
struct HeapTrimService: Service {
    var interval: Duration = .seconds(30)

    func run() async throws {
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            MemoryTrim.trimHeap()
        }
    }
}
