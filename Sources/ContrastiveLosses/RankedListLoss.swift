/// Ranked list loss (Wang et al. 2019), as PML's `RankedListLoss`: per row, the positives beyond
/// `α − margin` and the negatives within `α`, each set weighted by a softmax-like temperature.
///
/// ```
/// P_i = {j ≠ i, y_j = y_i, d_ij > α − m, d_ij > 0}     w⁺_ij = exp(T_p (d_ij − (α − m)))
/// N_i = {j, y_j ≠ y_i, d_ij < α, d_ij > 0}             w⁻_ij = exp(T_n (α − d_ij))
/// L⁺_i = Σ_P w⁺ (d − (α − m)) / Σ_j (w⁺_ij + 10⁻⁵)    L⁻_i = Σ_N w⁻ (α − d) / Σ_j (w⁻_ij + 10⁻⁵)
/// loss = mean_i ((1 − λ) L⁺_i + λ L⁻_i)
/// ```
/// The sums of the denominators run over every column (weights outside the sets are 0), as in PML.
/// The weights are differentiated, as in PML. They are computed relative to each part's largest
/// exponent (the ratio is unchanged), so large temperatures do not overflow.
///
/// - Distance: Euclidean between L2-normalised rows. PML has no defaults for `margin` and `T_n`;
///   here margin 0.4 and T_n 10, λ (`imbalance`) 0.5, T_p 0 (RLL-Simpler), α = 1 + margin/2.
///   Reduction: the mean over the rows (PML's `MeanReducer`).
/// - Term: `loss`, one per row. Ignores tuples and has no cross-batch memory, as in PML.
///
/// ### See Also
/// `MultiSimilarityLoss`, `ContrastiveLoss`.
public struct RankedListLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The margin between the positive and the negative set.
  public var margin: Scalar
  /// T_n, the negatives' temperature.
  public var negativeTemperature: Scalar
  /// λ, the weight of the negative part.
  public var imbalance: Scalar
  /// α, the boundary of the negatives (`1 + margin/2` unless given).
  public var alpha: Scalar
  /// T_p, the positives' temperature.
  public var positiveTemperature: Scalar
  /// The score between embeddings.
  public var distance: Distance

  /// A ranked list loss with margin 0.4, T_n 10, λ 0.5, α = 1 + margin/2 and T_p 0 by default.
  public init(
    margin: Scalar = 0.4, negativeTemperature: Scalar = 10, imbalance: Scalar = 0.5, alpha: Scalar? = nil,
    positiveTemperature: Scalar = 0, distance: Distance = .euclidean
  ) {
    precondition(!distance.isSimilarity, "RankedListLoss works on a distance")
    self.margin = margin
    self.negativeTemperature = negativeTemperature
    self.imbalance = imbalance
    self.alpha = alpha ?? 1 + margin / 2
    self.positiveTemperature = positiveTemperature
    self.distance = distance
  }

  public static var registryName: String { "ranked-list" }
  public static var summary: String { "Ranked list loss (Wang et al. 2019): weighted hard positives and negatives per row" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("margin", .real, default: "0.4", "margin between the positive and the negative set", range: .atLeast(0)),
      HyperparameterSpec("tn", .real, default: "10", "T_n, the negatives' temperature", range: .closed(0, 5_000)),
      HyperparameterSpec("imbalance", .real, default: "0.5", "λ, the weight of the negative part", range: .closed(0, 1)),
      HyperparameterSpec("alpha", .real, default: "0", "α, the negatives' boundary (0: 1 + margin/2)", range: .atLeast(0)),
      HyperparameterSpec("tp", .real, default: "0", "T_p, the positives' temperature", range: .closed(0, 5_000)),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let alpha = try v.real("alpha")
    self.init(
      margin: Scalar(try v.real("margin")), negativeTemperature: Scalar(try v.real("tn")),
      imbalance: Scalar(try v.real("imbalance")), alpha: alpha > 0 ? Scalar(alpha) : nil,
      positiveTemperature: Scalar(try v.real("tp")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "RankedListLoss compares the batch with itself (no cross-batch memory)")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let (a, boundary) = (alpha, alpha - margin)
    let (tp, tn, lambda) = (positiveTemperature, negativeTemperature, imbalance)
    let floor = Scalar(columns) * 1e-5  // Σ_j 10⁻⁵ of the denominators
    let perRow = n > 0 ? 1 / Scalar(n) : 0
    var terms = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        for i in 0..<n {
          let row = i * columns
          // Which columns each part takes, the value it weighs, and dw/dd per unit weight.
          @inline(__always) func positive(_ j: Int) -> Bool { j != i && labels[j] == labels[i] && s[row + j] > boundary && s[row + j] > 0 }
          @inline(__always) func negative(_ j: Int) -> Bool { labels[j] != labels[i] && s[row + j] < a && s[row + j] > 0 }
          // Each part's largest exponent, subtracted from every exponent of the part: the ratios and
          // their derivatives are unchanged (the 10⁻⁵ floor scales with them).
          var (maxP, maxN) = (-Scalar.infinity, -Scalar.infinity)
          for j in 0..<columns {
            let d = s[row + j]
            if positive(j) { maxP = Swift.max(maxP, tp * (d - boundary)) } else if negative(j) { maxN = Swift.max(maxN, tn * (a - d)) }
          }
          if !maxP.isFinite { maxP = 0 }
          if !maxN.isFinite { maxN = 0 }
          var (numP, denP, numN, denN): (Scalar, Scalar, Scalar, Scalar) = (0, floor * Scalar.exp(-maxP), 0, floor * Scalar.exp(-maxN))
          for j in 0..<columns {
            let d = s[row + j]
            if positive(j) {
              let w = Scalar.exp(tp * (d - boundary) - maxP)
              numP += w * (d - boundary)
              denP += w
            } else if negative(j) {
              let w = Scalar.exp(tn * (a - d) - maxN)
              numN += w * (a - d)
              denN += w
            }
          }
          let (lossP, lossN) = (numP / denP, numN / denN)
          terms.add((1 - lambda) * lossP + lambda * lossN)
          // ∂(N/D)/∂d_j = (∂N·D − N·∂D)/D², with ∂w/∂d = ±T·w.
          for j in 0..<columns {
            let d = s[row + j]
            if positive(j) {
              let w = Scalar.exp(tp * (d - boundary) - maxP)
              let dN = w + tp * w * (d - boundary), dD = tp * w
              g[row + j] += (1 - lambda) * (dN * denP - numP * dD) / (denP * denP) * perRow
            } else if negative(j) {
              let w = Scalar.exp(tn * (a - d) - maxN)
              let dN = -tn * w * (a - d) - w, dD = -tn * w
              g[row + j] += lambda * (dN * denN - numN * dD) / (denN * denN) * perRow
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
