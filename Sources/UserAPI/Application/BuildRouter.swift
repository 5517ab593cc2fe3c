import Hummingbird
import Logging

/// The router for `routes`, behind the shared middleware: request id, access
/// log and metrics; problem answers; load shedding for everything but probes
/// and metrics; tokens as each route's `access` says.
func buildRouter(_ deps: AppDependencies, routes: [Route], logger: Logger) -> Router<AppRequestContext> {
    // HEAD answers for every GET route (RFC 9110 requires it of a general-purpose server):
    // same status and headers as GET, no body.
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    if deps.config.tracing.enabled {
        router.add(middleware: TracingMiddleware(recordingHeaders: [.userAgent], redactingQueryParameters: ["email"]))
    }
    router.add(
        middleware: RequestObservationMiddleware(
            metrics: deps.metrics, accessLog: AccessLog(config: deps.config, logger: logger)))
    router.add(middleware: ProblemMiddleware(routes: routes))
    let api = router.group()
    if deps.inFlight.limit > 0 { api.add(middleware: LoadSheddingMiddleware(requests: deps.inFlight)) }
    let guarded = api.group().add(middleware: AuthMiddleware(auth: deps.auth))
    for route in routes {
        let path = RouterPath(route.path)
        let handler = RouteHandlers.handler(for: route, deps)
        if route.isManagement {
            router.on(path, method: route.method, use: handler)
        } else if route.access == .open {
            api.on(path, method: route.method, use: handler)
        } else {
            guarded.on(path, method: route.method, use: handler)
        }
    }
    return router
}

/// The router that decides WebSocket upgrades (hummingbird-websocket asks it
/// before switching protocols): `/users/watch`, behind the same request id,
/// access log and metrics as every other request.
func buildWebSocketRouter(_ deps: AppDependencies, logger: Logger) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(
        middleware: RequestObservationMiddleware(
            metrics: deps.metrics, accessLog: AccessLog(config: deps.config, logger: logger)))
    let watch = WatchHandler(feed: deps.feed, auth: deps.auth)
    router.ws(RouterPath(Route.watchUsers.path)) { inbound, outbound, context in
        try await watch.handle(inbound: inbound, outbound: outbound, context: context)
    }
    return router
}

extension Route {
    typealias Handler = @Sendable (Request, AppRequestContext) async throws -> Response

    /// The routes a listener serves: with a management port, probes and
    /// metrics are there and only there; without metrics, no `/metrics`.
    static func served(management: Bool, config: AppConfig) -> [Route] {
        let separate = config.http.managementPort != 0
        return allCases.filter { route in
            (route != .metrics || config.metrics.enabled) && (separate ? route.isManagement == management : !management)
        }
    }
}

private enum RouteHandlers {
    static func handler(for route: Route, _ deps: AppDependencies) -> Route.Handler {
        switch route {
        case .status: StatusHandler(deps: deps).handle
        case .version: VersionHandler().handle
        case .openAPI: OpenAPIHandler().handle
        case .healthz: deps.health.healthz
        case .readyz: deps.health.readyz
        case .metrics: MetricsHandler(metrics: deps.metrics).handle
        case .listUsers: ListUsersHandler(deps: deps).handle
        case .createUser: CreateUserHandler(deps: deps).handle
        case .getUser: GetUserHandler(deps: deps).handle
        case .replaceUser: ReplaceUserHandler(deps: deps).handle
        case .patchUser: PatchUserHandler(deps: deps).handle
        case .deleteUser: DeleteUserHandler(deps: deps).handle
        case .userEvents: UserEventsHandler(feed: deps.feed).handle
        case .watchUsers: WatchWithoutUpgradeHandler().handle
        case .console: ConsoleHandler().page
        case .consoleAsset: ConsoleHandler().asset
        }
    }
}
