import Foundation
import HTTPTypes
import Prometheus
import Synchronization

/// The service's Prometheus metrics, one registry per application instance
/// (tests build several apps in one process).
///
/// Request metrics are looked up per request, so labelled handles are cached
/// under a small integer key: a lookup is one lock and one integer hash, not a
/// label-set build and a registry search.
public final class AppMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    private let requestsInFlight: Gauge
    private let handles = Mutex<[Int: RequestHandles]>([:])
    private let storageHandles = Mutex<[String: StorageHandles]>([:])
    private let processMetrics: ProcessMetrics
    private let collectors = Mutex<[@Sendable () -> Void]>([])

    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    struct RequestHandles: Sendable {
        let total: Counter
        let duration: DurationHistogram
    }

    struct StorageHandles: Sendable {
        let duration: DurationHistogram
    }

    public init(version: String, commit: String) {
        registry = PrometheusCollectorRegistry()
        requestsInFlight = registry.makeGauge(
            descriptor: .init(
                metricName: "http_requests_in_flight", unitName: "",
                helpText: "HTTP requests being served right now."), labels: [])
        registry.makeGauge(
            descriptor: .init(
                metricName: "userapi_build_info", unitName: "",
                helpText: "Always 1; labels say which build is running."),
            labels: [("version", version), ("commit", commit)]
        ).set(1.0)
        processMetrics = ProcessMetrics(registry: registry)
    }

    // MARK: HTTP

    static let knownMethods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .head, .options]

    func requestStarted() { requestsInFlight.increment() }

    /// A request that was started and then handed on (it is counted where it is answered).
    func requestAbandoned() { requestsInFlight.decrement() }

    func requestFinished(method: HTTPRequest.Method, route: String, routeIndex: Int, status: Int, duration: Duration) {
        requestsInFlight.decrement()
        let methodIndex = Self.knownMethods.firstIndex(of: method) ?? Self.knownMethods.count
        let key = (routeIndex << 16) | (methodIndex << 10) | min(status, 999)
        let h = handles.withLock { cache -> RequestHandles in
            if let h = cache[key] { return h }
            let methodLabel = methodIndex < Self.knownMethods.count ? method.rawValue : "OTHER"
            let h = RequestHandles(
                total: registry.makeCounter(
                    descriptor: .init(
                        metricName: "http_requests", unitName: "total",
                        helpText: "HTTP requests answered, by method, route template and status code."),
                    labels: [("method", methodLabel), ("route", route), ("status", String(status))]),
                duration: registry.makeDurationHistogram(
                    descriptor: .init(
                        metricName: "http_request_duration", unitName: "seconds",
                        helpText: "Time from request head to response, by method and route template."),
                    labels: [("method", methodLabel), ("route", route)],
                    buckets: Self.durationBuckets))
            cache[key] = h
            return h
        }
        h.total.increment()
        h.duration.record(duration)
    }

    // MARK: Feed

    /// The feed's series exist from the start (at 0), so `rate()` sees a pod's first drop.
    func declareFeed() {
        feedWatchers(0)
        for transport in ["sse", "websocket"] { feedSent(0, transport: transport) }
        for reason in ["too_slow", "expired"] { feedDropped(reason: reason, by: 0) }
    }

    func feedWatchers(_ delta: Int) {
        let gauge = registry.makeGauge(
            descriptor: .init(
                metricName: "userapi_feed_watchers", unitName: "", helpText: "Feed streams and WebSockets open right now."),
            labels: [])
        if delta > 0 { gauge.increment(by: Double(delta)) } else { gauge.decrement(by: Double(-delta)) }
    }

    func feedSent(_ count: Int, transport: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "userapi_feed_events_sent", unitName: "total",
                helpText: "Events sent to watchers, by transport (sse, websocket)."),
            labels: [("transport", transport)]
        ).increment(by: Int64(count))
    }

    func feedDropped(reason: String, by count: Int64 = 1) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "userapi_feed_watchers_dropped", unitName: "total",
                helpText: "Watchers the server disconnected: too_slow (fell behind) or expired (events no longer kept)."),
            labels: [("reason", reason)]
        ).increment(by: count)
    }

    /// A refused authentication, by reason: missing, invalid, read_only, limited.
    func authFailure(reason: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "userapi_auth_failures", unitName: "total",
                helpText: "Requests refused for their token: missing, invalid, read-only for a write, or limited."),
            labels: [("reason", reason)]
        ).increment()
    }

    /// A connection the server closed on its own (`ConnectionRules`), by reason.
    func connectionClosed(reason: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "userapi_http_connections_closed", unitName: "total",
                helpText:
                    "Connections closed by the server: slow or stalled requests, per-client limit, invalid framing, early errors."
            ),
            labels: [("reason", reason)]
        ).increment()
    }

    // MARK: Storage

    func storageOperation(backend: String, operation: String, duration: Duration, error: String?) {
        let key = backend + "/" + operation
        let h = storageHandles.withLock { cache -> StorageHandles in
            if let h = cache[key] { return h }
            let h = StorageHandles(
                duration: registry.makeDurationHistogram(
                    descriptor: .init(
                        metricName: "userapi_storage_operation_duration", unitName: "seconds",
                        helpText: "Time spent in storage calls, by backend and operation."),
                    labels: [("backend", backend), ("operation", operation)],
                    buckets: Self.durationBuckets))
            cache[key] = h
            return h
        }
        h.duration.record(duration)
        if let error {
            registry.makeCounter(
                descriptor: .init(
                    metricName: "userapi_storage_errors", unitName: "total",
                    helpText: "Storage calls that failed for reasons other than the client's input."),
                labels: [("backend", backend), ("operation", operation), ("kind", error)]
            ).increment()
        }
    }

    /// Makes sure the storage error series exist at zero, so alerts on
    /// `rate(userapi_storage_errors_total[5m])` have data before the first error.
    func declareStorageErrors(backend: String) {
        for operation in ["list", "get", "create", "update", "delete", "ping"] {
            _ = registry.makeCounter(
                descriptor: .init(
                    metricName: "userapi_storage_errors", unitName: "total",
                    helpText: "Storage calls that failed for reasons other than the client's input."),
                labels: [("backend", backend), ("operation", operation), ("kind", "unavailable")])
        }
    }

    /// Registers a closure run before every scrape (e.g. to read pool gauges).
    func onScrape(_ collector: @escaping @Sendable () -> Void) {
        collectors.withLock { $0.append(collector) }
    }

    func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    /// The exposition text for one scrape.
    public func render() -> [UInt8] {
        processMetrics.update()
        for collect in collectors.withLock({ $0 }) { collect() }
        return registry.emitToBuffer()
    }
}
