import Hummingbird

/// `GET /`: which service and instance answered; with details (version,
/// commit, uptime, storage) for token holders when reads are protected. JSON
/// for API clients; a small HTML page for browsers, handy to watch a rollout.
struct StatusHandler {
    let deps: AppDependencies

    /// No script, no inline style, not framed: the page is static text and links.
    static let htmlPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        var fields = [("service", "userapi"), ("instance", deps.config.instanceName)]
        if deps.auth.showsDetails(request) {
            fields += [
                ("version", BuildInfo.version), ("commit", BuildInfo.commit),
                ("uptime_seconds", "\(Int(deps.state.uptime.seconds))"), ("storage", deps.store.backend),
            ]
        }
        if Self.prefersHTML(request.headers[.accept]) {
            var response = Responses.text(Self.html(fields), contentType: "text/html; charset=utf-8")
            response.headers[.contentSecurityPolicy] = Self.htmlPolicy
            return response
        }
        var w = JSONWriter()
        w.beginObject()
        for (key, value) in fields {
            w.key(escaping: key)
            if key == "uptime_seconds", let number = Int(value) { w.number(number) } else { w.string(value) }
        }
        w.endObject()
        return Responses.json(w)
    }

    /// True when the client lists text/html before (or instead of) JSON, as browsers do.
    static func prefersHTML(_ accept: String?) -> Bool {
        guard let accept else { return false }
        let types = accept.split(separator: ",").map { $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces) }
        guard let html = types.firstIndex(of: "text/html") else { return false }
        guard let json = types.firstIndex(of: "application/json") else { return true }
        return html < json
    }

    static func html(_ fields: [(String, String)]) -> String {
        func escape(_ s: String) -> String {
            var out = ""
            for c in s {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                default: out.append(c)
                }
            }
            return out
        }
        let rows = fields.dropFirst().map { "<dt>\(escape($0.0))</dt><dd>\(escape($0.1))</dd>" }.joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>userapi</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="stylesheet" href="/console/console.css">
            </head><body><main><h1>userapi</h1><dl>
            \(rows)
            </dl><p><a href="/console/">Console</a> · <a href="/openapi.yaml">API (OpenAPI)</a> · <a href="/readyz?verbose">Readiness</a></p>
            </main></body></html>

            """
    }
}
