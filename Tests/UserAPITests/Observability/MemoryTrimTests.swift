import Testing

@testable import UserAPI

@Suite("Memory settings")
struct MemoryTrimTests {
    @Test("glibc accepts the malloc arena cap; 0 leaves glibc's default alone")
    func arenaCap() {
        // mallopt answers 0 for a parameter it does not know, so a wrong
        // M_ARENA_MAX (or a libc without it) fails here, not silently in production.
        #expect(MemoryTrim.limitMallocArenas(0))
        #expect(MemoryTrim.limitMallocArenas(AppConfig().memory.mallocArenas))
    }
}
