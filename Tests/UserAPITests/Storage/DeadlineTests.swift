import Testing

@testable import UserAPI

@Suite("Deadlines for rare calls (readiness check, migrate)")
struct DeadlineTests {
    @Test("a call that finishes in time returns its value without sitting out the deadline")
    func finishesInTime() async throws {
        let start = ContinuousClock.now
        let value = try await withDeadline(.seconds(30)) { 42 }
        #expect(value == 42)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("a call's own error is passed through")
    func passesErrorsThrough() async throws {
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withDeadline(.seconds(30)) { throw Boom() } }
    }

    @Test("the caller gets DeadlineExceeded at the deadline even when the call ignores cancellation")
    func doesNotWaitForAStuckCall() async throws {
        // The gate opens on its own only as a safety net, long after any
        // answer that did not wait for it: a loaded CI host can delay the
        // deadline's wake-up by a second or two, never by ten.
        let gate = Gate(openingAfter: .seconds(20))
        let cancelled = Flag()
        let start = ContinuousClock.now
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(200)) {
                await gate.wait()
                if Task.isCancelled { cancelled.set() }
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .seconds(10), "the caller waited for the stuck call (\(elapsed))")
        // The abandoned call was cancelled: it sees so once it can run again.
        gate.open()
        try await waitUntil { cancelled.isSet }
        #expect(cancelled.isSet, "the abandoned call was not cancelled")
    }

    @Test("cancelling the caller ends the wait at once and cancels the call")
    func callerCancellation() async throws {
        let gate = Gate(openingAfter: .seconds(20))  // a safety net, as above
        let cancelled = Flag()
        let start = ContinuousClock.now
        let caller = Task {
            try await withDeadline(.seconds(30)) {
                await gate.wait()
                if Task.isCancelled { cancelled.set() }
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        caller.cancel()
        let result = await caller.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(10), "the caller waited for the call")
        gate.open()
        try await waitUntil { cancelled.isSet }
        #expect(cancelled.isSet, "the call was not cancelled")
    }
}
