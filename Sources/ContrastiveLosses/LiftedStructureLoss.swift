/// Lifted structure loss (Oh Song et al. 2016), as PML's `LiftedStructureLoss`: each positive pair
/// against the negatives of both its ends.
///
/// ```
/// J_ij = log Σ_{(r,k) ∈ N(i) ∪ N(j)} exp(m_neg − d(r,k)) + d(i,j) − m_pos
/// loss = mean over positive pairs (i,j) of ½ relu(J_ij)²
/// ```
/// `N(i)` are the negative pairs of row `i`. With a similarity the margins flip:
/// `s(r,k) − m_neg` and `m_pos − s(i,j)`.
///
/// - Default distance: Euclidean between L2-normalised rows. Default reduction: the mean over the
///   positive pairs, both orders of a pair counting (PML's `MeanReducer`).
/// - Term: `loss`, one per positive pair. A pair whose ends have no negative pair takes 0 for the
///   log-sum-exp, as PML's masked `logsumexp`; a batch without any negative pair has loss 0, as in
///   PML and the paper (the log of an empty sum is −∞).
/// - No cross-batch memory: `N(j)` needs the positive `j` to be a row of the batch.
/// - Unlike PML, a tuple list with a single pair is not turned into a zero loss.
///
/// ### See Also
/// `GeneralizedLiftedStructureLoss`, `ContrastiveLoss`.
public struct LiftedStructureLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The margin the negatives' scores are measured from.
  public var negativeMargin: Scalar
  /// The margin the positive pair's score is measured from.
  public var positiveMargin: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()
  @usableFromInline var lifted: [Scalar] = []

  /// A lifted structure loss with `negativeMargin` 1, `positiveMargin` 0 and Euclidean distance
  /// between normalised rows by default, as PML.
  public init(negativeMargin: Scalar = 1, positiveMargin: Scalar = 0, distance: Distance = .euclidean) {
    self.negativeMargin = negativeMargin
    self.positiveMargin = positiveMargin
    self.distance = distance
  }

  public static var registryName: String { "lifted-structure" }
  public static var summary: String { "Lifted structure loss (Oh Song et al. 2016): each positive pair against its ends' negatives" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("neg_margin", .real, default: "1", "the negatives' margin"),
      HyperparameterSpec("pos_margin", .real, default: "0", "the positive pair's margin"),
      .distance(default: "euclidean"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      negativeMargin: Scalar(try v.real("neg_margin")), positiveMargin: Scalar(try v.real("pos_margin")),
      distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "LiftedStructureLoss compares the batch with itself (no cross-batch memory)")
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let sign = Scalar(distance.closeness)  // +1 similarity, −1 distance
    let (mNeg, mPos) = (negativeMargin, positiveMargin)
    // First pass: J of every positive pair, in mask order, for the reduction's count.
    lifted.removeAll(keepingCapacity: true)
    var terms = TermAccumulator<Scalar>()
    let anyNegative = mask.values.withUnsafeBufferPointer { m in (0..<(n * columns)).contains { m[$0] == PairMask.negative } }
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * columns) { scratch in
          for k in 0..<(n * columns) where m[k] == PairMask.positive {
            let (i, j) = (k / columns, k % columns)
            // Entries 0..<columns: row i's negatives; columns..<2·columns: row j's.
            let lse = logSumExp(
              count: 2 * columns, keep: { m[($0 < columns ? i : j) * columns + $0 % columns] == PairMask.negative },
              x: { sign * (s[($0 < columns ? i : j) * columns + $0 % columns] - mNeg) },
              scratch: scratch.baseAddress!, addOne: false)
            let value = anyNegative ? lse + sign * (mPos - s[k]) : 0
            lifted.append(value)
            let r = Swift.max(0, value)
            terms.add(r * r / 2)
          }
        }
      }
    }
    // Second pass: ∂/∂J = relu(J) / count, spread to the pair and, by the softmax, its negatives.
    let perTerm = Reduction.mean.weight(of: Scalar(0), terms)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * columns) { scratch in
            var q = 0
            for k in 0..<(n * columns) where m[k] == PairMask.positive {
              let (i, j) = (k / columns, k % columns)
              let dJ = Swift.max(0, lifted[q]) * perTerm
              q += 1
              guard dJ > 0 else { continue }
              g[k] += -sign * dJ
              _ = logSumExp(
                count: 2 * columns, keep: { m[($0 < columns ? i : j) * columns + $0 % columns] == PairMask.negative },
                x: { sign * (s[($0 < columns ? i : j) * columns + $0 % columns] - mNeg) },
                scratch: scratch.baseAddress!, addOne: false,
                weights: { e, w in g[(e < columns ? i : j) * columns + e % columns] += sign * w * dJ })
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}

/// The generalised lifted structure loss (Hermans et al. 2017, "In defense of the triplet loss",
/// page 4), as PML's `GeneralizedLiftedStructureLoss`: per row, a soft maximum over its positives
/// and one over its negatives.
///
/// ```
/// loss_i = relu(log Σ_{p∈P_i} exp(d(i,p) − m_pos) + log Σ_{n∈N_i} exp(m_neg − d(i,n)))
/// loss = mean_i loss_i
/// ```
/// With a similarity the margins flip, as in `LiftedStructureLoss`.
///
/// - Default distance: Euclidean between L2-normalised rows. Default reduction: the mean over the
///   batch's rows, rows without pairs counting as 0 (PML's `MeanReducer`).
/// - Term: `loss`, one per row. A row without positives (or negatives) takes 0 for that
///   log-sum-exp, as PML's masked `logsumexp`.
/// - Accepts a cross-batch memory (the rows against the batch and the memory).
///
/// ### See Also
/// `LiftedStructureLoss`, `MultiSimilarityLoss`.
public struct GeneralizedLiftedStructureLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The margin the negatives' scores are measured from.
  public var negativeMargin: Scalar
  /// The margin the positives' scores are measured from.
  public var positiveMargin: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()

  /// A generalised lifted structure loss with `negativeMargin` 1, `positiveMargin` 0 and Euclidean
  /// distance between normalised rows by default, as PML.
  public init(negativeMargin: Scalar = 1, positiveMargin: Scalar = 0, distance: Distance = .euclidean) {
    self.negativeMargin = negativeMargin
    self.positiveMargin = positiveMargin
    self.distance = distance
  }

  public static var registryName: String { "generalized-lifted-structure" }
  public static var summary: String { "Generalised lifted structure loss (Hermans et al. 2017): soft hardest positive and negative per row" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("neg_margin", .real, default: "1", "the negatives' margin"),
      HyperparameterSpec("pos_margin", .real, default: "0", "the positives' margin"),
      .distance(default: "euclidean"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      negativeMargin: Scalar(try v.real("neg_margin")), positiveMargin: Scalar(try v.real("pos_margin")),
      distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let sign = Scalar(distance.closeness)
    let (mNeg, mPos) = (negativeMargin, positiveMargin)
    let perRow = n > 0 ? 1 / Scalar(n) : 0
    var terms = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          // Each set's exponentials are taken once: kept for its softmax weights in the gradient.
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * columns) { scratch in
            let positiveExps = scratch.baseAddress!, negativeExps = positiveExps + columns
            for i in 0..<n {
              let row = i * columns
              let positive = { (j: Int) in m[row + j] == PairMask.positive }
              let negative = { (j: Int) in m[row + j] == PairMask.negative }
              let (lp, positiveSum) = logSumExpKeepingExponentials(
                count: columns, keep: positive, x: { sign * (mPos - s[row + $0]) }, scratch: positiveExps, addOne: false)
              let (ln, negativeSum) = logSumExpKeepingExponentials(
                count: columns, keep: negative, x: { sign * (s[row + $0] - mNeg) }, scratch: negativeExps, addOne: false)
              let value = lp + ln
              terms.add(Swift.max(0, value))
              guard value > 0 else { continue }
              softmaxWeights(
                count: columns, keep: positive, exponentials: positiveExps, sum: positiveSum,
                weights: { j, w in g[row + j] += -sign * w * perRow })
              softmaxWeights(
                count: columns, keep: negative, exponentials: negativeExps, sum: negativeSum,
                weights: { j, w in g[row + j] += sign * w * perRow })
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
