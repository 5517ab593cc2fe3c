import DequeModule
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The users feed of this process. One reader follows the events table
/// (woken by `UserStore.changes`, and every `poll` in case a wake-up was
/// missed) and keeps the newest events in memory; every watcher (an SSE
/// stream or a WebSocket) reads from there, or from the table while it
/// catches up from an older `since`. The table is the source of truth, so a
/// watcher gets every event after its cursor exactly once, in seq order,
/// whichever replica wrote it.
public final class EventFeed: Service, Sendable {
    public struct Settings: Sendable {
        public var retention: Duration = .seconds(7 * 24 * 3600)
        public var maxRows = 1_000_000
        public var maxWatchers = 1000
        /// Events a live watcher may fall behind before it is dropped (it resumes with its last seq).
        public var maxLag = 1000
        public var heartbeat: Duration = .seconds(15)
        var poll: Duration = .seconds(5)
        /// Events kept in memory for watchers that are live.
        var recentCapacity = 2048
        public init() {}
    }

    /// What a watcher gets next.
    enum Next: Sendable {
        case events([UserEvent])
        /// Nothing new within the heartbeat interval.
        case idle
        /// The server is shutting down: reconnect (to another replica) and resume.
        case goingAway
        /// Fell more than `maxLag` behind while live: reconnect and resume.
        case tooSlow
        /// Events after the cursor are no longer kept: re-list, then follow from now.
        case expired(oldest: Int64)
    }

    /// Why a watcher cannot start at `since`.
    enum StartError: Error, Equatable {
        case expired(oldest: Int64)
        case ahead(latest: Int64)
        case full
        /// The server is shutting down.
        case closing
        /// The database did not answer.
        case unavailable
    }

    private struct State {
        var recent = Deque<UserEvent>()
        var latest: Int64 = 0
        var started = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var watchers = 0
        var closing = false
    }

    let settings: Settings
    private let store: any UserStore
    private let metrics: AppMetrics?
    private let logger: Logger
    private let state = Mutex(State())
    /// Finished once the schema is ready (migrations ran): the reader starts after that.
    private let schemaReady = AsyncStream<Void>.makeStream()

    init(store: any UserStore, settings: Settings, metrics: AppMetrics?, logger: Logger) {
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    /// Called once the schema is current; the reader waits for it, so it never reads a table a migration has yet to create.
    public func start() {
        schemaReady.continuation.finish()
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in self.schemaReady.stream {}
            guard !Task.isCancelled else { return }
            var lastPrune = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                do {
                    try await self.readNew()
                    if ContinuousClock.now - lastPrune > .seconds(60) {
                        lastPrune = .now
                        let cutoff = Timestamp.nowMillis() - self.settings.retention.milliseconds
                        let pruned = try await self.store.pruneEvents(before: cutoff, keep: self.settings.maxRows)
                        if pruned > 0 { self.logger.info("feed: pruned events", metadata: ["events": "\(pruned)"]) }
                    }
                } catch {
                    self.logger.warning("feed: cannot read events", metadata: ["error": "\(error)"])
                }
                await self.store.changes.wait(timeout: self.settings.poll)
            }
        }
        close()
    }

    /// Reads what was committed since the last read, keeps it, wakes the watchers.
    private func readNew() async throws {
        if !state.withLock({ $0.started }) {
            let bounds = try await store.eventBounds()
            state.withLock {
                $0.latest = bounds.latest
                $0.started = true
            }
        }
        while true {
            let after = state.withLock { $0.latest }
            let events = try await store.events(after: after, limit: 500)
            guard let last = events.last else { return }
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.recent.append(contentsOf: events)
                if s.recent.count > settings.recentCapacity { s.recent.removeFirst(s.recent.count - settings.recentCapacity) }
                s.latest = last.seq
                defer { s.waiters.removeAll() }
                return Array(s.waiters.values)
            }
            waiters.forEach { $0.resume() }
            if events.count < 500 { return }
        }
    }

    /// The server is shutting down: every watcher ends (going away).
    public func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closing = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Admits a watcher starting after `since` (nil: from now). Returns its
    /// starting cursor; the caller must call `leave()` when it ends.
    func join(since: Int64?) async throws(StartError) -> Int64 {
        let refused = state.withLock { s -> StartError? in
            if s.closing { return .closing }
            guard s.watchers < settings.maxWatchers else { return .full }
            s.watchers += 1
            return nil
        }
        if let refused { throw refused }
        metrics?.feedWatchers(+1)
        do {
            let bounds = try await store.eventBounds()
            let cursor = since ?? bounds.latest
            if cursor > bounds.latest { throw StartError.ahead(latest: bounds.latest) }
            let oldest = bounds.oldest ?? bounds.latest + 1
            if cursor < oldest - 1 { throw StartError.expired(oldest: oldest) }
            return cursor
        } catch {
            leave()
            if let error = error as? StartError { throw error }
            throw .unavailable
        }
    }

    func leave() {
        state.withLock { $0.watchers -= 1 }
        metrics?.feedWatchers(-1)
    }

    var watchers: Int { state.withLock { $0.watchers } }

    /// The newest event this process has read from the table.
    var latest: Int64 { state.withLock { $0.latest } }

    /// The events after `cursor` (at most `limit`), waiting up to the heartbeat interval for some.
    /// `live`: the watcher has caught up once, so falling far behind now makes it too slow.
    func next(after cursor: Int64, live: Bool, limit: Int = 100) async throws -> Next {
        enum Read {
            case ready([UserEvent])
            case fromTable
            case wait
            case end(Next)
        }
        let read = state.withLock { s -> Read in
            if s.closing { return .end(.goingAway) }
            guard cursor < s.latest else { return .wait }
            if live, s.latest - cursor > Int64(settings.maxLag) { return .end(.tooSlow) }
            guard let first = s.recent.first, first.seq <= cursor + 1 else { return .fromTable }
            let start = s.recent.firstIndex { $0.seq > cursor } ?? s.recent.endIndex
            return .ready(Array(s.recent[start..<min(start + limit, s.recent.endIndex)]))
        }
        switch read {
        case .end(let next):
            return next
        case .ready(let events):
            return .events(events)
        case .fromTable:
            let events = try await store.events(after: cursor, limit: limit)
            if let first = events.first, first.seq > cursor + 1 {
                let bounds = try await store.eventBounds()
                if let oldest = bounds.oldest, cursor < oldest - 1 { return .expired(oldest: oldest) }
            }
            return events.isEmpty ? .idle : .events(events)
        case .wait:
            try Task.checkCancellation()
            return await waitForNews(after: cursor) ? try await next(after: cursor, live: live, limit: limit) : .idle
        }
    }

    /// Waits until an event after `cursor` is read or the feed closes (true), or the heartbeat interval passes (false).
    private func waitForNews(after cursor: Int64) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            let id = state.withLock { s -> UInt64 in
                defer { s.nextWaiter += 1 }
                return s.nextWaiter
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let now = self.state.withLock { s -> Bool in
                            if s.closing || s.latest > cursor || Task.isCancelled { return true }
                            s.waiters[id] = continuation
                            return false
                        }
                        if now { continuation.resume() }
                    }
                    return true
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask {
                try? await Task.sleep(for: self.settings.heartbeat)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    func sent(_ count: Int, transport: String) { metrics?.feedSent(count, transport: transport) }

    func dropped(reason: String) { metrics?.feedDropped(reason: reason) }
}
