import Testing

@testable import UserAPI

@Suite("Memory settings")
struct MemoryTrimTests {
    @Test("glibc accepts the malloc arena cap; 0 leaves glibc's default alone")
    func arenaCap() {
        // The C shim answers 0 when it was compiled without glibc's mallopt
        // (as it once was: it tested __GLIBC__ before including a libc header),
        // and glibc answers 0 when it refuses the value: either fails here,
        // not silently in production.
        #expect(MemoryTrim.limitMallocArenas(0))
        #expect(MemoryTrim.limitMallocArenas(AppConfig().memory.mallocArenas))
    }
}
