import Foundation
import Logging
import Synchronization

/// Writes log lines to standard output: `json` (one object per line, for log
/// collectors) or `text` (for people at a terminal). Each line is one
/// `write(2)` so lines from concurrent requests never interleave.
public struct StdoutLogHandler: LogHandler {
    public enum Format: Sendable { case json, text }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format

    private static let writeLock = Mutex(())

    public init(label: String, format: Format, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = Timestamp.rfc3339(millis: Timestamp.nowMillis())
        var line: [UInt8]
        switch format {
        case .json:
            var w = JSONWriter(capacity: 256)
            w.beginObject()
            w.key("time")
            w.string(time)
            w.key("level")
            w.string(event.level.rawValue)
            w.key("msg")
            w.string(event.message.description)
            w.key("logger")
            w.string(label)
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                w.key(key)
                Self.write(value, into: &w)
            }
            w.endObject()
            line = w.bytes
        case .text:
            var text = "\(time) \(event.level.rawValue.uppercased()) \(event.message)"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                text += " \(key)=\(value)"
            }
            line = Array(text.utf8)
        }
        line.append(0x0A)
        Self.writeLock.withLock { _ in
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    private static func write(_ value: Logger.MetadataValue, into w: inout JSONWriter) {
        switch value {
        case .string(let s): w.string(s)
        case .stringConvertible(let c):
            if let i = c as? Int {
                w.number(i)
            } else if let d = c as? Double {
                w.number(d)
            } else if let b = c as? Bool {
                w.bool(b)
            } else {
                w.string(c.description)
            }
        case .array(let a):
            w.beginArray()
            for v in a { write(v, into: &w) }
            w.endArray()
        case .dictionary(let d):
            w.beginObject()
            for (k, v) in d.sorted(by: { $0.key < $1.key }) {
                w.key(k)
                write(v, into: &w)
            }
            w.endObject()
        }
    }
}
