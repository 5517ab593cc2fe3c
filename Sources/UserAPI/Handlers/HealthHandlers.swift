import Hummingbird
import NIOCore

/// `GET /healthz` (liveness) and `GET /readyz` (readiness).
///
/// Liveness only says the process can serve HTTP: a database outage must not
/// make the kubelet restart every replica. Readiness says whether this replica
/// should get traffic: each dependency answers within its time and the
/// process is not draining. `?verbose` lists each check with its result and
/// latency, in the format kube-apiserver uses.
struct HealthHandlers: Sendable {
    /// One thing readiness depends on: throws (or outlasts `timeout`) when it is not ready.
    struct Dependency: Sendable {
        let name: String
        let check: @Sendable () async throws -> Void
    }

    let state: AppState
    let dependencies: [Dependency]
    /// Whether `?verbose` may list the checks for this request (see `Authenticator.showsDetails`).
    let showsDetails: @Sendable (Request) -> Bool
    /// A readiness probe must answer before the kubelet's own timeout (1 s by default).
    static let timeout: Duration = .milliseconds(800)

    struct Check {
        let name: String
        let error: String?
        let duration: Duration
    }

    func healthz(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard Self.isVerbose(request), showsDetails(request) else { return Self.healthy }
        return render([Check(name: "ping", error: nil, duration: .zero)], probe: "healthz", verbose: true, context: context)
    }

    /// Probed constantly: the common answer is built once.
    static let healthy: Response = {
        var w = JSONWriter()
        w.beginObject()
        w.key("status")
        w.string("ok")
        w.endObject()
        var response = Responses.json(w)
        response.headers[.cacheControl] = "no-store"
        return response
    }()

    static func isVerbose(_ request: Request) -> Bool {
        guard let query = request.uri.query, !query.isEmpty else { return false }
        return request.uri.queryParameters["verbose"] != nil
    }

    func readyz(_ request: Request, context: AppRequestContext) async throws -> Response {
        var checks: [Check] = []
        for dependency in dependencies { checks.append(await run(dependency, context: context)) }
        checks.append(
            Check(name: "listener", error: state.port == 0 ? "the API listener is not open yet" : nil, duration: .zero))
        checks.append(
            Check(name: "shutdown", error: state.isDraining ? "draining: the server is shutting down" : nil, duration: .zero))
        return render(checks, probe: "readyz", verbose: Self.isVerbose(request) && showsDetails(request), context: context)
    }

    private func run(_ dependency: Dependency, context: AppRequestContext) async -> Check {
        let start = ContinuousClock.now
        do {
            try await withDeadline(Self.timeout, dependency.check)
            return Check(name: dependency.name, error: nil, duration: .now - start)
        } catch is DeadlineExceeded {
            return Check(name: dependency.name, error: "\(dependency.name) did not answer within 800ms", duration: .now - start)
        } catch {
            context.logger.debug("readiness: \(dependency.name) check failed", metadata: ["error": "\(error)"])
            return Check(name: dependency.name, error: "\(dependency.name): \(Self.reason(error))", duration: .now - start)
        }
    }

    /// What a failed check says: a store's reason, or the error's own words.
    static func reason(_ error: any Error) -> String {
        switch error {
        case StoreError.unavailable(let reason): reason
        case StoreError.overloaded: "too many writes queued"
        default: "\(error)"
        }
    }

    private func render(_ checks: [Check], probe: String, verbose: Bool, context: AppRequestContext) -> Response {
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
            ).response(requestID: context.requestID)
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
