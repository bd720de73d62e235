@_exported import DMLCore

/// Contrastive loss (Hadsell, Chopra and LeCun 2006): pulls positive pairs within `positiveMargin`
/// and pushes negative pairs beyond `negativeMargin`.
///
/// ```
/// pos_loss = reduce_{(a,p)} relu(d(a,p) − m_pos)      neg_loss = reduce_{(a,n)} relu(m_neg − d(a,n))
/// loss = pos_loss + neg_loss
/// ```
/// With a similarity the inequalities flip: `relu(m_pos − s)` and `relu(s − m_neg)`.
///
/// - Default distance: Euclidean between L2-normalised rows. Default reduction: the mean of the
///   non-zero terms, separately for each sub-loss, then summed (PML's `AvgNonZeroReducer`).
/// - Terms: `pos_loss` indexes positive pairs, `neg_loss` negative pairs; both orders `(i, j)` and
///   `(j, i)` of a pair count. With no tuples every pair of the batch is used.
/// - Unlike PML, a tuple list with a single pair is not turned into a zero loss.
///
/// ### See Also
/// `MultiSimilarityLoss`, `PairMarginMiner`.
public struct ContrastiveLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The distance below which positives stop contributing.
  public var positiveMargin: Scalar
  /// The distance beyond which negatives stop contributing.
  public var negativeMargin: Scalar
  /// The score between embeddings.
  public var distance: Distance
  /// The reduction of each sub-loss.
  public var reduction: Reduction
  @usableFromInline var mask = PairMask()

  /// A contrastive loss with `positiveMargin` 0, `negativeMargin` 1, Euclidean distance between
  /// normalised rows and the mean of the non-zero terms by default, as PML.
  public init(
    positiveMargin: Scalar = 0, negativeMargin: Scalar = 1, distance: Distance = .euclidean,
    reduction: Reduction = .nonZeroMean
  ) {
    self.positiveMargin = positiveMargin
    self.negativeMargin = negativeMargin
    self.distance = distance
    self.reduction = reduction
  }

  public static var registryName: String { "contrastive" }
  public static var summary: String { "Contrastive loss (Hadsell et al. 2006) over pairs" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("pos_margin", .real, default: "0", "positives closer than this add nothing"),
      HyperparameterSpec("neg_margin", .real, default: "1", "negatives farther than this add nothing"),
      .distance(default: "euclidean"), .reduction(default: .nonZeroMean),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      positiveMargin: Scalar(try v.real("pos_margin")), negativeMargin: Scalar(try v.real("neg_margin")),
      distance: try v.distance(), reduction: try v.reduction())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    let sign = Scalar(distance.closeness)  // +1 similarity, −1 distance
    let mPos = positiveMargin, mNeg = negativeMargin
    // Terms: pos = relu(sign·(m_pos − s)), neg = relu(sign·(s − m_neg)).
    var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        for k in 0..<(n * columns) {
          if m[k] == PairMask.positive {
            pos.add(Swift.max(0, sign * (mPos - s[k])))
          } else if m[k] == PairMask.negative {
            neg.add(Swift.max(0, sign * (s[k] - mNeg)))
          }
        }
      }
    }
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let r = reduction
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          for k in 0..<(n * columns) {
            if m[k] == PairMask.positive {
              let t = sign * (mPos - s[k])
              if t > 0 { g[k] = -sign * r.weight(of: t, pos) }
            } else if m[k] == PairMask.negative {
              let t = sign * (s[k] - mNeg)
              if t > 0 { g[k] = sign * r.weight(of: t, neg) }
            }
          }
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: r.value(pos), count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: r.value(neg), count: neg.count, nonZero: neg.nonZero))
  }
}
