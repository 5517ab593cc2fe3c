// Hand-written: Foundation's ISO8601DateFormatter goes through locale machinery and allocates; every user in every answer carries two timestamps.
import Foundation

/// RFC 3339 timestamps in UTC with millisecond precision, e.g. `2026-11-22T10:15:30.123Z`.
///
/// Formatting happens for every user in every response, so it is done with
/// integer arithmetic (days-from-civil, Howard Hinnant's algorithm) rather
/// than a locale-aware formatter.
public enum Timestamp {
    /// Current wall-clock time in milliseconds since the Unix epoch.
    public static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public static func rfc3339(millis: Int64) -> String {
        var out = [UInt8]()
        out.reserveCapacity(24)
        appendRFC3339(millis: millis, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the 24-byte RFC 3339 form to `out`, without an intermediate String.
    static func appendRFC3339(millis: Int64, to out: inout [UInt8]) {
        let ms = Int(((millis % 1000) + 1000) % 1000)
        let totalSeconds = (millis - Int64(ms)) / 1000
        var days = Int(totalSeconds / 86_400)
        var secondsOfDay = Int(totalSeconds % 86_400)
        if secondsOfDay < 0 {
            secondsOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = civil(fromDays: days)
        let hour = secondsOfDay / 3600
        let minute = (secondsOfDay / 60) % 60
        let second = secondsOfDay % 60
        // "YYYY-MM-DDTHH:MM:SS.mmmZ": fixed width, written through one buffer.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { b in
            func two(_ value: Int, at i: Int) {
                b[i] = UInt8(48 + value / 10)
                b[i + 1] = UInt8(48 + value % 10)
            }
            let y = max(0, min(year, 9999))
            two(y / 100, at: 0)
            two(y % 100, at: 2)
            b[4] = UInt8(ascii: "-")
            two(month, at: 5)
            b[7] = UInt8(ascii: "-")
            two(day, at: 8)
            b[10] = UInt8(ascii: "T")
            two(hour, at: 11)
            b[13] = UInt8(ascii: ":")
            two(minute, at: 14)
            b[16] = UInt8(ascii: ":")
            two(second, at: 17)
            b[19] = UInt8(ascii: ".")
            b[20] = UInt8(48 + ms / 100)
            two(ms % 100, at: 21)
            b[23] = UInt8(ascii: "Z")
            out.append(contentsOf: b)
        }
    }

    /// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
