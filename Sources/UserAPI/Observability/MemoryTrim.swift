import CMalloc
import Foundation

/// Lowers resident memory once the server is ready.
///
/// Loading a 40 MB executable and running start-up (argument parsing,
/// configuration, migrations, runtime and Foundation initialisation) leaves
/// ~30 MB of the binary's code and read-only data mapped: the kernel maps
/// pages around every touched one ("fault-around"), and start-up code never
/// runs again. Measured: 39 MB resident when idle, of which 3 MB is heap.
/// Advising the kernel to page those clean, file-backed mappings out drops
/// idle RSS to ~11 MB; the code a request needs comes back on first use
/// (from the page cache, a minor fault), so serving settles at ~26 MB.
/// Writable and heap memory are never touched. `memory.release_startup_pages`
/// turns it off.
///
/// The advice takes the kernel ~35 ms here (it reclaims the pages there and
/// then), and the first requests fault back in what they need: run inline
/// when the listener opened, it held the first readiness probe back for both,
/// ~45 ms of a ~100 ms exec-to-ready (bench/README.md). So it runs on a thread
/// of its own at a lower priority, beside the first requests.
enum MemoryTrim {
    /// `releaseStartupPages` on a new thread at nice +10; `done` gets its result there.
    static func releaseStartupPagesInBackground(then done: @escaping @Sendable (Int) -> Void) {
        Thread.detachNewThread {
            StorageThreads.lowerCallingThread(by: 10)
            done(releaseStartupPages())
        }
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
    /// while fewer than the cap exist, and an arena keeps what is freed in it:
    /// SQLite's reader threads building a page of rows each grew one, ~3 MB of
    /// the peak resident memory under load (bench/README.md). Threads past the
    /// cap share arenas; measured on one core, throughput did not change.
    /// Arenas that already exist stay. Returns false when glibc refuses.
    @discardableResult
    static func limitMallocArenas(_ count: Int) -> Bool {
        guard count > 0 else { return true }
        return userapi_malloc_arena_max(Int32(count)) == 1
    }
}
