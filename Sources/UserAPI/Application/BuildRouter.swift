import Hummingbird
import Logging

/// Wires handlers to the routes of `RouteTable`, behind the shared middleware.
func buildRouter(_ deps: AppDependencies, tracing: Bool, logger: Logger) -> Router<AppRequestContext> {
    // HEAD answers for every GET route (RFC 9110 requires it of a general-purpose server):
    // same status and headers as GET, no body.
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    if tracing {
        router.add(middleware: TracingMiddleware(recordingHeaders: [.userAgent], redactingQueryParameters: ["email"]))
    }
    router.add(
        middleware: RequestObservationMiddleware(
            metrics: deps.metrics, accessLog: AccessLog(config: deps.config, logger: logger)))
    router.add(middleware: ProblemMiddleware())
    if deps.inFlight.limit > 0 {
        router.add(middleware: LoadSheddingMiddleware(requests: deps.inFlight))
    }

    let status = StatusHandler(deps: deps)
    let health = HealthHandlers(deps: deps)
    router.get("/", use: status.handle)
    router.get("/version", use: VersionHandler().handle)
    router.get("/healthz", use: health.healthz)
    router.get("/readyz", use: health.readyz)
    router.get("/openapi.yaml", use: OpenAPIHandler().handle)
    if let metrics = deps.metrics, deps.config.metrics.port == 0 {
        router.get("/metrics", use: MetricsHandler(metrics: metrics).handle)
    }

    let users = router.group("/users")
        .add(middleware: AuthMiddleware(tokens: deps.tokens, protectReads: deps.config.auth.protectReads))
    users.get(use: ListUsersHandler(deps: deps).handle)
    users.post(use: CreateUserHandler(deps: deps).handle)
    users.get("{id}", use: GetUserHandler(deps: deps).handle)
    users.put("{id}", use: ReplaceUserHandler(deps: deps).handle)
    users.patch("{id}", use: PatchUserHandler(deps: deps).handle)
    users.delete("{id}", use: DeleteUserHandler(deps: deps).handle)
    return router
}
