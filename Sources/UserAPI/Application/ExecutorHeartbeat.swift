import Foundation
import ServiceLifecycle
import Synchronization

/// A task on Swift's cooperative pool that records, once a second, that it
/// still gets to run, and renders the `Date` header for that second.
///
/// `EventLoopFastPath` answers `/healthz` on the event loop, which by itself
/// would stay green while every handler task is stuck. It answers only while
/// this heartbeat is recent; when it is not, probes take the ordinary path
/// through the router, which answers only if tasks run: liveness then means
/// what it meant before the fast path existed.
final class ExecutorHeartbeat: Service, Sendable {
    /// How old the last beat may be for the fast path to answer. Well above
    /// the interval, so a pool that is merely busy (a request flood delays the
    /// beat by about a second) keeps the fast path; well below what the
    /// kubelet needs to declare a container dead (`periodSeconds` ×
    /// `failureThreshold`, 30 s in the chart).
    static let maximumAge: Duration = .seconds(3)
    let interval: Duration

    private struct Beat {
        var at: ContinuousClock.Instant
        var date: String
    }

    private let last: Mutex<Beat>

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
        last = Mutex(Beat(at: .now, date: Self.httpDate(time(nil))))
    }

    /// The `Date` header value when the beat is recent, nil when it is not.
    func currentDate(now: ContinuousClock.Instant = .now) -> String? {
        last.withLock { beat in now - beat.at <= Self.maximumAge ? beat.date : nil }
    }

    func beat(at instant: ContinuousClock.Instant = .now) {
        let date = Self.httpDate(time(nil))
        last.withLock { $0 = Beat(at: instant, date: date) }
    }

    func run() async throws {
        while true {
            beat()
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return  // shutting down: the fast path stops answering after `maximumAge`
            }
        }
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// RFC 9110 IMF-fixdate, e.g. `Tue, 01 Dec 2026 06:01:23 GMT`.
    static func httpDate(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekdays[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
