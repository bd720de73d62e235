/// Supervised contrastive loss (Khosla et al. 2020, "Supervised Contrastive Learning"): for each
/// anchor, a softmax over every other embedding of the batch, whose mass should sit on the anchor's
/// positives.
///
/// ```
/// x_ij = s(i, j) / τ        (−d(i, j) / τ for a distance)
/// loss_i = log Σ_{k∈P_i∪N_i} exp(x_ik) − (1/|P_i|) Σ_{p∈P_i} x_ip
/// loss = mean of loss_i over the anchors whose loss_i > 0
/// ```
///
/// Every pair of the batch enters each row's softmax, so the loss ranks all of an anchor's
/// neighbours rather than a few mined pairs: of the losses tried on the unseen classes of
/// fmnist-05, it is the one whose training signal transfers (Docs/Generalisation.md).
///
/// - Default distance: cosine similarity. Default reduction: the mean over the anchors with a
///   non-zero loss (PML's `SupConLoss` with its `AvgNonZeroReducer`); anchors without a positive
///   count as 0.
/// - With mined pairs (`tuples`), `P_i` and `N_i` are the anchor's mined positives and negatives.
/// - As PML, a batch without any positive pair or without any negative pair gives 0.
/// - Term: `loss`, one element per anchor.
///
/// ### See Also
/// `MultiSimilarityLoss`, `ContrastiveLoss`.
public struct SupConLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The temperature τ that divides the scores.
  public var temperature: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()

  /// A supervised contrastive loss with `temperature` (0.1 by default) and `distance` (cosine
  /// similarity by default), as PML.
  public init(temperature: Scalar = 0.1, distance: Distance = .cosine) {
    self.temperature = temperature
    self.distance = distance
  }

  public static var registryName: String { "supcon" }
  public static var summary: String { "Supervised contrastive loss (Khosla et al. 2020): a softmax over each anchor's pairs" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.nonZeroMean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("temperature", .real, default: "0.1", "divides the scores before the softmax", range: .positive),
      .distance(default: "cosine"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(temperature: Scalar(try v.real("temperature", "positive") { $0 > 0 }), distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    var terms = TermAccumulator<Scalar>()
    let hasBoth = mask.values.withUnsafeBufferPointer { m in
      let used = m[0..<(n * columns)]
      return used.contains(PairMask.positive) && used.contains(PairMask.negative)
    }
    guard hasBoth else {
      for _ in 0..<n { terms.add(0) }
      return LossValue(LossTerm(name: "loss", value: 0, count: terms.count, nonZero: 0))
    }
    // x = sign · s / τ, so that a larger x is always a closer pair.
    let scale = Scalar(distance.closeness) / temperature
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
            for i in 0..<n {
              let row = i * columns
              // The row's softmax over its used pairs; the positives are counted as they are read.
              var positives = 0
              var positiveSum: Scalar = 0
              let lse = logSumExp(
                count: columns, keep: { m[row + $0] != 0 },
                x: { j in
                  let v = scale * s[row + j]
                  if m[row + j] == PairMask.positive {
                    positives += 1
                    positiveSum += v
                  }
                  return v
                },
                scratch: scratch.baseAddress!, addOne: false,
                weights: { j, w in
                  // ∂loss_i/∂x_ij = softmax_j − [j ∈ P_i]/|P_i|; the reduction's 1/count comes below.
                  guard positives > 0 else { return }
                  let target = m[row + j] == PairMask.positive ? 1 / Scalar(positives) : 0
                  g[row + j] = scale * (w - target)
                })
              terms.add(positives > 0 ? lse - positiveSum * (1 / Scalar(positives)) : 0)
            }
            if terms.nonZero > 0 {
              let inverseCount = 1 / Scalar(terms.nonZero)
              for k in 0..<(n * columns) { g[k] *= inverseCount }
            }
          }
        }
      }
    }
    return LossValue(
      LossTerm(name: "loss", value: Reduction.nonZeroMean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
