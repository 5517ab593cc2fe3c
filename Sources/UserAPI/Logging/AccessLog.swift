import Logging

/// The access log: one line per request, in the same format and stream as
/// every other log line (`StdoutLogHandler`), written directly.
///
/// This is the hottest log call: going through swift-log's Logger would build
/// and merge metadata dictionaries per request, so the fixed fields are
/// written straight into the line. Tokens appear only as their id.
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
        method: String, route: String, path: String, status: Int, duration: Duration, bytes: Int, requestID: String,
        client: String, userAgent: String?, tokenID: String?
    ) {
        guard enabled else { return }
        let millis = (duration.seconds * 1_000_000).rounded() / 1000
        let provided = metadataProvider?.get()
        // The user agent is the client's text: cut to a length a log line can carry.
        let agent = userAgent.map { String($0.prefix(200)) }
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
            w.key("client")
            w.string(client)
            if let agent {
                w.key("user_agent")
                w.string(agent)
            }
            if let tokenID {
                w.key("token")
                w.string(tokenID)
            }
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
            text += " bytes=\(bytes) client=\(client) duration_ms=\(millis) instance=\(instance) method=\(method) path=\(path)"
            text += " request_id=\(requestID) route=\(route) status=\(status)"
            if let tokenID { text += " token=\(tokenID)" }
            if let agent { text += " user_agent=\"\(agent.filter { $0 != "\"" && !$0.isNewline })\"" }
            for (key, value) in provided ?? [:] { text += " \(key)=\(value)" }
            line = Array(text.utf8)
        }
        line.append(0x0A)
        StdoutSink.shared.write(line, urgent: false)
    }
}
