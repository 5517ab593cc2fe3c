import Testing

@testable import UserAPI

extension LeaseFlag {
    /// A lease whose connection is already held: only the overall deadline applies.
    static func alreadySet() -> LeaseFlag {
        let flag = LeaseFlag()
        flag.set()
        return flag
    }
}

@Suite("PostgreSQL call deadlines")
struct DeadlineTimerTests {
    /// Runs `body` while the timer's loop runs, as PostgresUserStore.run() does.
    func withLoop<T: Sendable>(_ timer: DeadlineTimer, _ body: () async throws -> T) async rethrows -> T {
        let loop = Task { await timer.run() }
        defer { loop.cancel() }
        return try await body()
    }

    @Test("a call that finishes in time returns its value and leaves no entry behind")
    func finishesInTime() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let start = ContinuousClock.now
        let value = try await withLoop(timer) {
            try await timer.withDeadline(.seconds(30), untilStarted: .seconds(30), started: LeaseFlag()) { 42 }
        }
        let elapsed: Duration = .now - start
        #expect(value == 42)
        // The deadline's waiter is cancelled as soon as the body returns; the call does not sit out the deadline.
        #expect(elapsed < Duration.seconds(10), "the call waited for its deadline (\(elapsed))")
        #expect(timer.pending == 0)
    }

    @Test("a call that outlives its deadline is cancelled and throws DeadlineExceeded")
    func overallDeadline() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let cancelled = Flag()
        let started = LeaseFlag.alreadySet()
        let start = ContinuousClock.now
        await withLoop(timer) {
            await #expect(throws: DeadlineExceeded.self) {
                try await timer.withDeadline(.milliseconds(200), untilStarted: .milliseconds(100), started: started) {
                    do { try await Task.sleep(for: .seconds(30)) } catch { cancelled.set() }
                }
            }
        }
        let elapsed: Duration = .now - start
        #expect(elapsed >= Duration.milliseconds(200))
        #expect(elapsed < Duration.seconds(10), "the deadline did not stop the call (took \(elapsed))")
        #expect(timer.pending == 0)
        // The caller does not wait for the abandoned body; its cancellation arrives just after.
        try await waitUntil { cancelled.isSet }
        #expect(cancelled.isSet, "the body was not cancelled")
    }

    @Test("the caller gets its answer at the deadline even when the body ignores cancellation")
    func doesNotWaitForAStuckBody() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let gate = Gate(openingAfter: .seconds(20))  // a safety net: opened by onAbandon or after the checks
        let started = LeaseFlag.alreadySet()
        let start = ContinuousClock.now
        await withLoop(timer) {
            await #expect(throws: DeadlineExceeded.self) {
                try await timer.withDeadline(.milliseconds(200), untilStarted: .milliseconds(100), started: started) {
                    await gate.wait()
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(10), "the caller waited for the stuck body (\(elapsed))")
        #expect(timer.pending == 0)
    }

    @Test("until the lease is set the shorter deadline applies; once set, the longer one")
    func startDeadline() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        try await withLoop(timer) {
            // Never leased: gives up after the acquire deadline, long before the overall one.
            let start = ContinuousClock.now
            await #expect(throws: DeadlineExceeded.self) {
                try await timer.withDeadline(.seconds(30), untilStarted: .milliseconds(100), started: LeaseFlag()) {
                    try await Task.sleep(for: .seconds(30))
                }
            }
            let elapsed: Duration = .now - start
            #expect(elapsed < Duration.seconds(10), "the acquire deadline did not apply (took \(elapsed))")

            // Leased at once: outlives the acquire deadline and finishes.
            let leased = LeaseFlag()
            let value = try await timer.withDeadline(.seconds(30), untilStarted: .milliseconds(50), started: leased) {
                leased.set()
                try await Task.sleep(for: .milliseconds(300))
                return "done"
            }
            #expect(value == "done")
        }
        #expect(timer.pending == 0)
    }

    @Test("a cancelled caller stops at once, also when it was cancelled before the call began")
    func callerCancelled() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let start = ContinuousClock.now
        await withLoop(timer) {
            let running = Task {
                try await timer.withDeadline(.seconds(30), untilStarted: .seconds(30), started: LeaseFlag()) {
                    try await Task.sleep(for: .seconds(30))
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
            running.cancel()
            await #expect(throws: CancellationError.self) { try await running.value }

            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await timer.withDeadline(.seconds(30), untilStarted: .seconds(30), started: LeaseFlag()) {
                    try await Task.sleep(for: .seconds(30))
                }
            }
            await #expect(throws: CancellationError.self) { try await early.value }
        }
        let elapsed: Duration = .now - start
        #expect(elapsed < Duration.seconds(10), "cancelled calls sat out their 30 s deadline (\(elapsed))")
        #expect(timer.pending == 0)
    }

    @Test("thousands of concurrent calls, some expiring: each gets one outcome, none lingers")
    func concurrentCalls() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(5))
        let (finished, expired) = await withLoop(timer) {
            await withTaskGroup(of: Bool.self) { group in
                for i in 0..<2000 {
                    group.addTask {
                        let slow = i % 10 == 0
                        do {
                            try await timer.withDeadline(
                                .milliseconds(50), untilStarted: .milliseconds(50), started: LeaseFlag()
                            ) {
                                try await Task.sleep(for: slow ? .seconds(30) : .microseconds(100))
                            }
                            return true
                        } catch {
                            return false
                        }
                    }
                }
                var finished = 0
                var expired = 0
                for await ok in group {
                    if ok { finished += 1 } else { expired += 1 }
                }
                return (finished, expired)
            }
        }
        #expect(finished + expired == 2000)
        #expect(expired >= 200, "the 200 slow calls must all expire")
        #expect(timer.pending == 0)
    }

    @Test("with no call waiting the loop parks, and the next call's deadline still fires")
    func parksWhenIdle() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let started = LeaseFlag.alreadySet()
        try await withLoop(timer) {
            try await waitUntil { timer.isParked }
            #expect(timer.isParked, "the idle loop kept ticking")
            for round in 1...2 {
                // The body would end on its own after 3 s with a value: only a woken loop makes this throw.
                let gate = Gate(openingAfter: .seconds(3))
                await #expect(throws: DeadlineExceeded.self, "round \(round)") {
                    try await timer.withDeadline(.milliseconds(100), untilStarted: .milliseconds(100), started: started) {
                        await gate.wait()
                        return round
                    }
                }
                gate.open()
                try await waitUntil { timer.isParked }
                #expect(timer.isParked, "round \(round): the loop did not park again once the call was over")
            }
        }
    }

    @Test("expire(at:) resumes a call whose deadline has passed (the loop's own step)")
    func expireStep() async {
        let timer = DeadlineTimer(resolution: .seconds(60))  // the loop is not running here
        let now = ContinuousClock.now
        let expired = await withTaskGroup(of: Bool.self) { group in
            group.addTask { await timer.wait(until: now, orUntil: now, unless: LeaseFlag()) }
            while timer.pending == 0 { await Task.yield() }
            timer.expire(at: now + .seconds(1))
            return await group.next() ?? false
        }
        #expect(expired)
        #expect(timer.pending == 0)
    }

    @Test("at the deadline onAbandon runs, so a call that ignores cancellation can be ended")
    func onAbandonAtTheDeadline() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let gate = Gate(openingAfter: .seconds(20))  // a safety net: opened by onAbandon or after the checks
        let abandoned = Flag()
        let started = LeaseFlag.alreadySet()
        let start = ContinuousClock.now
        await withLoop(timer) {
            await #expect(throws: DeadlineExceeded.self) {
                try await timer.withDeadline(
                    .milliseconds(200), untilStarted: .milliseconds(100), started: started,
                    onAbandon: {
                        abandoned.set()
                        gate.open()
                    }
                ) { await gate.wait() }
            }
        }
        #expect(abandoned.isSet)
        #expect(ContinuousClock.now - start < .seconds(10), "the caller waited for the stuck body")
        #expect(timer.pending == 0)
    }

    @Test("when the caller is cancelled onAbandon runs too, so a stuck call ends at once")
    func onAbandonWhenCancelled() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let gate = Gate(openingAfter: .seconds(20))  // a safety net: opened by onAbandon or after the checks
        let abandoned = Flag()
        let started = LeaseFlag.alreadySet()
        let start = ContinuousClock.now
        try await withLoop(timer) {
            let caller = Task {
                try await timer.withDeadline(
                    .seconds(30), untilStarted: .seconds(30), started: started,
                    onAbandon: {
                        abandoned.set()
                        gate.open()
                    }
                ) { await gate.wait() }
            }
            try await Task.sleep(for: .milliseconds(50))
            caller.cancel()
            let result = await caller.result
            #expect(throws: CancellationError.self) { try result.get() }
        }
        #expect(abandoned.isSet)
        #expect(ContinuousClock.now - start < .seconds(10), "the cancelled caller waited for the stuck body")
        #expect(timer.pending == 0)
    }
}
