/// Circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization",
/// CVPR 2020), as PML's `CircleLoss`.
///
/// For each anchor `i` with at least one positive and one negative, on cosine similarities `s`:
/// ```
/// α_p = [1 + m − s_p]₊,   α_n = [s_n + m]₊,   Δ_p = 1 − m,   Δ_n = m
/// loss_i = softplus( logΣ_p exp(−γ α_p (s_p − Δ_p)) + logΣ_n exp(γ α_n (s_n − Δ_n)) )
/// ```
/// An anchor without a positive or a negative has the term 0; the loss is the mean of the non-zero
/// terms (PML's `AvgNonZeroReducer`).
///
/// - Default distance: cosine similarity (the only one PML allows). Defaults `m = 0.4`, `γ = 80`,
///   as PML (the paper's setting for fine-grained retrieval; 0.25 and 256 for faces).
/// - Terms: `loss`, one per row.
/// - Gradient: the weights `α` are constants of the gradient by default, as in the paper's code and
///   PML (`detach_weights=true`), so that the gradient is PML's to the last digit. With
///   `detach_weights=false` the gradient is the exact derivative of the value, `α` included.
/// - Reads `n × m` score matrices (the batch against itself, or against a cross-batch memory), and
///   mined pairs.
public struct CircleLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The relaxation margin `m`.
  public var margin: Scalar
  /// The scale `γ`.
  public var gamma: Scalar
  /// Whether the weights `α` are held constant in the gradient (PML, the paper's code).
  public var detachesWeights: Bool
  /// How the per-row terms become the loss (`per-anchor` is the mean: one term per row).
  public var reduction: Reduction
  /// The window of `reduction == .threshold`: terms strictly between `low` and `high` count.
  public var low: Scalar, high: Scalar
  /// The weight of each class for `reduction == .classWeighted` (a row weighs its class).
  public var classWeights: [Scalar]
  /// Cosine similarity.
  public var distance: Distance { .cosine }
  @usableFromInline var mask = PairMask()
  @usableFromInline var logits = [Scalar]()

  /// A circle loss; the defaults are PML's.
  public init(
    margin: Scalar = 0.4, gamma: Scalar = 80, detachesWeights: Bool = true, reduction: Reduction = .nonZeroMean, low: Scalar = 0,
    high: Scalar = .infinity, classWeights: [Scalar] = []
  ) {
    self.classWeights = classWeights
    self.margin = margin
    self.gamma = gamma
    self.detachesWeights = detachesWeights
    self.reduction = reduction
    self.low = low
    self.high = high
  }

  public static var registryName: String { "circle" }
  public static var summary: String { "Circle loss (Sun et al. 2020): pairs re-weighted by their distance from the optimum" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(reduction) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("m", .real, default: "0.4", "relaxation margin"),
      HyperparameterSpec("gamma", .real, default: "80", "scale"),
      HyperparameterSpec(
        "detach_weights", .boolean, default: "true", "hold the pair weights constant in the gradient (PML); false: exact derivative"),
      .reduction(default: .nonZeroMean),
    ] + HyperparameterSpec.thresholds
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      margin: Scalar(try v.real("m")), gamma: Scalar(try v.real("gamma", "positive") { $0 > 0 }),
      detachesWeights: try v.boolean("detach_weights"), reduction: try v.reduction(), low: Scalar(try v.real("low")),
      high: Scalar(try v.real("high")), classWeights: try v.classWeights(classes: context.classes).map { Scalar($0) })
  }

  /// A pair's logit and its derivative with respect to the score.
  @inlinable
  func logit(_ s: Scalar, positive: Bool) -> (x: Scalar, slope: Scalar) {
    if positive {
      let alpha = max(0, 1 + margin - s), offset = s - (1 - margin)
      let slope = alpha > 0 && !detachesWeights ? alpha - offset : alpha
      return (-gamma * alpha * offset, -gamma * slope)
    }
    let alpha = max(0, s + margin), offset = s - margin
    let slope = alpha > 0 && !detachesWeights ? alpha + offset : alpha
    return (gamma * alpha * offset, gamma * slope)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    if logits.count < columns { logits = [Scalar](repeating: 0, count: columns) }
    var acc = TermAccumulator<Scalar>(low: low, high: high)
    // Class-weighted: each row's term times its class weight.
    let weights = reduction == .classWeighted ? classWeights : []
    @inline(__always) func weight(_ i: Int) -> Scalar {
      weights.isEmpty ? 1 : (labels[i] >= 0 && labels[i] < weights.count ? weights[labels[i]] : 1)
    }
    var rows = [(value: Scalar, lp: Scalar, ln: Scalar)](repeating: (0, 0, 0), count: n)
    for i in 0..<n {
      // Each kind's log-sum-exp, from its largest logit.
      var largest = (p: -Scalar.infinity, n: -Scalar.infinity)
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        guard kind != 0 else { continue }
        let x = logit(scores[i, j], positive: kind == PairMask.positive).x
        logits[j] = x
        if kind == PairMask.positive { largest.p = max(largest.p, x) } else { largest.n = max(largest.n, x) }
      }
      guard largest.p > -Scalar.infinity, largest.n > -Scalar.infinity else {
        acc.add(0)
        continue
      }
      var sums: (p: Scalar, n: Scalar) = (0, 0)
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        if kind == PairMask.positive { sums.p += Scalar.exp(logits[j] - largest.p) }
        if kind == PairMask.negative { sums.n += Scalar.exp(logits[j] - largest.n) }
      }
      let lp = Scalar.log(sums.p) + largest.p, ln = Scalar.log(sums.n) + largest.n
      let z = lp + ln
      let value = z > 0 ? z + Scalar.log(1 + Scalar.exp(-z)) : Scalar.log(1 + Scalar.exp(z))
      rows[i] = (value, lp, ln)
      acc.add(value * weight(i))
    }
    // ∂loss/∂s = reduction weight · sigmoid(z) · softmax weight within the kind · ∂logit/∂s.
    for i in 0..<n where rows[i].value > 0 {
      let z = rows[i].lp + rows[i].ln
      let outer = reduction.weight(of: rows[i].value * weight(i), acc) * weight(i) / (1 + Scalar.exp(-z))
      guard outer != 0 else { continue }
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        guard kind != 0 else { continue }
        let positive = kind == PairMask.positive
        let (x, slope) = logit(scores[i, j], positive: positive)
        scoreGradient[i, j] = outer * Scalar.exp(x - (positive ? rows[i].lp : rows[i].ln)) * slope
      }
    }
    return LossValue(LossTerm(name: "loss", value: reduction.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
