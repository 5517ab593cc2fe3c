import CBuildInfo

/// What was built: stamped at build time from USERAPI_VERSION, USERAPI_COMMIT
/// and USERAPI_BUILT (see Package.swift), `unknown` when not stamped.
public enum BuildInfo {
    public static let version = String(cString: userapi_build_version())
    public static let commit = String(cString: userapi_build_commit())
    public static let built = String(cString: userapi_build_time())
}
