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
///   non-zero terms, separately for each sub-loss, then summed (PML's `AvgNonZeroReducer`); also
///   `mean`, `sum`, `threshold` (with `low`, `high`: `ThresholdReducer`) and `per-anchor`
///   (`PerAnchorReducer`: each anchor's pairs averaged, then the mean over the rows).
///   `pos_reduction` and `neg_reduction` reduce one sub-loss otherwise (PML's `MultipleReducers`).
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
  /// The window of `reduction == .threshold`: terms strictly between `low` and `high` count.
  public var low: Scalar, high: Scalar
  /// The positive sub-loss's own reduction, in place of `reduction` (PML's `MultipleReducers`).
  public var positiveReduction: Reduction?
  /// The negative sub-loss's own reduction, in place of `reduction`.
  public var negativeReduction: Reduction?
  /// The weight of each class for `reduction == .classWeighted` (a pair weighs its anchor's class).
  public var classWeights: [Scalar]
  @usableFromInline var mask = PairMask()

  /// A contrastive loss with `positiveMargin` 0, `negativeMargin` 1, Euclidean distance between
  /// normalised rows and the mean of the non-zero terms by default, as PML.
  public init(
    positiveMargin: Scalar = 0, negativeMargin: Scalar = 1, distance: Distance = .euclidean,
    reduction: Reduction = .nonZeroMean, low: Scalar = 0, high: Scalar = .infinity, positiveReduction: Reduction? = nil,
    negativeReduction: Reduction? = nil, classWeights: [Scalar] = []
  ) {
    precondition(
      ![positiveReduction, negativeReduction].contains(.perAnchor) && ![positiveReduction, negativeReduction].contains(.classWeighted),
      "ContrastiveLoss: per-anchor and class-weighted reduce both sub-losses (reduction=)")
    self.classWeights = classWeights
    self.positiveMargin = positiveMargin
    self.negativeMargin = negativeMargin
    self.distance = distance
    self.reduction = reduction
    self.low = low
    self.high = high
    self.positiveReduction = positiveReduction
    self.negativeReduction = negativeReduction
  }

  /// The choices of `pos_reduction` and `neg_reduction`: `same` (the `reduction`), or one of the
  /// reductions a sub-loss can take alone.
  static var subLossReductions: [String] {
    ["same"] + Reduction.allCases.filter { ![.perAnchor, .divisor, .classWeighted].contains($0) }.map(\.rawValue)
  }

  public static var registryName: String { "contrastive" }
  public static var summary: String { "Contrastive loss (Hadsell et al. 2006) over pairs" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(positiveReduction ?? reduction, negativeReduction ?? reduction) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("pos_margin", .real, default: "0", "positives closer than this add nothing"),
      HyperparameterSpec("neg_margin", .real, default: "1", "negatives farther than this add nothing"),
      .distance(default: "euclidean"), .reduction(default: .nonZeroMean),
      HyperparameterSpec("pos_reduction", .choice(subLossReductions), default: "same", "the positive sub-loss's own reduction (MultipleReducers)"),
      HyperparameterSpec("neg_reduction", .choice(subLossReductions), default: "same", "the negative sub-loss's own reduction"),
    ] + HyperparameterSpec.thresholds
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let (reduction, pos, neg) = (try v.reduction(), try v.string("pos_reduction"), try v.string("neg_reduction"))
    if (reduction == .perAnchor || reduction == .classWeighted) && (pos != "same" || neg != "same") {
      throw SpecificationError(
        "\(v.component): reduction=\(reduction.rawValue) reduces both sub-losses; pos_reduction and neg_reduction cannot be given with it")
    }
    self.init(
      positiveMargin: Scalar(try v.real("pos_margin")), negativeMargin: Scalar(try v.real("neg_margin")),
      distance: try v.distance(), reduction: reduction, low: Scalar(try v.real("low")), high: Scalar(try v.real("high")),
      positiveReduction: Reduction(rawValue: pos), negativeReduction: Reduction(rawValue: neg),
      classWeights: try v.classWeights(classes: context.classes).map { Scalar($0) })
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
    var pos = TermAccumulator<Scalar>(low: low, high: high), neg = TermAccumulator<Scalar>(low: low, high: high)
    // Class-weighted: each pair's term times its anchor's class weight.
    let weights = reduction == .classWeighted ? classWeights : []
    @inline(__always) func weight(_ row: Int) -> Scalar {
      weights.isEmpty ? 1 : (labels[row] >= 0 && labels[row] < weights.count ? weights[labels[row]] : 1)
    }
    let perAnchor = reduction == .perAnchor && positiveReduction == nil && negativeReduction == nil
    // Per anchor (row): its pairs' sums and counts, for `.perAnchor`.
    var rowSums = perAnchor ? [Scalar](repeating: 0, count: 2 * n) : [], rowCounts = perAnchor ? [Int](repeating: 0, count: 2 * n) : []
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        for k in 0..<(n * columns) {
          if m[k] == PairMask.positive {
            let t = Swift.max(0, sign * (mPos - s[k])) * weight(k / columns)
            pos.add(t)
            if perAnchor {
              rowSums[k / columns] += t
              rowCounts[k / columns] += 1
            }
          } else if m[k] == PairMask.negative {
            let t = Swift.max(0, sign * (s[k] - mNeg)) * weight(k / columns)
            neg.add(t)
            if perAnchor {
              rowSums[n + k / columns] += t
              rowCounts[n + k / columns] += 1
            }
          }
        }
      }
    }
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    if perAnchor {
      // Each sub-loss: (1/n) Σ_rows (Σ of the row's terms / its count); a term's weight 1/(n · count).
      let inverseN = n > 0 ? 1 / Scalar(n) : 0
      var values: (Scalar, Scalar) = (0, 0)
      for i in 0..<n {
        if rowCounts[i] > 0 { values.0 += rowSums[i] / Scalar(rowCounts[i]) * inverseN }
        if rowCounts[n + i] > 0 { values.1 += rowSums[n + i] / Scalar(rowCounts[n + i]) * inverseN }
      }
      scores.withUnsafeBufferPointer { s in
        mask.values.withUnsafeBufferPointer { m in
          scoreGradient.withUnsafeMutableBufferPointer { g in
            for k in 0..<(n * columns) {
              let i = k / columns
              if m[k] == PairMask.positive, sign * (mPos - s[k]) > 0 {
                g[k] = -sign * inverseN / Scalar(rowCounts[i])
              } else if m[k] == PairMask.negative, sign * (s[k] - mNeg) > 0 {
                g[k] = sign * inverseN / Scalar(rowCounts[n + i])
              }
            }
          }
        }
      }
      return LossValue(
        LossTerm(name: "pos_loss", value: values.0, count: pos.count, nonZero: pos.nonZero),
        LossTerm(name: "neg_loss", value: values.1, count: neg.count, nonZero: neg.nonZero))
    }
    let (rp, rn) = (positiveReduction ?? reduction, negativeReduction ?? reduction)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          for k in 0..<(n * columns) {
            if m[k] == PairMask.positive {
              let t = sign * (mPos - s[k])
              if t > 0 { g[k] = -sign * rp.weight(of: t, pos) * weight(k / columns) }
            } else if m[k] == PairMask.negative {
              let t = sign * (s[k] - mNeg)
              if t > 0 { g[k] = sign * rn.weight(of: t, neg) * weight(k / columns) }
            }
          }
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: rp.value(pos), count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: rn.value(neg), count: neg.count, nonZero: neg.nonZero))
  }
}
