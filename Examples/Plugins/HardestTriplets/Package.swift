// swift-tools-version: 6.0
// A miner plugin written in Swift: a shared library that `dml --plugin` loads at start-up. It
// depends on nothing of the library but the C interface, dml_plugin.h (the DMLPluginABI product),
// and exports the one entry point with @_cdecl.
//
//   swift build -c release   # .build/release/libHardestTriplets.so
//   dml --plugin .build/release/libHardestTriplets.so train --loss triplet --miner hardest-triplets ...
import PackageDescription

let package = Package(
  name: "hardest-triplets-plugin",
  products: [.library(name: "HardestTriplets", type: .dynamic, targets: ["HardestTriplets"])],
  dependencies: [.package(name: "swift-metric-learning", path: "../../..")],
  targets: [
    .target(name: "HardestTriplets", dependencies: [.product(name: "DMLPluginABI", package: "swift-metric-learning")])
  ]
)
