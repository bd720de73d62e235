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
    precondition(labels.count == n, "FastAPLoss: one label per row")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    var classSizes: [Int: Int] = [:]
    for label in labels { classSizes[label, default: 0] += 1 }
    let rowsWithPositives = (0..<n).filter { classSizes[labels[$0]]! > 1 }
    guard !rowsWithPositives.isEmpty else { return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }
    let edges = bins + 1
    let delta = Scalar(4) / Scalar(bins)
    let slope = 1 / delta  // |∂pulse/∂d| inside a pulse (±1/Δ: the same bits as (±1)/Δ)
    // Per bin: its middle, h⁺, h⁻, then H⁺ and H (overwritten by G⁺ and G⁻ in the backward sweep).
    var work = [Scalar](repeating: 0, count: 5 * edges)
    var terms = TermAccumulator<Scalar>()
    var anySafe = false
    let perRow = 1 / Scalar(rowsWithPositives.count)
    // One pass per row: its histograms, its FastAP, then ∂(Σ_b f_b)/∂h⁺_c and ∂/∂h⁻_c by a
    // backward sweep over the bins, and through each pulse to the distances. A distance's pulse is
    // non-zero in at most two neighbouring bins: only the bins beside d/Δ are visited (one more on
    // each side, so a rounding of the quotient cannot drop one), each with PML's formula
    // relu(1 − |d − m_b|/Δ), so the sums are the same as over every bin.
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        labels.withUnsafeBufferPointer { label in
          work.withUnsafeMutableBufferPointer { w in
            let middle = w.baseAddress!, positive = middle + edges, negative = positive + edges
            let runningPositive = negative + edges, running = runningPositive + edges
            for b in 0..<edges { middle[b] = Scalar(4) * Scalar(b) / Scalar(bins) }
            @inline(__always) func nearBins(_ d: Scalar) -> (Int, Int) {
              let q = d / delta
              guard q >= -2, q <= Scalar(edges + 2) else { return (1, 0) }  // also NaN: no bin
              let floor = q.rounded(.down).truncatedInt
              return (Swift.max(0, floor - 1), Swift.min(edges - 1, floor + 2))
            }
            for i in rowsWithPositives {
              let row = i * columns, own = label[i]
              for b in 0..<edges { positive[b] = 0; negative[b] = 0 }
              var count = 0
              for j in 0..<columns where j != i {
                let same = label[j] == own, d = s[row + j]
                if same { count += 1 }
                let (first, last) = nearBins(d)
                var b = first
                while b <= last {
                  let offset = abs(d - middle[b])
                  if offset < delta {
                    let pulse = Swift.max(0, 1 - offset / delta)
                    if same { positive[b] += pulse } else { negative[b] += pulse }
                  }
                  b += 1
                }
              }
              // Running sums H⁺ and H, and the row's FastAP over the safe bins.
              var sumPositive: Scalar = 0, sum: Scalar = 0, ap: Scalar = 0
              for b in 0..<edges {
                sumPositive += positive[b]
                sum += positive[b] + negative[b]
                runningPositive[b] = sumPositive
                running[b] = sum
                let product = positive[b] * sumPositive
                if product > 0 && sum > 0 {
                  ap += product / sum
                  anySafe = true
                }
              }
              terms.add(1 - ap / Scalar(count))
              // G⁺_c = [safe_c]·H⁺_c/H_c + Σ_{b ≥ c, safe} (h⁺_b/H_b − h⁺_b H⁺_b/H_b²) and
              // G⁻_c = Σ_{b ≥ c, safe} (−h⁺_b H⁺_b/H_b²), stored in place of H⁺ and H.
              var tailPositive: Scalar = 0, tailNegative: Scalar = 0
              for b in stride(from: edges - 1, through: 0, by: -1) {
                let (hp, Hp, H) = (positive[b], runningPositive[b], running[b])
                let safe = hp * Hp > 0 && H > 0
                if safe {
                  tailPositive += hp / H - hp * Hp / (H * H)
                  tailNegative += -hp * Hp / (H * H)
                }
                runningPositive[b] = (safe ? Hp / H : 0) + tailPositive  // G⁺_b
                running[b] = tailNegative  // G⁻_b
              }
              let scale = -perRow / Scalar(count)  // ∂loss_i/∂(Σ_b f_b)
              for j in 0..<columns where j != i {
                let d = s[row + j]
                let weight = label[j] == own ? runningPositive : running
                let (first, last) = nearBins(d)
                var sum: Scalar = 0
                var b = first
                while b <= last {
                  let offset = d - middle[b]
                  // ∂pulse/∂d = −sign(d − m_b)/Δ inside the pulse; zero at its peak and edges, as torch.
                  if abs(offset) < delta && offset != 0 { sum += offset > 0 ? -weight[b] * slope : weight[b] * slope }
                  b += 1
                }
                g[row + j] += scale * sum
              }
            }
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
