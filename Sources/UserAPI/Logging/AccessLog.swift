import Logging

/// The access log: one line per request, in the same format and stream as
/// every other log line (`StdoutLogHandler`), written directly.
///
/// This is the hottest log call: going through swift-log's Logger builds and
/// merges metadata dictionaries per request (measured ~15 % of a `/healthz`
/// request's cost), so the fixed fields are written straight into the line.
struct AccessLog: Sendable {
    let format: StdoutLogHandler.Format
    let enabled: Bool
    let instance: String
    /// Supplies `trace_id`/`span_id` when tracing is on.
    let metadataProvider: Logger.MetadataProvider?

    init(config: AppConfig, logger: Logger) {
        format = config.log.format == .json ? .json : .text
        enabled = config.log.access && config.log.level <= .info
        instance = config.instanceName
        metadataProvider = logger.metadataProvider
    }

    func record(
        method: String, route: String, path: String, status: Int, duration: Duration, bytes: Int, requestID: String
    ) {
        guard enabled else { return }
        let millis = (duration.seconds * 1_000_000).rounded() / 1000
        let provided = metadataProvider?.get()
        var line: [UInt8]
        switch format {
        case .json:
            var w = StdoutLogHandler.jsonLine(level: .info, message: "request", logger: "userapi")
            w.key("instance")
            w.string(instance)
            w.key("request_id")
            w.string(requestID)
            w.key("method")
            w.string(method)
            w.key("route")
            w.string(route)
            w.key("path")
            w.string(path)
            w.key("status")
            w.number(status)
            w.key("duration_ms")
            w.number(millis)
            w.key("bytes")
            w.number(bytes)
            if let provided {
                for (key, value) in provided {
                    w.key(escaping: key)
                    w.string(value.description)
                }
            }
            w.endObject()
            line = w.bytes
        case .text:
            var text = "\(Timestamp.rfc3339(millis: Timestamp.nowMillis())) INFO request"
            text += " bytes=\(bytes) duration_ms=\(millis) instance=\(instance) method=\(method) path=\(path)"
            text += " request_id=\(requestID) route=\(route) status=\(status)"
            for (key, value) in provided ?? [:] { text += " \(key)=\(value)" }
            line = Array(text.utf8)
        }
        line.append(0x0A)
        StdoutSink.shared.write(line, urgent: false)
    }
}
