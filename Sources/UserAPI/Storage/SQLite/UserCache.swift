import Synchronization

/// Users by id, kept in memory in front of the SQLite reader connections.
///
/// Coherent because in embedded mode this process is the file's only writer
/// (the chart runs exactly one replica; `db copy` into a live file is
/// refused by the docs): the writer applies every committed change here, in
/// commit order, before the write's response is sent, so a client always
/// reads its own writes and an older change never lands after a newer one.
///
/// A read that missed may race with a write: it remembers the generation it
/// started at and only fills the cache if no write committed meanwhile, so a
/// row read before a commit can never overwrite (or resurrect) what the
/// commit changed. Bounded by `capacity`; any entry is evicted when full.
final class UserCache: Sendable {
    private struct State {
        var entries: [String: User] = [:]
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    var isEnabled: Bool { capacity > 0 }

    func get(_ id: String) -> (user: User?, generation: UInt64) {
        state.withLock { ($0.entries[id], $0.generation) }
    }

    /// Fills the cache after a miss, unless a write committed since `generation`.
    func fill(_ user: User, readAt generation: UInt64) {
        guard isEnabled else { return }
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.entries.count >= capacity, s.entries[user.id] == nil, let victim = s.entries.keys.first {
                s.entries.removeValue(forKey: victim)
            }
            s.entries[user.id] = user
        }
    }

    /// A committed create or update.
    func store(_ user: User) {
        state.withLock { s in
            s.generation &+= 1
            if s.entries[user.id] != nil || s.entries.count < capacity { s.entries[user.id] = user }
        }
    }

    /// A committed delete.
    func remove(_ id: String) {
        state.withLock { s in
            s.generation &+= 1
            s.entries.removeValue(forKey: id)
        }
    }

    /// A committed bulk change (import): forget everything.
    func clear() {
        state.withLock { s in
            s.generation &+= 1
            s.entries.removeAll(keepingCapacity: true)
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}
