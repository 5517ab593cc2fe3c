import Foundation
import Hummingbird

/// `GET /`: which service, version and instance answered. JSON for API
/// clients; a small HTML page for browsers, handy to watch a rollout.
struct StatusHandler {
    let deps: AppDependencies

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let uptime = Int(deps.state.uptime.seconds)
        if Self.prefersHTML(request.headers[.accept]) {
            return Responses.text(html(uptime: uptime), contentType: "text/html; charset=utf-8")
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("service")
        w.string("userapi")
        w.key("version")
        w.string(BuildInfo.version)
        w.key("commit")
        w.string(BuildInfo.commit)
        w.key("instance")
        w.string(deps.config.instanceName)
        w.key("uptime_seconds")
        w.number(uptime)
        w.key("storage")
        w.string(deps.store.backend)
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

    private func html(uptime: Int) -> String {
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>userapi \(escape(BuildInfo.version))</title>
            <style>body{font-family:system-ui,sans-serif;margin:3rem;color:#222}dt{font-weight:600}dd{margin:0 0 .6rem 0;font-family:monospace}</style>
            </head><body><h1>userapi</h1><dl>
            <dt>version</dt><dd>\(escape(BuildInfo.version))</dd>
            <dt>commit</dt><dd>\(escape(BuildInfo.commit))</dd>
            <dt>instance</dt><dd>\(escape(deps.config.instanceName))</dd>
            <dt>uptime</dt><dd>\(uptime) s</dd>
            <dt>storage</dt><dd>\(escape(deps.store.backend))</dd>
            </dl><p><a href="/users">/users</a> · <a href="/openapi.yaml">/openapi.yaml</a> · <a href="/readyz?verbose">/readyz?verbose</a></p>
            </body></html>

            """
    }
}
