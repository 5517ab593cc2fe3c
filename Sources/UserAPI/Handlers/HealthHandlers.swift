import Hummingbird
import NIOCore

/// `GET /healthz` (liveness) and `GET /readyz` (readiness).
///
/// Liveness only says the process can serve HTTP: a database outage must not
/// make the kubelet restart every replica. Readiness says whether this replica
/// should get traffic: storage answers and the process is not draining.
/// `?verbose` lists each check with its result and latency, in the format
/// kube-apiserver uses.
struct HealthHandlers {
    let deps: AppDependencies
    /// A readiness probe must answer before the kubelet's own timeout (1 s by default).
    static let storageCheckTimeout: Duration = .milliseconds(800)

    struct Check {
        let name: String
        let error: String?
        let duration: Duration
    }

    func healthz(_ request: Request, context: AppRequestContext) async throws -> Response {
        // Probed constantly: the common answer is prebuilt.
        guard Self.isVerbose(request) else { return Self.healthy }
        let checks = [Check(name: "ping", error: nil, duration: .zero)]
        return render(checks, probe: "healthz", verbose: true)
    }

    /// `{"status":"ok"}`, also sent by `EventLoopFastPath`.
    static let healthyBody: [UInt8] = {
        var w = JSONWriter()
        w.beginObject()
        w.key("status")
        w.string("ok")
        w.endObject()
        return w.bytes
    }()

    static let healthy: Response = {
        var response = Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: healthyBody)))
        response.headers[.cacheControl] = "no-store"
        return response
    }()

    static func isVerbose(_ request: Request) -> Bool {
        guard let query = request.uri.query, !query.isEmpty else { return false }
        return request.uri.queryParameters["verbose"] != nil
    }

    func readyz(_ request: Request, context: AppRequestContext) async throws -> Response {
        let draining = Check(
            name: "shutdown", error: deps.state.isDraining ? "draining: the server is shutting down" : nil, duration: .zero)
        let storage = await checkStorage(logger: context)
        return render([storage, draining], probe: "readyz", verbose: Self.isVerbose(request))
    }

    private func checkStorage(logger context: AppRequestContext) async -> Check {
        let start = ContinuousClock.now
        let store = deps.store
        do {
            try await withDeadline(Self.storageCheckTimeout) { try await store.ping() }
            return Check(name: "storage", error: nil, duration: .now - start)
        } catch is DeadlineExceeded {
            return Check(name: "storage", error: "\(store.backend) did not answer within 800ms", duration: .now - start)
        } catch {
            context.logger.debug("readiness: storage check failed", metadata: ["error": "\(error)"])
            return Check(name: "storage", error: "\(store.backend) is unavailable", duration: .now - start)
        }
    }

    private func render(_ checks: [Check], probe: String, verbose: Bool) -> Response {
        let failed = checks.filter { $0.error != nil }
        if verbose {
            var text = ""
            for check in checks {
                let ms = (check.duration.seconds * 10_000).rounded() / 10
                if let error = check.error {
                    text += "[-]\(check.name) failed: \(error) (\(ms)ms)\n"
                } else {
                    text += "[+]\(check.name) ok (\(ms)ms)\n"
                }
            }
            text += failed.isEmpty ? "\(probe) check passed\n" : "\(probe) check failed\n"
            return Responses.text(text, status: failed.isEmpty ? .ok : .serviceUnavailable)
        }
        guard failed.isEmpty else {
            return Problem(
                .serviceUnavailable, type: "not-ready", title: "Not ready",
                detail: failed.compactMap(\.error).joined(separator: "; ") + ".",
                headers: [.retryAfter: "1"]
            ).response(requestID: nil)
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("status")
        w.string(probe == "readyz" ? "ready" : "ok")
        w.endObject()
        var response = Responses.json(w)
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
