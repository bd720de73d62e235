/// Neighbourhood components analysis (Goldberger et al. 2004), as PML's `NCALoss`: each row's
/// probability of picking a same-label neighbour under a softmax over its negated distances.
///
/// ```
/// p_ij = softmax_j(−scale · d(i,j)) over j ≠ i        loss_i = −log Σ_{j: y_j = y_i} p_ij
/// loss = mean over the rows with a same-label neighbour
/// ```
/// With a similarity, `+scale · s(i,j)`.
///
/// - Default distance: squared Euclidean between L2-normalised rows; default scale 1. Default
///   reduction: the mean over the rows whose probability is not 0 (a row without a same-label
///   neighbour drops out, as in PML).
/// - Term: `loss`, one per kept row.
/// - Ignores tuples: PML weighs rows by a miner's tuples; here `--miner` does not apply.
/// - Accepts a cross-batch memory: a row's softmax runs over the batch and the memory, itself
///   excluded (PML's memory wrapper keeps the row's own column, which compares it with itself).
///
/// ### See Also
/// `ProxyNCALoss`, `SupConLoss`.
public struct NCALoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The softmax scale.
  public var softmaxScale: Scalar
  /// The score between embeddings.
  public var distance: Distance

  /// An NCA loss with scale 1 and squared Euclidean distance between normalised rows by default,
  /// as PML.
  public init(softmaxScale: Scalar = 1, distance: Distance = .squaredEuclidean) {
    self.softmaxScale = softmaxScale
    self.distance = distance
  }

  public static var registryName: String { "nca" }
  public static var summary: String { "Neighbourhood components analysis (Goldberger et al. 2004): softmax over the batch" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("softmax_scale", .real, default: "1", "scale of the negated distances in the softmax", range: .positive),
      .distance(default: "squared-euclidean"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(softmaxScale: Scalar(try v.real("softmax_scale", "positive") { $0 > 0 }), distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(labels.count == columns, "NCALoss: \(columns) columns but \(labels.count) labels")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let scale = softmaxScale * Scalar(distance.closeness)  // x = scale·s, or −scale·d
    // A row is kept when another column has its label; the mean runs over the kept rows.
    var members: [Int: [Int]] = [:]
    for (j, label) in labels.enumerated() { members[label, default: []].append(j) }
    let keptRows = (0..<n).filter { members[labels[$0]]!.count > 1 }
    var terms = TermAccumulator<Scalar>()
    guard !keptRows.isEmpty else {
      return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0))
    }
    let perRow = scale / Scalar(keptRows.count)
    // One pass per kept row: x_j = scale·s_ij, e_j = exp(x_j − max_{k≠i} x_k) in one vectorised
    // pass, then loss_i = log Σ_{j≠i} e_j − log Σ_{same} e_j and
    // ∂loss_i/∂x_ij = e_j/Σ_all − [same] e_j/Σ_same. When the same-label scores sit so far below the
    // row's largest that their exponentials could lose precision (Σ_same under e⁻⁶⁰), they get
    // their own pass from their own largest score.
    let smallestSameSum = Scalar.exp(-60)
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * columns) { buffer in
          let e = buffer.baseAddress!, spare = e + columns
          for i in keptRows {
            let row = i * columns, same = members[labels[i]]!
            for j in 0..<columns { e[j] = scale * s[row + j] }
            e[i] = -.infinity
            let largest = Scalar.maximum(e, count: columns)
            for j in 0..<columns { e[j] -= largest }
            Scalar.expInPlace(e, count: columns)
            e[i] = 0
            let sumAll = Scalar.sum(e, count: columns)
            var sumSame: Scalar = 0
            for j in same where j != i { sumSame += e[j] }
            let inverseAll = perRow / sumAll
            for j in 0..<columns { g[row + j] = e[j] * inverseAll }
            if sumSame >= smallestSameSum {
              terms.add(Scalar.log(sumAll) - Scalar.log(sumSame))
              let inverseSame = perRow / sumSame
              for j in same where j != i { g[row + j] -= e[j] * inverseSame }
            } else {
              let sameLog = logSumExp(
                count: same.count, keep: { same[$0] != i }, x: { scale * s[row + same[$0]] },
                scratch: spare, addOne: false, weights: { k, w in g[row + same[k]] -= w * perRow })
              terms.add(Scalar.log(sumAll) + largest - sameLog)
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}

/// Intra-pair variance loss (Yu and Tao 2019, "Deep metric learning with tuplet margin loss"), as
/// PML's `IntraPairVarianceLoss`: penalises positive pairs less similar than a fraction of the
/// batch's mean positive similarity, and negative pairs more similar than a multiple of the mean
/// negative one.
///
/// ```
/// μ⁺ = mean of the positive pairs' s    pos_loss = mean over positive pairs of relu((1 − ε⁺) μ⁺ − s)²
/// μ⁻ = mean of the negative pairs' s    neg_loss = mean over negative pairs of relu(s − (1 + ε⁻) μ⁻)²
/// ```
/// With a distance the two roles swap: `relu(d − (1 + ε⁺) μ⁺)²` and `relu((1 − ε⁻) μ⁻ − d)²`.
///
/// - Default distance: cosine similarity; ε⁺ = ε⁻ = 0.01. Default reduction: the mean over each
///   sub-loss's pairs, both orders of a pair counting (PML's `MeanReducer`), then summed.
/// - Terms: `pos_loss` and `neg_loss`.
/// - Accepts a cross-batch memory.
/// - Unlike PML, a tuple list with a single pair is not turned into a zero loss.
///
/// ### See Also
/// `ContrastiveLoss`, `NCALoss`.
public struct IntraPairVarianceLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// ε⁺, the fraction of the mean positive score that positives must stay within.
  public var positiveEpsilon: Scalar
  /// ε⁻, the fraction of the mean negative score that negatives must stay within.
  public var negativeEpsilon: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()

  /// An intra-pair variance loss with ε⁺ = ε⁻ = 0.01 and cosine similarity by default, as PML.
  public init(positiveEpsilon: Scalar = 0.01, negativeEpsilon: Scalar = 0.01, distance: Distance = .cosine) {
    self.positiveEpsilon = positiveEpsilon
    self.negativeEpsilon = negativeEpsilon
    self.distance = distance
  }

  public static var registryName: String { "intra-pair-variance" }
  public static var summary: String { "Intra-pair variance loss (Yu and Tao 2019): pairs against the batch's mean scores" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("pos_eps", .real, default: "0.01", "ε⁺: positives stay within this fraction of their mean", range: .closed(0, 1)),
      HyperparameterSpec("neg_eps", .real, default: "0.01", "ε⁻: negatives stay within this fraction of their mean", range: .closed(0, 1)),
      .distance(default: "cosine"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      positiveEpsilon: Scalar(try v.real("pos_eps")), negativeEpsilon: Scalar(try v.real("neg_eps")), distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    // With a similarity, positives are pushed up (v = c·μ − s) and negatives down (v = s − c·μ);
    // with a distance the other way round.
    let similarity = distance.isSimilarity
    let (cPos, cNeg) = similarity ? (1 - positiveEpsilon, 1 + negativeEpsilon) : (1 + positiveEpsilon, 1 - negativeEpsilon)
    var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          pos = Self.part(s, m, g, count: n * columns, kind: PairMask.positive, raise: similarity, c: cPos)
          neg = Self.part(s, m, g, count: n * columns, kind: PairMask.negative, raise: !similarity, c: cNeg)
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: Reduction.mean.value(pos), count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: Reduction.mean.value(neg), count: neg.count, nonZero: neg.nonZero))
  }

  /// One sub-loss over the pairs of `kind`: `mean_k relu(v_k)²` with `v_k = c·μ − s_k` (`raise`)
  /// or `s_k − c·μ`, its gradient added to `g`.
  @inlinable
  static func part(
    _ s: UnsafeBufferPointer<Scalar>, _ m: UnsafeBufferPointer<UInt8>, _ g: UnsafeMutableBufferPointer<Scalar>,
    count: Int, kind: UInt8, raise: Bool, c: Scalar
  ) -> TermAccumulator<Scalar> {
    var sum: Scalar = 0, pairs = 0
    for k in 0..<count where m[k] == kind {
      sum += s[k]
      pairs += 1
    }
    var terms = TermAccumulator<Scalar>()
    guard pairs > 0 else { return terms }
    let mean = sum / Scalar(pairs)
    var relus: Scalar = 0  // Σ_k 2 relu(v_k)
    for k in 0..<count where m[k] == kind {
      let r = Swift.max(0, raise ? c * mean - s[k] : s[k] - c * mean)
      terms.add(r * r)
      relus += 2 * r
    }
    // ∂/∂s_j = (1/P)(±2 relu(v_j) ∓ c·Σ_k 2 relu(v_k) / P), through s_j itself and through μ.
    let inverse = 1 / Scalar(pairs)
    let throughMean = c * relus * inverse
    for k in 0..<count where m[k] == kind {
      let own = 2 * Swift.max(0, raise ? c * mean - s[k] : s[k] - c * mean)
      g[k] += (raise ? throughMean - own : own - throughMean) * inverse
    }
    return terms
  }
}
