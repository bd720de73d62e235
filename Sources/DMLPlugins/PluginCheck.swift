import DMLCore
import DMLRun
import DMLTesting

extension PluginLibrary {
  /// The library's conformance suite on every component of the plugin, as `dml check-plugin`
  /// prints it: for a loss, `LossConformance.checks` (gradients against finite differences in
  /// Double, empty tuples, a single class, determinism, Float against Double, learned state that
  /// moves and round-trips through its named tensors); for a miner, `SamplerConformance.checks`.
  /// Each component is built with its default hyperparameters (losses for 4 classes of
  /// 6-dimensional embeddings, miners for 5-dimensional ones, as the suites' batches); one that
  /// cannot be built fails the check "created with its defaults". The suites run in Double, and
  /// the loss suite compares Float with Double.
  public func conformance() -> [(component: PluginComponent, checks: [ConformanceCheck])] {
    components.map { c in
      switch c.kind {
      case .loss:
        let context = LossContext(classes: 4, embeddingDimension: 6, seed: 1)
        do {
          let double = try PluginLoss<Double>(c, context: context), float = try PluginLoss<Float>(c, context: context)
          return (c, [ConformanceCheck(name: "created with its defaults", failures: [])]
            + LossConformance.checks(double, float, usesTuples: c.usesTuples, classes: 4, dimension: 6))
        } catch {
          return (c, [ConformanceCheck(name: "created with its defaults", failures: ["\(error)"])])
        }
      case .miner:
        do {
          let miner = try PluginMiner<Double>(c, context: MinerContext(embeddingDimension: 5, seed: 1))
          return (c, [ConformanceCheck(name: "created with its defaults", failures: [])] + SamplerConformance.checks(miner))
        } catch {
          return (c, [ConformanceCheck(name: "created with its defaults", failures: ["\(error)"])])
        }
      }
    }
  }
}
