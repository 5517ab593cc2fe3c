import Foundation
import Logging

/// Parses the text forms accepted in every configuration source. Each parser
/// returns a reason that says what is allowed, used verbatim in error messages.
enum ConfigValueParser {
    struct Invalid: Error {
        var reason: String
    }

    static func int(_ raw: String, in range: ClosedRange<Int>) throws(Invalid) -> Int {
        guard let value = Int(raw.trimmingWhitespace()), range.contains(value) else {
            throw Invalid(reason: "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    static func bool(_ raw: String) throws(Invalid) -> Bool {
        switch raw.trimmingWhitespace().lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw Invalid(reason: "expected true or false")
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ raw: String, _: T.Type) throws(Invalid) -> T
    where T.RawValue == String {
        guard let value = T(rawValue: raw.trimmingWhitespace().lowercased()) else {
            throw Invalid(reason: "expected one of: " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    static func logLevel(_ raw: String) throws(Invalid) -> Logger.Level {
        let text = raw.trimmingWhitespace().lowercased()
        guard let level = Logger.Level(rawValue: text == "warn" ? "warning" : text) else {
            throw Invalid(reason: "expected one of: " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return level
    }

    /// `250ms`, `5s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
    static func duration(_ raw: String, in range: ClosedRange<Double>) throws(Invalid) -> Duration {
        let text = raw.trimmingWhitespace().lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = text
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = String(text.dropLast(suffix.count))
            scale = factor
            break
        }
        let describe = { (s: Double) in s < 1 ? "\(Int(s * 1000))ms" : "\(s.formatted())s" }
        guard let value = Double(number.trimmingWhitespace()), value.isFinite, range.contains(value * scale) else {
            throw Invalid(
                reason:
                    "expected a duration like 500ms, 5s or 2m, from \(describe(range.lowerBound)) to \(describe(range.upperBound))"
            )
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    /// A byte count: `1048576`, `512KiB`, `1MiB`, `1Mi`, `1MB` (decimal units are powers of 1000).
    static func size(_ raw: String, in range: ClosedRange<Int>) throws(Invalid) -> Int {
        let text = raw.trimmingWhitespace()
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30),
            ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        var number = text
        var scale = 1
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = String(text.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value = Int(number.trimmingWhitespace()), value >= 0, value <= Int.max / scale,
            range.contains(value * scale)
        else {
            throw Invalid(
                reason: "expected a size like 1048576, 512KiB or 1MiB, from \(range.lowerBound) to \(range.upperBound) bytes")
        }
        return value * scale
    }

    static func databaseURL(_ raw: String) throws(Invalid) -> String {
        let text = raw.trimmingWhitespace()
        do {
            _ = try DatabaseURL.parse(text)
        } catch {
            throw Invalid(reason: error.reason)
        }
        return text
    }

    static func nonEmpty(_ raw: String) throws(Invalid) -> String {
        let text = raw.trimmingWhitespace()
        guard !text.isEmpty else { throw Invalid(reason: "must not be empty") }
        return text
    }

    static func host(_ raw: String) throws(Invalid) -> String {
        let text = raw.trimmingWhitespace()
        guard !text.isEmpty, !text.contains(" "), !text.contains("/") else {
            throw Invalid(reason: "expected an IP address or host name such as 127.0.0.1 or 0.0.0.0")
        }
        return text
    }
}
