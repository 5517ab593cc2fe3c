// swift-tools-version: 6.2
import PackageDescription

// Build stamp: `make release` / the Dockerfile export these so `userapi version`
// and `GET /version` say exactly what was built. Unset means "unknown".
// They reach the binary as C string macros of the tiny CBuildInfo target, so a
// changed stamp recompiles one C file, never the Swift modules.
func stamp(_ name: String) -> String {
    let raw = Context.environment[name] ?? ""
    let clean = raw.filter { $0.isLetter || $0.isNumber || "._-+:".contains($0) }
    return "\"\(clean.isEmpty ? "unknown" : String(clean.prefix(64)))\""
}

let package = Package(
    name: "userapi",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "userapi", targets: ["userapi"]),
        .library(name: "UserAPI", targets: ["UserAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(
            url: "https://github.com/apple/swift-configuration.git", from: "1.4.0",
            traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams.git", "5.0.1"..<"7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Also reached through Hummingbird and postgres-nio; named here because
        // our sources import their modules directly.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // OTLP over HTTP only: the gRPC exporter would pull grpc-swift and
        // double the clean build time for no operational gain (collectors speak both).
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .target(
            name: "CBuildInfo",
            cSettings: [
                .define("USERAPI_VERSION", to: stamp("USERAPI_VERSION")),
                .define("USERAPI_COMMIT", to: stamp("USERAPI_COMMIT")),
                .define("USERAPI_BUILT", to: stamp("USERAPI_BUILT")),
            ]
        ),
        // glibc's mallopt, which Swift's Glibc module does not export.
        .target(name: "CMalloc"),
        .target(
            name: "UserAPI",
            dependencies: [
                "CBuildInfo",
                "CMalloc",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [
                .embedInCode("Resources/openapi.yaml"),
                .embedInCode("Resources/console/index.html"),
                .embedInCode("Resources/console/console.js"),
                .embedInCode("Resources/console/console.css"),
            ]
        ),
        .executableTarget(
            name: "userapi",
            dependencies: [
                "UserAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // posix_spawn with chdir/closefrom for the process-level tests (see its header).
        .target(name: "CTestSpawn", path: "Tests/CTestSpawn"),
        .testTarget(
            name: "UserAPITests",
            dependencies: [
                "UserAPI",
                "CTestSpawn",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
