import Crypto
import Foundation
import Synchronization

/// The accepted API tokens, held only as SHA-256 digests, each with its
/// access: read-write, or read-only (`ro:` in front of the token).
///
/// Checking a presented token hashes it once and compares the digest with
/// every accepted digest without an early exit, so the time taken does not
/// reveal how much of a token matched, nor which entry did.
public struct TokenSet: Sendable, Equatable {
    public enum Access: Sendable, Equatable {
        case readWrite, readOnly
    }

    struct Entry: Sendable, Equatable {
        var digest: [UInt8]
        var access: Access
    }

    private(set) var entries: [Entry]

    /// Tokens shorter than this are refused at start: a short token can be guessed.
    public static let minimumLength = 16
    static let readOnlyPrefix = "ro:"

    init(entries: [Entry] = []) {
        self.entries = entries
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    public static func digest(of token: some StringProtocol) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// A token's name in logs: the first 8 hex digits of its digest. It
    /// identifies an entry of the tokens file without revealing the token.
    public static func id(of token: some StringProtocol) -> String { id(digest: digest(of: token)) }

    static func id(digest: [UInt8]) -> String {
        "sha256:" + digest.prefix(4).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The access `token` gives, or nil when it is not accepted.
    public func access(for token: some StringProtocol) -> Access? {
        let presented = Self.digest(of: token)
        var matched: UInt8 = 0
        var readOnly: UInt8 = 0
        for entry in entries {
            var difference: UInt8 = 0
            for i in 0..<32 { difference |= entry.digest[i] ^ presented[i] }
            // 1 when this entry matched, 0 otherwise, without branching on secrets.
            let hit = UInt8(truncatingIfNeeded: (Int(difference) - 1) >> 8) & 1
            matched |= hit
            readOnly |= hit & (entry.access == .readOnly ? 1 : 0)
        }
        guard matched == 1 else { return nil }
        // A token listed both ways counts as read-only.
        return readOnly == 1 ? .readOnly : .readWrite
    }

    public func accepts(_ token: some StringProtocol) -> Bool { access(for: token) != nil }

    /// Adds plain tokens from configuration (`auth.tokens`, comma-separated,
    /// each optionally `ro:<token>`); throws naming the position of a short one.
    mutating func addPlain(_ list: String) throws(TokenFileError) {
        for (index, item) in list.split(separator: ",").enumerated() {
            let trimmed = item.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            let (token, access) = Self.access(of: trimmed)
            guard token.count >= Self.minimumLength else {
                throw TokenFileError(
                    line: index + 1,
                    reason: "token \(index + 1) is shorter than \(Self.minimumLength) characters (use e.g. openssl rand -hex 24)")
            }
            entries.append(Entry(digest: Self.digest(of: token), access: access))
        }
    }

    private static func access(of entry: String) -> (token: Substring, access: Access) {
        entry.lowercased().hasPrefix(readOnlyPrefix)
            ? (entry.dropFirst(readOnlyPrefix.count), .readOnly) : (Substring(entry), .readWrite)
    }

    /// Parses a tokens file: one token per line, `#` starts a comment, blank
    /// lines are ignored, `sha256:<64 hex>` entries hold a token's digest so
    /// the plain token need not be stored, and `ro:` in front of either makes
    /// the token read-only. Errors name the line, never its content.
    static func parseFile(_ text: String) throws(TokenFileError) -> TokenSet {
        var set = TokenSet()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = String(line).trimmingWhitespace()
            if trimmed.isEmpty { continue }
            let (entry, access) = Self.access(of: trimmed)
            if entry.lowercased().hasPrefix("sha256:") {
                let hex = entry.dropFirst("sha256:".count)
                guard let bytes = Self.decodeHex(hex), bytes.count == 32 else {
                    throw TokenFileError(line: index + 1, reason: "a sha256: entry needs exactly 64 hexadecimal digits")
                }
                set.entries.append(Entry(digest: bytes, access: access))
            } else {
                guard entry.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                    throw TokenFileError(line: index + 1, reason: "tokens must be printable ASCII without spaces")
                }
                guard entry.count >= minimumLength else {
                    throw TokenFileError(line: index + 1, reason: "the token is shorter than \(minimumLength) characters")
                }
                set.entries.append(Entry(digest: Self.digest(of: entry), access: access))
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

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
