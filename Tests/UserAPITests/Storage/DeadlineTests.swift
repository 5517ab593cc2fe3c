import Testing

@testable import UserAPI

@Suite("Deadlines for rare calls (readiness checks)")
struct DeadlineTests {
    @Test("a call that finishes in time returns its value")
    func finishesInTime() async throws {
        // A deadline far beyond any test run: only the call's own answer can end this.
        let value = try await withDeadline(.seconds(3600)) { 42 }
        #expect(value == 42)
    }

    @Test("a call's own error is passed through")
    func passesErrorsThrough() async throws {
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withDeadline(.seconds(3600)) { throw Boom() } }
    }

    @Test("past the deadline the caller gets DeadlineExceeded and the call is cancelled")
    func deadlineCancelsTheCall() async throws {
        let cancelled = Flag()
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(50)) {
                // Only cancellation ends this sleep within the test run.
                do { try await Task.sleep(for: .seconds(3600)) } catch { cancelled.set() }
            }
        }
        #expect(cancelled.isSet, "the call was not cancelled")
    }

    @Test("cancelling the caller cancels the call")
    func callerCancellation() async throws {
        let started = Flag()
        let cancelled = Flag()
        let caller = Task {
            try await withDeadline(.seconds(3600)) {
                started.set()
                do { try await Task.sleep(for: .seconds(3600)) } catch { cancelled.set() }
            }
        }
        try await waitUntil(within: .seconds(60)) { started.isSet }
        caller.cancel()
        let result = await caller.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(cancelled.isSet, "the call was not cancelled")
    }
}
