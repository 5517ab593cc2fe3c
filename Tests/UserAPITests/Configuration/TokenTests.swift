import Crypto
import Foundation
import Testing

@testable import UserAPI

@Suite("API tokens")
struct TokenTests {
    static func sha256Hex(_ s: String) -> String {
        SHA256.hash(data: Array(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static let alpha = "alpha-0123456789abcdef"
    static let beta = "beta-0123456789abcdef"

    @Test("a token set accepts exactly its tokens, read-write or read-only")
    func accepts() throws {
        var set = TokenSet()
        try set.addPlain(" \(Self.alpha) , ro:\(Self.beta),,")
        #expect(set.count == 2)
        #expect(set.access(for: Self.alpha) == .readWrite)
        #expect(set.access(for: Self.beta) == .readOnly)
        #expect(!set.accepts(String(Self.alpha.dropLast())))
        #expect(!set.accepts(Self.alpha + "a"))
        #expect(!set.accepts("ro:" + Self.beta))
        #expect(!set.accepts(""))
        #expect(!TokenSet().accepts(Self.alpha))
    }

    @Test("tokens shorter than 16 characters are refused, naming their position, never the token")
    func shortTokens() {
        var set = TokenSet()
        do {
            try set.addPlain("\(Self.alpha),short-one")
            Issue.record("accepted a short token")
        } catch {
            #expect(error.reason.contains("token 2"))
            #expect(!error.description.contains("short-one"))
        }
        #expect(throws: TokenFileError.self) { try TokenSet.parseFile("\(Self.alpha)\nro:tiny\n") }
        #expect(throws: ConfigurationError.self) {
            try TokenStore(plainTokens: "x", filePath: nil, reloadInterval: .seconds(1), logger: TestEnv.logger)
        }
    }

    @Test("a token's id is a short digest prefix that never contains the token")
    func tokenID() {
        let id = TokenSet.id(of: Self.alpha)
        #expect(id.hasPrefix("sha256:") && id.count == "sha256:".count + 8)
        #expect(id == "sha256:" + String(Self.sha256Hex(Self.alpha).prefix(8)))
        #expect(!id.contains("alpha"))
    }

    @Test("tokens files: comments, blank lines, plain, sha256 and read-only entries")
    func parseFile() throws {
        let text = """
            # rotated 2026-11-01
            plain-token-0123456789

              sha256:\(Self.sha256Hex("hashed-token-0123456789"))   # ci runner
            SHA256:\(Self.sha256Hex("upper-prefix-0123456789").uppercased())
            ro:reader-token-0123456789
            ro:sha256:\(Self.sha256Hex("hashed-reader-0123456789"))
            """
        let set = try TokenSet.parseFile(text)
        #expect(set.count == 5)
        #expect(set.access(for: "plain-token-0123456789") == .readWrite)
        #expect(set.access(for: "hashed-token-0123456789") == .readWrite)
        #expect(set.access(for: "upper-prefix-0123456789") == .readWrite)
        #expect(set.access(for: "reader-token-0123456789") == .readOnly)
        #expect(set.access(for: "hashed-reader-0123456789") == .readOnly)
        #expect(!set.accepts("sha256:\(Self.sha256Hex("hashed-token-0123456789"))"))
    }

    @Test("invalid lines name the line number, never the content")
    func invalidFile() {
        do {
            _ = try TokenSet.parseFile("ok-token-0123456789\nsha256:abc\n")
            Issue.record("accepted a short digest")
        } catch {
            #expect(error.line == 2)
            #expect(!error.description.contains("abc"))
        }
        #expect(throws: TokenFileError.self) { try TokenSet.parseFile("has space inside 0123456789") }
    }

    @Test("the tokens file is re-read after a Kubernetes-style symlink swap; a broken file keeps the old tokens")
    func reload() throws {
        let dir = TempDir()
        // Kubernetes mounts Secrets as <dir>/token -> ..data/token with ..data -> ..<timestamp>.
        try FileManager.default.createDirectory(atPath: dir.file("..v1"), withIntermediateDirectories: true)
        _ = dir.write("..v1/tokens", "first-token-0123456789\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data"), withDestinationPath: "..v1")
        try FileManager.default.createSymbolicLink(atPath: dir.file("tokens"), withDestinationPath: "..data/tokens")
        let store = try TokenStore(
            plainTokens: "from-config-0123456789", filePath: dir.file("tokens"), reloadInterval: .seconds(1),
            logger: TestEnv.logger)
        #expect(store.tokens.accepts("first-token-0123456789"))
        #expect(store.tokens.accepts("from-config-0123456789"))
        #expect(store.reload() == false)  // unchanged

        try FileManager.default.createDirectory(atPath: dir.file("..v2"), withIntermediateDirectories: true)
        _ = dir.write("..v2/tokens", "second-token-0123456789\n")
        try FileManager.default.removeItem(atPath: dir.file("..data"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data"), withDestinationPath: "..v2")
        #expect(store.reload() == true)
        #expect(store.tokens.accepts("second-token-0123456789"))
        #expect(!store.tokens.accepts("first-token-0123456789"))
        #expect(store.tokens.accepts("from-config-0123456789"))

        _ = dir.write("..v2/tokens", "sha256:nothex\n")
        #expect(store.reload() == false)
        #expect(store.tokens.accepts("second-token-0123456789"))
    }

    @Test("a missing or invalid tokens file at startup is a configuration error")
    func startupErrors() {
        let dir = TempDir()
        #expect(throws: ConfigurationError.self) {
            try TokenStore(plainTokens: nil, filePath: dir.file("nope"), reloadInterval: .seconds(1), logger: TestEnv.logger)
        }
        let bad = dir.write("bad", "sha256:00\n")
        #expect(throws: ConfigurationError.self) {
            try TokenStore(plainTokens: nil, filePath: bad, reloadInterval: .seconds(1), logger: TestEnv.logger)
        }
    }
}
