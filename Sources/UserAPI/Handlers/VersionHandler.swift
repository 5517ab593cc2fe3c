import Hummingbird

/// `GET /version`: the build stamp.
struct VersionHandler {
    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        var w = JSONWriter()
        w.beginObject()
        w.key("version")
        w.string(BuildInfo.version)
        w.key("commit")
        w.string(BuildInfo.commit)
        w.key("built")
        w.string(BuildInfo.built)
        w.endObject()
        return Responses.json(w)
    }
}
