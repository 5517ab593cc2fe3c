// Hand-written: Foundation's UUID makes version 4 only; ids here are UUIDv7, so they sort in creation order.
import Foundation
import Synchronization

/// User identifiers: UUIDv7 (RFC 9562), rendered lower-case.
///
/// The first 48 bits are the Unix time in milliseconds and the next 12 bits a
/// counter within that millisecond (RFC 9562 §6.2, method 1), so ids created
/// by one process sort in creation order and keyset pagination by id follows
/// it. The remaining 62 bits are random.
public enum UserID {
    private struct State {
        var lastMillis: Int64 = 0
        var counter: UInt16 = 0
    }
    private static let state = Mutex(State())

    public static func make() -> String {
        let (millis, counter) = state.withLock { s -> (Int64, UInt16) in
            let now = Timestamp.nowMillis()
            if now > s.lastMillis {
                s.lastMillis = now
                s.counter = UInt16.random(in: 0..<0x400)  // leave room to count up
            } else if s.counter < 0xFFF {
                s.counter += 1
            } else {
                // 4096 ids in one millisecond: borrow the next millisecond.
                s.lastMillis += 1
                s.counter = 0
            }
            return (s.lastMillis, s.counter)
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - i))) }
        bytes[6] = 0x70 | UInt8(counter >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: counter)
        var random = SystemRandomNumberGenerator()
        let r = random.next() as UInt64
        for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: r >> (8 * i)) }
        bytes[8] = 0x80 | (bytes[8] & 0x3F)
        return format(bytes)
    }

    static func format(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Returns the canonical (lower-case) form when `text` is a syntactically
    /// valid UUID of any version, else nil. Used for path ids and `after=` cursors.
    public static func canonical(_ text: some StringProtocol) -> String? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, c) in utf8.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                out.append(c)
                continue
            }
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"):
                out.append(c)
            case UInt8(ascii: "A")...UInt8(ascii: "F"):
                out.append(c + 32)
            default:
                return nil
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
