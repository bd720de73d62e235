// dml-bench: benchmarks of swift-metric-learning beside their references, measured in one run.
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first ?? "foundation" {
case "foundation":
  FoundationBenchmark.run(quick: arguments.contains("--quick"))
case "layers":
  LayerProfile.run()
default:
  FileHandle.standardError.write(Data("usage: dml-bench foundation [--quick] | layers\n".utf8))
  exit(2)
}
