@_exported import DMLCore

/// Triplet margin loss (Schroff, Kalenichenko and Philbin 2015, FaceNet): each anchor should be
/// closer to its positive than to its negative by `margin`.
///
/// ```
/// v = d(a, p) − d(a, n) + margin        (similarities: s(a, n) − s(a, p) + margin)
/// loss = reduce_{(a,p,n)} relu(v)       (softplus(v) with smoothLoss)
/// ```
/// With `swap` (Balntas et al. 2016), `d(a, n)` is replaced by the smaller of `d(a, n)` and
/// `d(p, n)`; with a cross-batch memory, only when the positive is a batch row (a memory column
/// has no row of scores to read `d(p, n)` from).
///
/// - Default distance: Euclidean between L2-normalised rows. Default reduction: the mean of the
///   non-zero terms (PML's `AvgNonZeroReducer`); a batch where every triplet is satisfied gives 0.
/// - Terms: `triplet` indexes triplets. With no tuples every valid triplet of the batch is
///   enumerated, streamed per anchor without materialising them.
///
/// ### See Also
/// `TripletMarginMiner`, `BatchHardMiner`.
public struct TripletMarginLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The required gap between positive and negative.
  public var margin: Scalar
  /// Use the smaller of the anchor–negative and positive–negative distances.
  public var swap: Bool
  /// Softplus instead of the hinge.
  public var smoothLoss: Bool
  /// The score between embeddings.
  public var distance: Distance
  /// The reduction over triplets (not `per-anchor`, which PML does not define for triplets).
  public var reduction: Reduction
  /// The window of `reduction == .threshold`: terms strictly between `low` and `high` count.
  public var low: Scalar, high: Scalar
  /// The weight of each class for `reduction == .classWeighted` (a triplet weighs its anchor's class).
  public var classWeights: [Scalar]

  /// A triplet margin loss with `margin` 0.05, no swap, the hinge, Euclidean distance between
  /// normalised rows and the mean of the non-zero terms by default, as PML.
  public init(
    margin: Scalar = 0.05, swap: Bool = false, smoothLoss: Bool = false,
    distance: Distance = .euclidean, reduction: Reduction = .nonZeroMean, low: Scalar = 0, high: Scalar = .infinity,
    classWeights: [Scalar] = []
  ) {
    self.classWeights = classWeights
    precondition(reduction != .perAnchor, "TripletMarginLoss: no per-anchor reduction of triplets (PML has none)")
    self.margin = margin
    self.swap = swap
    self.smoothLoss = smoothLoss
    self.distance = distance
    self.reduction = reduction
    self.low = low
    self.high = high
  }

  public static var registryName: String { "triplet" }
  public static var summary: String { "Triplet margin loss (Schroff et al. 2015)" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { swap ? nil : AnchorBlockReductions(reduction) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("margin", .real, default: "0.05", "required gap between positive and negative", range: .nonNegative),
      HyperparameterSpec("swap", .boolean, default: "false", "use min(d(a,n), d(p,n)) (Balntas et al.); with a cross-batch memory, for positives in the batch"),
      HyperparameterSpec("smooth", .boolean, default: "false", "softplus instead of the hinge"),
      .distance(default: "euclidean"), .reduction(default: .nonZeroMean, choices: Reduction.allCases.filter { $0 != .perAnchor }),
    ] + HyperparameterSpec.thresholds
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      margin: Scalar(try v.real("margin")), swap: try v.boolean("swap"),
      smoothLoss: try v.boolean("smooth"), distance: try v.distance(), reduction: try v.reduction(), low: Scalar(try v.real("low")),
      high: Scalar(try v.real("high")), classWeights: try v.classWeights(classes: context.classes).map { Scalar($0) })
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    let sign = Scalar(distance.closeness)  // +1 similarity, −1 distance
    let (m, swap, smooth, similarity) = (margin, swap, smoothLoss, distance.isSimilarity)
    // v = sign·(s_an − s_ap) + margin, where s_an may be swapped for s_pn when that is closer.
    @inline(__always) func terms(_ s: UnsafeBufferPointer<Scalar>, _ a: Int, _ p: Int, _ q: Int)
      -> (value: Scalar, violation: Scalar, negativeIndex: Int)
    {
      var negative = a * columns + q
      if swap, p < n {
        // The swap needs the positive as a row: a memory column has no row of scores.
        let pn = p * columns + q
        if similarity ? s[pn] > s[negative] : s[pn] < s[negative] { negative = pn }
      }
      let v = sign * (s[negative] - s[a * columns + p]) + m
      let value = smooth ? softplus(v) : Swift.max(v, 0)
      return (value, v, negative)
    }
    var acc = TermAccumulator<Scalar>(low: low, high: high)
    // Class-weighted: each triplet's term times its anchor's class weight.
    let weights = reduction == .classWeighted ? classWeights : []
    @inline(__always) func weight(_ a: Int) -> Scalar {
      weights.isEmpty ? 1 : (labels[a] >= 0 && labels[a] < weights.count ? weights[labels[a]] : 1)
    }
    scores.withUnsafeBufferPointer { s in
      Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in acc.add(terms(s, a, p, q).value * weight(a)) }
    }
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let r = reduction
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
          let t = terms(s, a, p, q)
          let slope: Scalar = smooth ? 1 / (1 + Scalar.exp(-t.violation)) : (t.violation > 0 ? 1 : 0)
          guard slope != 0 else { return }
          let w = r.weight(of: t.value, acc) * slope * weight(a)
          g[a * columns + p] -= sign * w
          g[t.negativeIndex] += sign * w
        }
      }
    }
    return LossValue(LossTerm(name: "triplet", value: r.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}

/// `log(1 + exp(x))`, stably.
@inlinable
func softplus<T: DMLScalar>(_ x: T) -> T {
  x > 0 ? x + T.log(1 + T.exp(-x)) : T.log(1 + T.exp(x))
}

/// The triplet losses of this module, for a `LossRegistry`.
public enum TripletLosses {
  /// The registry entries for `TripletMarginLoss`, `MarginLoss`, `DynamicSoftMarginLoss` and
  /// `SelectivelyContrastiveTripletLoss`, in `Float`.
  public static var registrations: [LossFactory] {
    [
      LossFactory(TripletMarginLoss<Float>.self), LossFactory(MarginLoss<Float>.self), LossFactory(DynamicSoftMarginLoss<Float>.self),
      LossFactory(SelectivelyContrastiveTripletLoss<Float>.self),
    ]
  }
}
