import Crypto
import Foundation
import Synchronization

/// The accepted API tokens, held only as SHA-256 digests.
///
/// Checking a presented token hashes it once and compares the digest with
/// every accepted digest without an early exit, so the time taken does not
/// reveal how much of a token matched, nor which entry did.
public struct TokenSet: Sendable, Equatable {
    private(set) var digests: [[UInt8]]

    public init(digests: [[UInt8]] = []) {
        self.digests = digests
    }

    public var isEmpty: Bool { digests.isEmpty }
    public var count: Int { digests.count }

    public static func digest(of token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    public func accepts(_ token: some StringProtocol) -> Bool {
        let presented = Self.digest(of: String(token))
        var matched: UInt8 = 0
        for candidate in digests {
            var difference: UInt8 = 0
            for i in 0..<32 { difference |= candidate[i] ^ presented[i] }
            // 1 when this candidate matched, 0 otherwise, without branching on secrets.
            matched |= UInt8(truncatingIfNeeded: (Int(difference) - 1) >> 8) & 1
        }
        return matched == 1
    }

    /// Adds plain tokens from configuration (`auth.tokens`, comma-separated).
    mutating func addPlain(_ list: String) {
        for token in list.split(separator: ",") {
            let trimmed = token.trimmingWhitespace()
            if !trimmed.isEmpty { digests.append(Self.digest(of: trimmed)) }
        }
    }

    /// Parses a tokens file: one token per line, `#` starts a comment, blank
    /// lines are ignored, and `sha256:<64 hex>` entries hold a token's digest
    /// so the plain token need not be stored. Errors name the line, never its content.
    static func parseFile(_ text: String) throws(TokenFileError) -> TokenSet {
        var set = TokenSet()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let entry = String(line).trimmingWhitespace()
            if entry.isEmpty { continue }
            if entry.lowercased().hasPrefix("sha256:") {
                let hex = entry.dropFirst("sha256:".count)
                guard let bytes = Self.decodeHex(hex), bytes.count == 32 else {
                    throw TokenFileError(line: index + 1, reason: "a sha256: entry needs exactly 64 hexadecimal digits")
                }
                set.digests.append(bytes)
            } else {
                guard entry.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                    throw TokenFileError(line: index + 1, reason: "tokens must be printable ASCII without spaces")
                }
                set.digests.append(Self.digest(of: entry))
            }
        }
        return set
    }

    static func decodeHex(_ hex: some StringProtocol) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

public struct TokenFileError: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }
}
