import Foundation

/// `userapi config`: every key with its effective value (secrets redacted)
/// and the source it came from.
public enum ConfigReport {
    public enum Format: String, Sendable, CaseIterable {
        case table, json, markdown
    }

    public static func render(_ loaded: LoadedConfig, format: Format) -> String {
        let rows = ConfigOption.all.map { option in
            (
                key: option.key, value: option.render(loaded.config) ?? "", source: loaded.origins[option.key] ?? "default",
                help: option.help
            )
        }
        switch format {
        case .table:
            let keyWidth = rows.map(\.key.count).max() ?? 0
            let valueWidth = min(rows.map(\.value.count).max() ?? 0, 40)
            var out = ""
            for row in rows {
                out += row.key.padding(toLength: keyWidth + 2, withPad: " ", startingAt: 0)
                out += row.value.padding(toLength: max(valueWidth, row.value.count) + 2, withPad: " ", startingAt: 0)
                out += row.source + "\n"
            }
            for warning in loaded.warnings { out += "warning: \(warning)\n" }
            return out
        case .json:
            var w = JSONWriter()
            w.beginObject()
            for row in rows {
                w.key(escaping: row.key)
                w.beginObject()
                w.key("value")
                w.string(row.value)
                w.key("source")
                w.string(row.source)
                w.endObject()
            }
            w.endObject()
            return String(decoding: w.bytes, as: UTF8.self) + "\n"
        case .markdown:
            var out = "| Key | Environment variable | Default | Meaning |\n| --- | --- | --- | --- |\n"
            let defaults = AppConfig()
            for option in ConfigOption.all {
                let env = option.key.uppercased().replacingOccurrences(of: ".", with: "_")
                var value = option.render(defaults) ?? ""
                if option.key == "instance.name" { value = "$HOSTNAME" }
                if option.key == "log.format" { value = "text on a terminal, else json" }
                let help = option.help.replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
                out += "| `\(option.key)` | `\(env)` | \(value.isEmpty ? "–" : "`\(value)`") | \(help) |\n"
            }
            return out
        }
    }
}
