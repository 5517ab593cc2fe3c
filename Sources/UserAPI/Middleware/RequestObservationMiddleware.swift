import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// Outermost middleware: gives every request an id (the client's
/// `X-Request-ID` when it is sane, a new one otherwise), echoes it, and
/// records the finished request in the access log and the HTTP metrics.
struct RequestObservationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let metrics: AppMetrics?
    let accessLog: AccessLog

    static let requestIDHeader = HTTPField.Name("X-Request-ID")!
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!

    /// Template → index into `Route.templates`, for the metrics cache key.
    private static let routeIndex: [String: Int] = Dictionary(
        uniqueKeysWithValues: Route.templates.enumerated().map { ($0.element, $0.offset) })

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        let requestID = Self.saneRequestID(request.headers[Self.requestIDHeader]) ?? Self.newRequestID()
        context.requestID = requestID
        context.logger[metadataKey: "request_id"] = .string(requestID)
        context.logger[metadataKey: "hb.request.id"] = nil  // ours replaces Hummingbird's internal id
        metrics?.requestStarted()

        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // ProblemMiddleware answers everything; this only guards against a bug there.
            response = ProblemMiddleware.problem(for: error, request: request, context: context, routes: [])
                .response(requestID: requestID)
        }
        response.headers[Self.requestIDHeader] = requestID
        response.headers[Self.contentTypeOptions] = "nosniff"

        let duration = ContinuousClock.now - start
        // Only known templates become labels: anything else (Hummingbird names
        // misses "NotFound") is one "unmatched" series, so scanners cannot
        // explode the metric cardinality.
        let routeIndex = context.endpointPath.flatMap { Self.routeIndex[$0] }
        let route = routeIndex != nil ? context.endpointPath! : "unmatched"
        let status = Int(response.status.code)
        metrics?.requestFinished(
            method: request.method, route: route, routeIndex: routeIndex ?? Route.templates.count,
            status: status, duration: duration)
        accessLog.record(
            method: request.method.rawValue, route: route, path: request.uri.path, status: status,
            duration: duration, bytes: response.body.contentLength ?? 0, requestID: requestID,
            client: context.clientAddress, userAgent: request.headers[.userAgent], tokenID: context.notes.tokenID)
        return response
    }

    /// Accepts 1–128 characters of letters, digits and `-_.:`; anything else
    /// (possibly crafted to break log parsing) is replaced.
    static func saneRequestID(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count) else { return nil }
        let ok = value.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":")
        }
        return ok ? value : nil
    }

    /// A random 32-bit prefix chosen at start and a 32-bit counter: 16 hex
    /// digits, unique within the process and across replicas in practice,
    /// without a getrandom(2) call per request.
    private static let idPrefix = UInt64(UInt32.random(in: .min ... .max)) << 32
    private static let idCounter = Atomic<UInt32>(0)

    static func newRequestID() -> String {
        var value = idPrefix | UInt64(idCounter.wrappingAdd(1, ordering: .relaxed).newValue)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 16) { buffer in
            for i in (0..<16).reversed() {
                buffer[i] = digits[Int(value & 0xF)]
                value >>= 4
            }
            return 16
        }
    }
}
