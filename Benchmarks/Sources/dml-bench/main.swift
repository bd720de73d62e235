// dml-bench: benchmarks of swift-metric-learning beside their references, measured in one run.
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first ?? "foundation" {
case "foundation":
  FoundationBenchmark.run(quick: arguments.contains("--quick"))
case "losses":
  LossBenchmark.run(quick: arguments.contains("--quick"), large: !arguments.contains("--no-large"))
case "loss-loop":
  // For a profiler: one loss case, evaluated for about five seconds.
  LossBenchmark.loop(arguments.count > 1 ? arguments[1] : "center")
case "cases":
  // Issue 7: the cases of the side-by-side comparison (Scripts/compare.py), as JSON.
  exit(ComparisonCases.run(Array(arguments.dropFirst())))
case "search":
  SearchBenchmark.run(large: !arguments.contains("--no-large"))
case "topk":
  TopKBenchmark.run(Array(arguments.dropFirst()))
case "index":
  IndexBenchmark.run(Array(arguments.dropFirst()))
case "distance":
  DistanceProfile.run()
case "layers":
  LayerProfile.run()
case "plots":
  PlotBenchmark.run()
case "images":
  exit(ImageBenchmark.run(Array(arguments.dropFirst())))
case "resnet":
  ResNetBenchmark.run(Array(arguments.dropFirst()))
case "resources":
  exit(ResourceCheck.run(arguments.count > 1 ? arguments[1] : "mining:semihard") ? 0 : 1)
default:
  FileHandle.standardError.write(Data("usage: dml-bench foundation|losses [--quick] | cases [--quick] [--kinds K,...] [--trials N] | loss-loop center|ms|LOSS-TEXT | search [--no-large] | topk [--k K] | index [--n N] [--queries Q] [--embeddings E.npy] | plots | images generate|throughput|memory ... | resources search|mining:NAME|anchor-blocks:ROWS (0: the whole batch) | layers | distance | resnet [--batch B] [--sizes S,...] [--threads T]\n".utf8))
  exit(2)
}
