/// FastAP (Cakir et al. 2019), as PML's `FastAPLoss`: one minus a histogram approximation of each
/// row's average precision, its distances binned with triangular kernels.
///
/// ```
/// m_b = b·Δ, Δ = 4/B, b = 0…B            pulse_b(d) = relu(1 − |d − m_b|/Δ)
/// h⁺_b = Σ_{positives} pulse_b(d), h⁻_b = Σ_{negatives} pulse_b(d), H⁺, H their running sums
/// FastAP_i = Σ_b h⁺_b H⁺_b / H_b  / N⁺_i      loss = mean over rows with a positive of (1 − FastAP_i)
/// ```
///
/// - Distance: squared Euclidean between L2-normalised rows (in [0, 4]). Default 10 bins. A bin
///   with `h⁺ H⁺ = 0` or `H = 0` adds nothing (PML's `safe_H`).
/// - Term: `loss`, one per row with a positive. Ignores tuples (PML weighs rows by a miner's
///   tuples; here `--miner` does not apply) and has no cross-batch memory, as in PML.
///
/// ### See Also
/// `HistogramLoss`, `NCALoss`.
public struct FastAPLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// Histogram bins over [0, 4].
  public var bins: Int
  @usableFromInline var positive: [Scalar] = []
  @usableFromInline var negative: [Scalar] = []
  @usableFromInline var weights: [Scalar] = []

  /// The score between embeddings: squared Euclidean distance between normalised rows.
  public var distance: Distance { .squaredEuclidean }

  /// A FastAP loss with `bins` bins (10 by default, as PML).
  public init(bins: Int = 10) {
    precondition(bins >= 1, "FastAPLoss: bins must be at least 1")
    self.bins = bins
  }

  public static var registryName: String { "fast-ap" }
  public static var summary: String { "FastAP (Cakir et al. 2019): a histogram approximation of average precision" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("bins", .integer, default: "10", "histogram bins over the distances' range [0, 4]", range: .closed(1, 10_000))]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(bins: try v.integer("bins"))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "FastAPLoss compares the batch with itself (no cross-batch memory)")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let edges = bins + 1
    let delta = Scalar(4) / Scalar(bins)
    @inline(__always) func middle(_ b: Int) -> Scalar { Scalar(4) * Scalar(b) / Scalar(bins) }
    if positive.count < edges {
      positive = [Scalar](repeating: 0, count: edges)
      negative = positive
      weights = [Scalar](repeating: 0, count: 2 * edges)
    }
    let rowsWithPositives = (0..<n).filter { i in (0..<n).contains { $0 != i && labels[$0] == labels[i] } }
    guard !rowsWithPositives.isEmpty else { return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }
    var terms = TermAccumulator<Scalar>()
    var anySafe = false
    let perRow = 1 / Scalar(rowsWithPositives.count)
    // One pass per row: its histograms, its FastAP, then ∂(Σ_b f_b)/∂h⁺_c and ∂/∂h⁻_c by a
    // backward sweep over the bins, and through each pulse to the distances.
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        for i in rowsWithPositives {
          let row = i * columns
          for b in 0..<edges { positive[b] = 0; negative[b] = 0 }
          var count = 0
          for j in 0..<columns where j != i {
            let same = labels[j] == labels[i]
            if same { count += 1 }
            for b in 0..<edges {
              let pulse = Swift.max(0, 1 - abs(s[row + j] - middle(b)) / delta)
              if same { positive[b] += pulse } else { negative[b] += pulse }
            }
          }
          // Running sums H⁺ and H, and the row's FastAP over the safe bins.
          var runningPositive: Scalar = 0, running: Scalar = 0, ap: Scalar = 0
          for b in 0..<edges {
            runningPositive += positive[b]
            running += positive[b] + negative[b]
            weights[b] = runningPositive
            weights[edges + b] = running
            let product = positive[b] * runningPositive
            if product > 0 && running > 0 {
              ap += product / running
              anySafe = true
            }
          }
          terms.add(1 - ap / Scalar(count))
          // G⁺_c = [safe_c]·H⁺_c/H_c + Σ_{b ≥ c, safe} (h⁺_b/H_b − h⁺_b H⁺_b/H_b²) and
          // G⁻_c = Σ_{b ≥ c, safe} (−h⁺_b H⁺_b/H_b²).
          var tailPositive: Scalar = 0, tailNegative: Scalar = 0
          let scale = -perRow / Scalar(count)  // ∂loss_i/∂(Σ_b f_b)
          for b in stride(from: edges - 1, through: 0, by: -1) {
            let (hp, Hp, H) = (positive[b], weights[b], weights[edges + b])
            let safe = hp * Hp > 0 && H > 0
            if safe {
              tailPositive += hp / H - hp * Hp / (H * H)
              tailNegative += -hp * Hp / (H * H)
            }
            weights[b] = (safe ? Hp / H : 0) + tailPositive  // G⁺_b
            weights[edges + b] = tailNegative  // G⁻_b
          }
          for j in 0..<columns where j != i {
            let same = labels[j] == labels[i], d = s[row + j]
            var sum: Scalar = 0
            for b in 0..<edges {
              let offset = d - middle(b)
              guard abs(offset) < delta, offset != 0 else { continue }
              let slope = (offset > 0 ? -1 : 1) / delta  // ∂pulse/∂d
              sum += (same ? weights[b] : weights[edges + b]) * slope
            }
            g[row + j] += scale * sum
          }
        }
      }
    }
    // No safe bin anywhere: PML's zero loss, and so no gradient.
    guard anySafe else {
      scoreGradient.resize(rows: n, columns: columns, zeroed: true)
      return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0))
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
