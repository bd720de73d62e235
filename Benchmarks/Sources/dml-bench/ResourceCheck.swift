import Foundation
import MetricLearning

/// Issue 10: peak resident memory of mining at batch 4,096 and of searching 10,000 queries among
/// 100,000 references, each against "inputs + 512 MiB". Peaks come from getrusage's high-water
/// mark, read before the inputs are made and after the work; each check runs in its own process
/// (`dml-bench resources mining|search`) so that one check's peak cannot hide another's.
enum ResourceCheck {
  static let budgetMB = 512.0

  static func report(_ name: String, base: Double, inputs: Double, peak: Double) -> Bool {
    let used = peak - base
    let ok = used <= inputs + budgetMB
    print("\(name): peak \(peak.fixed(0)) MB, \(used.fixed(0)) MB above the start, inputs \(inputs.fixed(0)) MB, bound \((inputs + budgetMB).fixed(0)) MB: \(ok ? "ok" : "EXCEEDED")")
    return ok
  }

  static func run(_ what: String) -> Bool {
    let base = LossBenchmark.peakResidentMB()
    if what.hasPrefix("anchor-blocks:") {
      // SupCon over one batch of 16,384 embeddings: the whole score matrix, or blocks of anchors.
      let rows = Int(what.dropFirst(14)) ?? 0
      let n = 16_384
      let x = LossBenchmark.unitBatch(n, 128, seed: 6)
      let labels = (0..<n).map { $0 % 512 }
      let inputs = Double(n * 128 * 4) / 1_048_576
      let start = DispatchTime.now().uptimeNanoseconds
      // Built by name, as `dml train` builds it (the registry's specialised code).
      var loss = try! LossRegistry.standard.make(
        rows > 0 ? "supcon:anchor_block=\(rows)" : "supcon", context: LossContext(classes: 512, embeddingDimension: 128, seed: 1)).loss
      let value = loss.evaluate(x, labels: labels, tuples: nil).total
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      print("supcon at batch 16,384 × 128, \(rows > 0 ? "anchor blocks of \(rows)" : "whole batch"): loss \(value), \(seconds.fixed(2)) s")
      let peak = LossBenchmark.peakResidentMB()
      print("  peak \(peak.fixed(0)) MB, \((peak - base).fixed(0)) MB above the start, inputs \(inputs.fixed(0)) MB")
      return true
    }
    switch what {
    case "search":
      let queries = LossBenchmark.unitBatch(10_000, 128, seed: 1)
      let references = LossBenchmark.unitBatch(100_000, 128, seed: 2)
      let inputs = Double((10_000 + 100_000) * 128 * 4) / 1_048_576
      let result = try! nearestNeighbors(queries: queries, references: references, k: 10)
      precondition(result.indices.count == 100_000)
      return report("search 10,000 × 100,000 × 128, k = 10", base: base, inputs: inputs, peak: LossBenchmark.peakResidentMB())
    default:
      // Each miner on the same batch of 4,096 embeddings (64 classes of 64), with its loss step.
      let miner = what.hasPrefix("mining:") ? String(what.dropFirst(7)) : "semihard"
      let x = LossBenchmark.unitBatch(4096, 128, seed: 6)
      let labels = (0..<4096).map { $0 % 64 }
      let inputs = Double(4096 * 128 * 4) / 1_048_576
      var scores = Matrix<Float>(), ws = DistanceWorkspace<Float>()
      var tuples = Tuples.none
      func mine<M: TupleSampler>(_ m: M) -> Int where M.Scalar == Float {
        var m = m
        m.distance.scores(x, x, sameSet: true, into: &scores, workspace: &ws)
        m.mine(scores: scores, labels: labels, into: &tuples)
        return tuples.count
      }
      let count: Int
      switch miner {
      case "semihard": count = mine(TripletMarginMiner<Float>(margin: 0.2, type: .semihard, maxTuples: 1_000_000, seed: 1))
      case "batch-hard": count = mine(BatchHardMiner<Float>())
      case "facenet-semihard": count = mine(FaceNetSemiHardMiner<Float>())
      case "multi-similarity": count = mine(MultiSimilarityMiner<Float>())
      case "pair-margin": count = mine(PairMarginMiner<Float>())
      default: count = mine(DistanceWeightedMiner<Float>(dimension: 128))
      }
      // The miner's own kind of loss: pair miners feed a pair loss, triplet miners a triplet loss.
      let pairs = ["multi-similarity", "pair-margin"].contains(miner)
      if pairs {
        var loss = LossEvaluator(MultiSimilarityLoss<Float>())
        _ = loss.evaluate(x, labels: labels, tuples: tuples)
      } else {
        var loss = LossEvaluator(TripletMarginLoss<Float>(margin: 0.2))
        _ = loss.evaluate(x, labels: labels, tuples: tuples)
      }
      return report("mining at batch 4,096 with \(miner) (\(count) tuples) and a \(pairs ? "multi-similarity" : "triplet") loss step", base: base, inputs: inputs, peak: LossBenchmark.peakResidentMB())
    }
  }
}
