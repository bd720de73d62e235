import DMLCore

/// Circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
/// Optimization", CVPR 2020), written outside the library as a researcher would.
///
/// For each anchor `i` with at least one positive and one negative, on cosine similarities `s`:
/// ```
/// α_p = [1 + m − s_p]₊,   α_n = [s_n + m]₊,   Δ_p = 1 − m,   Δ_n = m
/// loss_i = softplus( logΣ_p exp(−γ α_p (s_p − Δ_p)) + logΣ_n exp(γ α_n (s_n − Δ_n)) )
/// loss = mean over those anchors
/// ```
///
/// - Default distance: cosine similarity. Defaults `m = 0.4`, `γ = 80`, as in PML's `CircleLoss`.
/// - Terms: `circle`, one per anchor that has both a positive and a negative.
/// - Difference from PML: PML detaches the weights `α` from the graph (as the paper's code does);
///   here the gradient is the loss's exact derivative, `α` included, so that it passes the
///   library's finite-difference check. The values are the same.
/// - Reads `n × m` score matrices (the batch against itself, or against a cross-batch memory).
public struct CircleLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The relaxation margin `m`.
  public var margin: Scalar
  /// The scale `γ`.
  public var gamma: Scalar
  /// Cosine similarity.
  public var distance: Distance { .cosine }
  var mask = PairMask()

  public init(margin: Scalar = 0.4, gamma: Scalar = 80) {
    self.margin = margin
    self.gamma = gamma
  }

  public static var registryName: String { "circle" }
  public static var summary: String { "Circle loss (Sun et al. 2020), from the example package" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("m", .real, default: "0.4", "relaxation margin"),
      HyperparameterSpec("gamma", .real, default: "80", "scale"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(margin: Scalar(try v.real("m")), gamma: Scalar(try v.real("gamma", "positive") { $0 > 0 }))
  }

  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let (m, gamma) = (margin, gamma)
    // Logits and their derivatives with respect to the score.
    func positive(_ s: Scalar) -> (x: Scalar, slope: Scalar) {
      let alpha = 1 + m - s
      guard alpha > 0 else { return (0, 0) }
      return (-gamma * alpha * (s - (1 - m)), -gamma * (alpha - (s - (1 - m))))
    }
    func negative(_ s: Scalar) -> (x: Scalar, slope: Scalar) {
      let alpha = s + m
      guard alpha > 0 else { return (0, 0) }
      return (gamma * alpha * (s - m), gamma * (alpha + (s - m)))
    }
    // First pass: each anchor's value, kept for the reduction.
    var values = [Scalar](repeating: -1, count: n)
    var acc = TermAccumulator<Scalar>()
    var x = [Scalar](repeating: 0, count: columns)
    func logSumExp(_ row: Int, kind: UInt8, _ f: (Scalar) -> (x: Scalar, slope: Scalar)) -> Scalar? {
      var largest = -Scalar.infinity
      for j in 0..<columns where mask.values[row * columns + j] == kind {
        x[j] = f(scores[row, j]).x
        largest = max(largest, x[j])
      }
      guard largest > -Scalar.infinity else { return nil }
      var sum: Scalar = 0
      for j in 0..<columns where mask.values[row * columns + j] == kind { sum += Scalar.exp(x[j] - largest) }
      return Scalar.log(sum) + largest
    }
    var parts = [(lp: Scalar, ln: Scalar)](repeating: (0, 0), count: n)
    for i in 0..<n {
      guard let lp = logSumExp(i, kind: PairMask.positive, positive), let ln = logSumExp(i, kind: PairMask.negative, negative)
      else { continue }
      let z = lp + ln
      values[i] = z > 0 ? z + Scalar.log(1 + Scalar.exp(-z)) : Scalar.log(1 + Scalar.exp(z))
      parts[i] = (lp, ln)
      acc.add(values[i])
    }
    guard acc.count > 0 else { return LossValue(LossTerm(name: "circle", value: 0, count: 0, nonZero: 0)) }
    // Second pass: ∂loss/∂s = (1/count) · sigmoid(z) · softmax weight · ∂logit/∂s.
    let inverse = 1 / Scalar(acc.count)
    for i in 0..<n where values[i] >= 0 {
      let z = parts[i].lp + parts[i].ln
      let outer = inverse / (1 + Scalar.exp(-z))
      for j in 0..<columns {
        let kind = mask.values[i * columns + j]
        guard kind != 0 else { continue }
        let (logit, slope) = kind == PairMask.positive ? positive(scores[i, j]) : negative(scores[i, j])
        let weight = Scalar.exp(logit - (kind == PairMask.positive ? parts[i].lp : parts[i].ln))
        scoreGradient[i, j] = outer * weight * slope
      }
    }
    return LossValue(LossTerm(name: "circle", value: acc.sum * inverse, count: acc.count, nonZero: acc.nonZero))
  }
}
