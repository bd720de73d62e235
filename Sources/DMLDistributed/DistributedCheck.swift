import DMLLosses
import DMLNetworks
import DMLSamplers
import DMLTraining
import Foundation

/// The equivalence check of data-parallel training: a group of ranks, each with its shard of a
/// global batch, against one process with the whole batch, on the same seeded data, network and
/// optimizer, for a number of steps. It compares the loss of every step, the embedding gradient
/// each row received (gathered from the rank that owns it), the parameter gradients the optimizer
/// received, and every parameter after the last step (the network's and the loss's: proxies,
/// class weights, centers). `dml check-distributed` runs it under `mpirun`; the tests run it on
/// a `ThreadGroup`.
///
/// The data: 16 classes of 40 Gaussian points in 32 dimensions, batches of 8 per class drawn by
/// the m-per-class sampler; the network: an MLP 32 → 64 → 16; the optimizer: SGD with momentum
/// (an update linear in the gradient, so that rounding differences stay at their own size; Adam's
/// first steps are close to the gradient's sign, which would turn rounding noise in gradients
/// near zero into differences of a whole learning rate).
public enum DistributedCheck {
  /// The loss and miner combinations checked.
  public static let cases: [String] = [
    "contrastive+pair-margin", "triplet+semihard", "multi-similarity+ms-miner", "proxy-anchor", "softmax+center",
    "contrastive+memory",
  ]

  /// One quantity compared: the largest relative difference over the steps.
  public struct Quantity: Sendable, CustomStringConvertible {
    /// What was compared.
    public var name: String
    /// max |distributed − one process| / max |one process|, over the tensor's elements (and over
    /// the steps).
    public var relativeDifference: Double
    public var description: String { String(format: "%@ %.2e", name, relativeDifference) }
  }

  /// The result of one case.
  public struct Comparison: Sendable {
    /// The case's name (one of `cases`).
    public var name: String
    /// `"f32"` or `"f64"`.
    public var scalar: String
    /// The ranks and the global batch.
    public var ranks: Int, batch: Int, steps: Int
    /// Every quantity compared.
    public var quantities: [Quantity]
    /// The largest relative difference allowed: 1e-5 in Float, 1e-12 in Double.
    public var tolerance: Double
    /// Whether every quantity is within `tolerance`.
    public var passed: Bool { quantities.allSatisfy { $0.relativeDifference <= tolerance } }
    /// The quantity furthest from the one-process run.
    public var worst: Quantity { quantities.max { $0.relativeDifference < $1.relativeDifference }! }
  }

  /// Runs case `name` in scalar type `S` on this rank of `group`. Every rank must call it with the
  /// same arguments; every rank returns the same comparison.
  public static func run<S: DMLScalar>(
    _ name: String, as: S.Type, group: any Collective, steps: Int = 5, batch: Int = 128
  ) throws -> Comparison {
    try run(name, as: S.self, group: group, steps: steps, batch: batch, mistake: nil)
  }

  /// The check with a deliberate mistake in the distributed step (which must then fail).
  package static func run<S: DMLScalar>(
    _ name: String, as: S.Type, group: any Collective, steps: Int, batch: Int, mistake: DistributedMistake?
  ) throws -> Comparison {
    guard steps >= 1, batch >= group.size, batch % 8 == 0, batch / 8 <= 16 else {
      throw TrainingError("the check needs at least 1 step and a global batch of 8 per class, at most 128 and at least one row per rank")
    }
    let classes = 16, dimension = 16
    func mlp(normalize: Bool = true) -> MLP<S> { .mlp(inputFeatures: 32, hidden: [64], embeddingDimension: dimension, normalize: normalize, seed: 3) }
    func sgd() -> SGD<S> { SGD(learningRate: 0.05, momentum: 0.9) }
    let run = Runner<S>(group: group, steps: steps, batch: batch, mistake: mistake)
    var quantities: [Quantity]
    switch name {
    case "contrastive+pair-margin":
      quantities = try run.compare {
        Trainer(network: mlp(), loss: ContrastiveLoss<S>(), sampler: PairMarginMiner<S>(positiveMargin: 0.2, negativeMargin: 0.8), optimizer: sgd())
      }
    case "triplet+semihard":
      quantities = try run.compare {
        Trainer(network: mlp(), loss: TripletMarginLoss<S>(margin: 0.2), sampler: TripletMarginMiner<S>(margin: 0.2, type: .semihard), optimizer: sgd())
      }
    case "multi-similarity+ms-miner":
      quantities = try run.compare {
        Trainer(network: mlp(), loss: MultiSimilarityLoss<S>(), sampler: MultiSimilarityMiner<S>(), optimizer: sgd())
      }
    case "proxy-anchor":
      quantities = try run.compare {
        Trainer(
          network: mlp(), loss: ProxyAnchorLoss<S>(proxies: Proxies(classes: classes, dimension: dimension, seed: 4, group: 0)), optimizer: sgd())
      }
    case "softmax+center":
      quantities = try run.compare {
        Trainer(
          network: mlp(normalize: false),
          loss: WeightedSum(
            LossEvaluator(SoftmaxLoss<S>(weights: ClassWeights(classes: classes, dimension: dimension, seed: 5))),
            LossEvaluator(CenterLoss<S>(classes: classes, dimension: dimension)), secondWeight: 0.1),
          optimizer: sgd())
      }
    case "contrastive+memory":
      quantities = try run.compare {
        var t = Trainer(network: mlp(), loss: ContrastiveLoss<S>(), sampler: PairMarginMiner<S>(), optimizer: sgd())
        t.memory = CrossBatchMemory(capacity: 3 * batch / 2, warmUp: 1)
        return t
      }
    default:
      throw TrainingError("no distributed check '\(name)'; the checks: \(cases.joined(separator: ", "))")
    }
    return Comparison(
      name: name, scalar: S.typeName, ranks: group.size, batch: batch, steps: steps, quantities: quantities,
      tolerance: S.self == Double.self ? 1e-12 : 1e-5)
  }

  /// The seeded data: 16 classes × 40 points in 32 dimensions, and the global batches.
  package static func data<S: DMLScalar>(_: S.Type, steps: Int, batch: Int) -> (Matrix<S>, [Int], [[Int]]) {
    var rng = RandomSource(seed: 11)
    let perClass = 40, classes = 16, features = 32
    var centres = Matrix<S>(rows: classes, columns: features)
    centres.apply { _ in rng.normal() }
    var x = Matrix<S>(rows: classes * perClass, columns: features)
    var labels: [Int] = []
    for i in 0..<(classes * perClass) {
      let c = i % classes
      labels.append(c)
      for j in 0..<features { x[i, j] = centres[c, j] + S(0.8) * rng.normal() }
    }
    var sampler = MPerClassSampler(labels: labels, m: 8, batchSize: batch, seed: 2)
    var batches: [[Int]] = []
    for _ in 0..<steps {
      var b: [Int] = []
      sampler.next(into: &b)
      batches.append(b)
    }
    return (x, labels, batches)
  }

  /// Runs one process and the group side by side and measures their differences.
  struct Runner<S: DMLScalar> {
    let group: any Collective
    let steps: Int, batch: Int
    let mistake: DistributedMistake?

    func compare<L: EmbeddingLoss, M: TupleSampler>(_ make: () -> Trainer<MLP<S>, L, M, SGD<S>>) throws -> [Quantity]
    where L.Scalar == S, M.Scalar == S {
      let (x, labels, batches) = DistributedCheck.data(S.self, steps: steps, batch: batch)
      var one = make(), many = make()
      var worst: [String: Double] = [:]
      func note(_ name: String, _ a: [S], _ b: [S]) {
        var scale = 0.0, difference = 0.0
        for (u, v) in zip(a, b) {
          scale = Swift.max(scale, abs(Double(v)))
          difference = Swift.max(difference, abs(Double(u) - Double(v)))
        }
        var r = a.count == b.count ? difference / Swift.max(scale, 1e-300) : .infinity
        if scale == 0 && difference == 0 { r = 0 }
        worst[name] = Swift.max(worst[name] ?? 0, r.isNaN ? .infinity : r)
      }
      let rows = Shards.rows(batch: batch, rank: group.rank, size: group.size)
      let counts = Shards.counts(batch: batch, size: group.size)
      for indices in batches {
        let xb = x.rows(indices), yb = indices.map { labels[$0] }
        let a = try one.train(xb, labels: yb)
        let b = try many.train(shard: xb.rows(Array(rows)), labels: yb, over: group, mode: .global, mistake: mistake)
        note("loss", [a.loss.total], [b.loss.total])
        let d = one.loss.embeddingGradient.columns
        let routed = try group.allGather(many.routedGradient.elements, counts: counts.map { $0 * d }, what: "the routed gradients")
        note("embedding gradient", routed, one.loss.embeddingGradient.elements)
        note("network gradients", gradients(&many.network), gradients(&one.network))
        note("loss gradients", gradients(&many.loss), gradients(&one.loss))
      }
      note("network after \(steps) steps", values(&many.network), values(&one.network))
      note("loss state after \(steps) steps", values(&many.loss), values(&one.loss))
      if let m = many.memory, let o = one.memory { note("cross-batch memory", m.heldEmbeddings.elements, o.heldEmbeddings.elements) }
      return worst.keys.sorted().map { Quantity(name: $0, relativeDifference: worst[$0]!) }
    }

    func gradients<C: ParameterContainer>(_ c: inout C) -> [S] where C.Scalar == S {
      var out: [S] = []
      c.forEachParameter { _, p in if p.trainable { out += p.gradient.elements } }
      return out
    }

    func values<C: ParameterContainer>(_ c: inout C) -> [S] where C.Scalar == S {
      var out: [S] = []
      c.forEachParameter { _, p in out += p.value.elements }
      return out
    }
  }
}
