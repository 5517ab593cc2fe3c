import Crypto
import Foundation
import Testing

@testable import UserAPI

@Suite("API tokens")
struct TokenTests {
    static func sha256Hex(_ s: String) -> String {
        SHA256.hash(data: Array(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test("a token set accepts exactly its tokens")
    func accepts() {
        var set = TokenSet()
        set.addPlain(" alpha , beta,,")
        #expect(set.count == 2)
        #expect(set.accepts("alpha"))
        #expect(set.accepts("beta"))
        #expect(!set.accepts("alph"))
        #expect(!set.accepts("alphaa"))
        #expect(!set.accepts(""))
        #expect(!TokenSet().accepts("alpha"))
    }

    @Test("tokens files: comments, blank lines, plain and sha256 entries")
    func parseFile() throws {
        let text = """
            # rotated 2026-11-01
            plain-token-1

              sha256:\(Self.sha256Hex("hashed-token"))   # ci runner
            SHA256:\(Self.sha256Hex("upper-prefix").uppercased())
            """
        let set = try TokenSet.parseFile(text)
        #expect(set.count == 3)
        #expect(set.accepts("plain-token-1"))
        #expect(set.accepts("hashed-token"))
        #expect(set.accepts("upper-prefix"))
        #expect(!set.accepts("sha256:\(Self.sha256Hex("hashed-token"))"))
    }

    @Test("invalid lines name the line number, never the content")
    func invalidFile() {
        do {
            _ = try TokenSet.parseFile("ok\nsha256:abc\n")
            Issue.record("accepted a short digest")
        } catch {
            #expect(error.line == 2)
            #expect(!error.description.contains("abc"))
        }
        #expect(throws: TokenFileError.self) { try TokenSet.parseFile("has space inside") }
    }

    @Test("the tokens file is re-read after a Kubernetes-style symlink swap; a broken file keeps the old tokens")
    func reload() throws {
        let dir = TempDir()
        // Kubernetes mounts Secrets as <dir>/token -> ..data/token with ..data -> ..<timestamp>.
        try FileManager.default.createDirectory(atPath: dir.file("..v1"), withIntermediateDirectories: true)
        _ = dir.write("..v1/tokens", "first\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data"), withDestinationPath: "..v1")
        try FileManager.default.createSymbolicLink(atPath: dir.file("tokens"), withDestinationPath: "..data/tokens")
        let store = try TokenStore(
            plainTokens: "from-config", filePath: dir.file("tokens"), reloadInterval: .seconds(1), logger: TestEnv.logger)
        #expect(store.tokens.accepts("first"))
        #expect(store.tokens.accepts("from-config"))
        #expect(store.reload() == false)  // unchanged

        try FileManager.default.createDirectory(atPath: dir.file("..v2"), withIntermediateDirectories: true)
        _ = dir.write("..v2/tokens", "second\n")
        try FileManager.default.removeItem(atPath: dir.file("..data"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data"), withDestinationPath: "..v2")
        #expect(store.reload() == true)
        #expect(store.tokens.accepts("second"))
        #expect(!store.tokens.accepts("first"))
        #expect(store.tokens.accepts("from-config"))

        _ = dir.write("..v2/tokens", "sha256:nothex\n")
        #expect(store.reload() == false)
        #expect(store.tokens.accepts("second"))
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
