import DMLCore

/// Binomial deviance loss (Yi et al., "Deep Metric Learning for Person Re-identification", ICPR
/// 2014), written outside the library as a researcher would, in the form Ustinova and Lempitsky
/// (2016) compare against:
///
/// ```
/// pos_loss = mean over positive pairs  of log(1 + exp(−α (s − β)))
/// neg_loss = mean over negative pairs  of log(1 + exp( α C (s − β)))
/// ```
/// on cosine similarities `s`; `C` weighs the negatives against their larger number.
///
/// - Defaults `α = 2`, `β = 0.5`, `C = 25` (Yi et al.'s).
/// - Terms: `pos_loss` and `neg_loss`, one per pair.
/// - Reads `n × m` score matrices (the batch against itself, or against a cross-batch memory), and
///   mined pairs.
public struct BinomialDevianceLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The slope `α`.
  public var alpha: Scalar
  /// The similarity `β` at which a pair is undecided.
  public var beta: Scalar
  /// The cost `C` of a negative pair.
  public var negativeCost: Scalar
  /// Cosine similarity.
  public var distance: Distance { .cosine }
  var mask = PairMask()

  public init(alpha: Scalar = 2, beta: Scalar = 0.5, negativeCost: Scalar = 25) {
    self.alpha = alpha
    self.beta = beta
    self.negativeCost = negativeCost
  }

  public static var registryName: String { "binomial-deviance" }
  public static var summary: String { "Binomial deviance loss (Yi et al. 2014), from the example package" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("alpha", .real, default: "2", "slope"),
      HyperparameterSpec("beta", .real, default: "0.5", "similarity at which a pair is undecided"),
      HyperparameterSpec("c", .real, default: "25", "cost of a negative pair"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      alpha: Scalar(try v.real("alpha", "positive") { $0 > 0 }), beta: Scalar(try v.real("beta")),
      negativeCost: Scalar(try v.real("c", "positive") { $0 > 0 }))
  }

  /// `log(1 + exp(x))` without overflow, and its derivative `σ(x)`.
  static func softplus(_ x: Scalar) -> (value: Scalar, slope: Scalar) {
    let e = Scalar.exp(-abs(x))
    return (max(x, 0) + Scalar.log(1 + e), x >= 0 ? 1 / (1 + e) : e / (1 + e))
  }

  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    var positives = TermAccumulator<Scalar>(), negatives = TermAccumulator<Scalar>()
    // The pair's argument x of the softplus and ∂x/∂s.
    func argument(_ s: Scalar, positive: Bool) -> (x: Scalar, slope: Scalar) {
      positive ? (-alpha * (s - beta), -alpha) : (alpha * negativeCost * (s - beta), alpha * negativeCost)
    }
    for i in 0..<n {
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        guard kind != 0 else { continue }
        let positive = kind == PairMask.positive
        let value = Self.softplus(argument(scores[i, j], positive: positive).x).value
        if positive { positives.add(value) } else { negatives.add(value) }
      }
    }
    // Each sub-loss is a mean: every pair's gradient is σ(x) · ∂x/∂s over its kind's count.
    for i in 0..<n {
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        guard kind != 0 else { continue }
        let positive = kind == PairMask.positive
        let (x, slope) = argument(scores[i, j], positive: positive)
        scoreGradient[i, j] = Self.softplus(x).slope * slope / Scalar(positive ? positives.count : negatives.count)
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: Reduction.mean.value(positives), count: positives.count, nonZero: positives.nonZero),
      LossTerm(name: "neg_loss", value: Reduction.mean.value(negatives), count: negatives.count, nonZero: negatives.nonZero))
  }
}
