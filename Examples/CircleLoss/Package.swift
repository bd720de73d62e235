// swift-tools-version: 6.0
// An external package that extends swift-metric-learning as a researcher would: a loss (Circle
// loss, Sun et al. 2020), a miner and a residual network of its own.
// It depends on the library like any user's package would, passes the library's conformance suite,
// and runs the library's `dml` command line with its loss registered beside the standard ones.
import PackageDescription

let package = Package(
  name: "circle-loss-example",
  products: [.library(name: "CircleLoss", targets: ["CircleLoss"])],
  dependencies: [.package(name: "swift-metric-learning", path: "../..")],
  targets: [
    .target(
      name: "CircleLoss",
      dependencies: [
        .product(name: "DMLCore", package: "swift-metric-learning"), .product(name: "DMLNetworks", package: "swift-metric-learning"),
        .product(name: "DMLRun", package: "swift-metric-learning"),
      ]),
    // The library from a program: the package's network, loss and miner through the run API.
    .executableTarget(
      name: "train-recipe",
      dependencies: ["CircleLoss", .product(name: "MetricLearning", package: "swift-metric-learning")]),
    // `dml` with the standard registry plus Circle loss: `dml-circle train --loss circle ...`.
    .executableTarget(
      name: "dml-circle",
      dependencies: [
        "CircleLoss",
        .product(name: "DMLCommands", package: "swift-metric-learning"),
        .product(name: "DMLLosses", package: "swift-metric-learning"),
      ]),
    .testTarget(
      name: "CircleLossTests",
      dependencies: ["CircleLoss", .product(name: "DMLTesting", package: "swift-metric-learning")]),
  ]
)
