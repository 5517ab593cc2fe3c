// swift-tools-version: 6.2
import PackageDescription

// The floor for `make bench`: a Hummingbird 2 router with one route answering
// like userapi's `GET /healthz`, and nothing else. Measured beside userapi in
// the same run, on the same core, it shows what the framework's request path
// costs before any userapi code runs. Same Hummingbird floor as the main package.
let package = Package(
    name: "bench-baselines",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1")
    ],
    targets: [
        .executableTarget(
            name: "hummingbird-fixed-200",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        )
    ],
    swiftLanguageModes: [.v6]
)
