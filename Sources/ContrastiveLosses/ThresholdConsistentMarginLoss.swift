/// Threshold-consistent margin loss (Zhang et al. 2023), as PML's `ThresholdConsistentMarginLoss`:
/// a regulariser that pulls positive pairs above `m⁺` and pushes negative pairs below `m⁻`, each
/// part the mean over the pairs that violate it.
///
/// ```
/// pos = mean over positive pairs with s ≤ m⁺ of (m⁺ − s)     (0 when none)
/// neg = mean over negative pairs with s ≥ m⁻ of (s − m⁻)     (0 when none)
/// loss = λ⁺ · pos + λ⁻ · neg
/// ```
///
/// - Distance: cosine similarity. Defaults as PML: λ⁺ = λ⁻ = 1, m⁺ = 0.9, m⁻ = 0.5. The value is
///   already reduced; pairs are both orders of each (the tuples' pairs, or all).
/// - Usually added to another loss: `--loss multi-similarity --loss tcm:weight=...`.
/// - Term: `loss`, one value. No cross-batch memory (PML indexes the batch for both ends).
///
/// ### See Also
/// `ContrastiveLoss`, whose margins it resembles with per-part means.
public struct ThresholdConsistentMarginLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// λ⁺, the weight of the positive part.
  public var positiveWeight: Scalar
  /// λ⁻, the weight of the negative part.
  public var negativeWeight: Scalar
  /// m⁺, the similarity positives should exceed.
  public var positiveMargin: Scalar
  /// m⁻, the similarity negatives should stay below.
  public var negativeMargin: Scalar
  @usableFromInline var mask = PairMask()

  /// The score between embeddings: cosine similarity.
  public var distance: Distance { .cosine }

  /// A TCM loss with λ⁺ = λ⁻ = 1, m⁺ = 0.9 and m⁻ = 0.5 by default, as PML.
  public init(positiveWeight: Scalar = 1, negativeWeight: Scalar = 1, positiveMargin: Scalar = 0.9, negativeMargin: Scalar = 0.5) {
    self.positiveWeight = positiveWeight
    self.negativeWeight = negativeWeight
    self.positiveMargin = positiveMargin
    self.negativeMargin = negativeMargin
  }

  public static var registryName: String { "tcm" }
  public static var summary: String { "Threshold-consistent margin loss (Zhang et al. 2023): positives above m⁺, negatives below m⁻" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("lambda_plus", .real, default: "1", "λ⁺, weight of the positive part", range: .atLeast(0)),
      HyperparameterSpec("lambda_minus", .real, default: "1", "λ⁻, weight of the negative part", range: .atLeast(0)),
      HyperparameterSpec("margin_plus", .real, default: "0.9", "m⁺, similarity positives should exceed", range: .closed(-1, 1)),
      HyperparameterSpec("margin_minus", .real, default: "0.5", "m⁻, similarity negatives should stay below", range: .closed(-1, 1)),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      positiveWeight: Scalar(try v.real("lambda_plus")), negativeWeight: Scalar(try v.real("lambda_minus")),
      positiveMargin: Scalar(try v.real("margin_plus")), negativeMargin: Scalar(try v.real("margin_minus")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "ThresholdConsistentMarginLoss compares the batch with itself (no cross-batch memory)")
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let (mPos, mNeg) = (positiveMargin, negativeMargin)
    var (posSum, posCount, negSum, negCount): (Scalar, Int, Scalar, Int) = (0, 0, 0, 0)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        for k in 0..<(n * columns) {
          if m[k] == PairMask.positive && s[k] <= mPos {
            posSum += mPos - s[k]
            posCount += 1
          } else if m[k] == PairMask.negative && s[k] >= mNeg {
            negSum += s[k] - mNeg
            negCount += 1
          }
        }
      }
    }
    let pos = posCount > 0 ? posSum / Scalar(posCount) : 0, neg = negCount > 0 ? negSum / Scalar(negCount) : 0
    let (dPos, dNeg) = (posCount > 0 ? -positiveWeight / Scalar(posCount) : 0, negCount > 0 ? negativeWeight / Scalar(negCount) : 0)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          for k in 0..<(n * columns) {
            if m[k] == PairMask.positive && s[k] <= mPos {
              g[k] = dPos
            } else if m[k] == PairMask.negative && s[k] >= mNeg {
              g[k] = dNeg
            }
          }
        }
      }
    }
    let value = positiveWeight * pos + negativeWeight * neg
    return LossValue(LossTerm(name: "loss", value: value, count: 1, nonZero: value > 0 ? 1 : 0))
  }
}
