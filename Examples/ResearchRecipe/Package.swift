// swift-tools-version: 6.0
// An external package that extends swift-metric-learning as a researcher would: a loss (binomial
// deviance, Yi et al. 2014), a miner and a residual network of its own.
// It depends on the library like any user's package would, passes the library's conformance suite,
// and runs the library's `dml` command line with its components registered beside the standard ones.
import PackageDescription

let package = Package(
  name: "research-recipe-example",
  products: [.library(name: "ResearchRecipe", targets: ["ResearchRecipe"])],
  dependencies: [.package(name: "swift-metric-learning", path: "../..")],
  targets: [
    .target(
      name: "ResearchRecipe",
      dependencies: [
        .product(name: "DMLCore", package: "swift-metric-learning"), .product(name: "DMLNetworks", package: "swift-metric-learning"),
        .product(name: "DMLRun", package: "swift-metric-learning"),
      ]),
    // The library from a program: the package's network, loss and miner through the run API.
    .executableTarget(
      name: "train-recipe",
      dependencies: ["ResearchRecipe", .product(name: "MetricLearning", package: "swift-metric-learning")]),
    // `dml` with the standard registry plus this package's components:
    // `dml-recipe train --loss binomial-deviance --miner hardest-pairs --network residual-mlp ...`.
    .executableTarget(
      name: "dml-recipe",
      dependencies: [
        "ResearchRecipe",
        .product(name: "DMLCommands", package: "swift-metric-learning"),
        .product(name: "DMLLosses", package: "swift-metric-learning"),
      ]),
    .testTarget(
      name: "ResearchRecipeTests",
      dependencies: ["ResearchRecipe", .product(name: "DMLTesting", package: "swift-metric-learning")]),
  ]
)
