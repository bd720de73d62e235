// swift-tools-version: 6.0
import PackageDescription

// The manifest reads as a table: one row per library module, with its dependencies.
// Adding a module is one line; its product and its test target derive from the row.
let modules: [(name: String, dependencies: [Target.Dependency], hasTests: Bool)] = [
  ("DMLKernels", ["CBLAS", .product(name: "RealModule", package: "swift-numerics")], true),
  ("DMLCore", ["DMLKernels"], false),
  ("DMLNetworks", ["DMLCore"], true),
  ("DMLTraining", ["DMLCore", "CZlib"], true),
  ("ContrastiveLosses", ["DMLCore"], false),
  ("TripletLosses", ["DMLCore"], false),
  ("CenterLosses", ["DMLCore"], false),
  ("ProxyLosses", ["DMLCore"], false),
  ("ClassificationLosses", ["DMLCore"], false),
  // `swift package new-loss NAME` adds a loss module's row above this line and names it in DMLLosses.
  ("DMLLosses", ["ContrastiveLosses", "TripletLosses", "CenterLosses", "ProxyLosses", "ClassificationLosses"], true),
  ("DMLSamplers", ["DMLCore"], true),
  ("DMLEvaluation", ["DMLCore"], true),
  ("DMLData", ["DMLCore", "CZlib"], true),
  ("DMLTesting", ["DMLCore"], false),
  ("DMLPlot", ["DMLCore", "DMLEvaluation", "DMLData", "CBLAS", "CZlib", "CFreeType"], true),
  // The umbrella. It also depends directly on the loss modules and DMLTesting so that its DocC
  // articles can link to their pages (combined documentation links to direct dependencies only).
  ("MetricLearning", ["DMLKernels", "DMLCore", "DMLNetworks", "DMLTraining", "DMLLosses", "DMLSamplers", "DMLEvaluation", "DMLData", "DMLPlot",
    "ContrastiveLosses", "TripletLosses", "CenterLosses", "ProxyLosses", "ClassificationLosses", "DMLTesting"], false),
]

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

var targets: [Target] = [
  .systemLibrary(
    name: "CBLAS", pkgConfig: "openblas",
    providers: [.apt(["libopenblas-dev"])]),
  .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
  .systemLibrary(name: "CFreeType", pkgConfig: "freetype2", providers: [.apt(["libfreetype-dev"])]),
]
targets += modules.map {
  .target(name: $0.name, dependencies: $0.dependencies, swiftSettings: strict)
}
// Test targets whose folder holds a `Golden` directory of reference values.
let goldenTests: Set<String> = ["DMLNetworks", "DMLLosses", "DMLSamplers", "DMLEvaluation"]
targets += modules.filter(\.hasTests).map { module in
  .testTarget(
    name: "\(module.name)Tests",
    dependencies: Array(Set([module.name, "DMLTesting", "DMLNetworks", "DMLTraining", "DMLLosses", "DMLSamplers", "DMLEvaluation", "DMLData"])).sorted().map {
      .target(name: $0)
    },
    resources: goldenTests.contains(module.name) ? [.copy("Golden")] : [],
    swiftSettings: strict)
}

// The command line: a command library (reusable with another registry) and a thin executable,
// the only targets that import ArgumentParser.
targets += [
  .target(
    name: "DMLCommands",
    dependencies: ["MetricLearning", .product(name: "ArgumentParser", package: "swift-argument-parser")],
    swiftSettings: strict),
  .executableTarget(name: "dml", dependencies: ["DMLCommands"], swiftSettings: strict),
  .testTarget(name: "DMLCommandsTests", dependencies: ["DMLCommands"], swiftSettings: strict),
]

// `swift package --allow-writing-to-package-directory new-loss NAME`: scaffolds a loss module, its
// conformance tests and its registration (a thin command plugin driving an executable).
targets += [
  .executableTarget(name: "dml-new-loss", path: "Plugins/dml-new-loss", swiftSettings: strict),
  .plugin(
    name: "NewLoss",
    capability: .command(
      intent: .custom(verb: "new-loss", description: "Scaffold a loss module, its conformance tests and its registration"),
      permissions: [.writeToPackageDirectory(reason: "writes Sources/NAMELoss, Tests/NAMELossTests and registers the loss")]),
    dependencies: ["dml-new-loss"], path: "Plugins/NewLoss"),
]

// Benchmarks: an executable beside the library, never run by the tests. MallocCounter interposes
// malloc in that executable only, to count allocations per training step.
targets += [
  .target(name: "MallocCounter", path: "Benchmarks/Sources/MallocCounter"),
  .executableTarget(
    name: "dml-bench", dependencies: ["MallocCounter", "MetricLearning"],
    path: "Benchmarks/Sources/dml-bench", swiftSettings: strict),
  .target(name: "FuzzTargets", dependencies: ["MetricLearning", "DMLCommands"], path: "Benchmarks/Sources/FuzzTargets", swiftSettings: strict),
  .executableTarget(
    name: "dml-libfuzzer", dependencies: ["FuzzTargets"],
    path: "Benchmarks/Sources/dml-libfuzzer", swiftSettings: strict),
  .executableTarget(
    name: "dml-fuzz", dependencies: ["FuzzTargets", "MetricLearning", "CZlib"],
    path: "Benchmarks/Sources/dml-fuzz", swiftSettings: strict),
]

let package = Package(
  name: "swift-metric-learning",
  products: modules.map { .library(name: $0.name, targets: [$0.name]) }
    + [
      .library(name: "DMLCommands", targets: ["DMLCommands"]),
      .executable(name: "dml", targets: ["dml"]),
      .plugin(name: "NewLoss", targets: ["NewLoss"]),
      .executable(name: "dml-bench", targets: ["dml-bench"]),
      .executable(name: "dml-fuzz", targets: ["dml-fuzz"]),
      .executable(name: "dml-libfuzzer", targets: ["dml-libfuzzer"]),
    ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-numerics", from: "1.1.0"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    // `swift package generate-documentation` (make docs): the DocC catalog is Docs/MetricLearning.docc.
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
  ],
  targets: targets,
  swiftLanguageModes: [.v6]
)
