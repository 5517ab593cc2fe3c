import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The live token set: tokens from configuration plus the tokens file, which
/// is re-read when it changes so a rotated Kubernetes Secret takes effect
/// without a restart.
///
/// Kubernetes updates a mounted Secret by swapping a symlink, so the file is
/// compared by content, not by inode or modification time.
public final class TokenStore: Service, Sendable {
    private let configured: TokenSet
    private let filePath: String?
    private let interval: Duration
    private let logger: Logger
    private struct State {
        var tokens: TokenSet
        var fileContents: Data?
    }
    private let state: Mutex<State>

    /// Loads the initial set; a tokens file that is missing or malformed at
    /// startup is a configuration error (better to fail than run with no auth).
    public init(plainTokens: String?, filePath: String?, reloadInterval: Duration, logger: Logger) throws {
        var configured = TokenSet()
        if let plainTokens {
            do {
                try configured.addPlain(plainTokens)
            } catch {
                throw ConfigurationError(key: "auth.tokens", value: "REDACTED", source: nil, reason: error.reason)
            }
        }
        self.configured = configured
        self.filePath = filePath
        self.interval = reloadInterval
        self.logger = logger
        var initial = configured
        var contents: Data?
        if let filePath {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: filePath))
            } catch {
                throw ConfigurationError(
                    key: "auth.tokens_file", value: filePath, source: nil, reason: "cannot read the tokens file")
            }
            do {
                let fromFile = try TokenSet.parseFile(String(decoding: data, as: UTF8.self))
                initial = TokenSet(entries: configured.entries + fromFile.entries)
            } catch {
                throw ConfigurationError(key: "auth.tokens_file", value: filePath, source: nil, reason: "\(error)")
            }
            contents = data
        }
        self.state = Mutex(State(tokens: initial, fileContents: contents))
    }

    public var tokens: TokenSet { state.withLock { $0.tokens } }

    /// Re-reads the tokens file once. A file that became unreadable or invalid
    /// keeps the previous tokens (logged): a half-written Secret must not lock
    /// every client out.
    @discardableResult
    public func reload() -> Bool {
        guard let filePath else { return false }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: filePath)) else {
            logger.warning("auth: tokens file unreadable, keeping previous tokens", metadata: ["path": "\(filePath)"])
            return false
        }
        if state.withLock({ $0.fileContents == data }) { return false }
        do {
            let fromFile = try TokenSet.parseFile(String(decoding: data, as: UTF8.self))
            let merged = TokenSet(entries: configured.entries + fromFile.entries)
            state.withLock {
                $0.tokens = merged
                $0.fileContents = data
            }
            logger.notice("auth: tokens file reloaded", metadata: ["path": "\(filePath)", "tokens": "\(merged.count)"])
            return true
        } catch {
            logger.error(
                "auth: tokens file invalid, keeping previous tokens",
                metadata: ["path": "\(filePath)", "error": "\(error)"])
            return false
        }
    }

    public func run() async throws {
        guard filePath != nil else {
            try? await gracefulShutdown()
            return
        }
        while !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
            reload()
        }
    }
}
