/// Histogram loss (Ustinova and Lempitsky 2016), as PML's `HistogramLoss`: the probability that a
/// random negative pair scores above a random positive pair, from soft histograms of the two
/// score sets.
///
/// ```
/// bins of width δ = 2/n_bins over [−1, 1]; each score adds linearly to its two nearest bin nodes
/// p⁺, p⁻ = the histograms of the positive and negative pairs' scores (each summing to 1)
/// loss = Σ_r p⁻[r] · Σ_{t ≤ r} p⁺[t]
/// ```
///
/// - Distance: cosine similarity (scores in [−1, 1]). Default 100 bins. The value is already
///   reduced (PML's `already_reduced`).
/// - Pairs: each unordered pair once, from the triplets of the tuples (or all triplets): a pair
///   counts when its anchor has both a positive and a negative, as PML's `convert_to_triplets`.
/// - A score's bin index is computed in `Float` as PML computes it (`distances.float()`), and
///   clamped to the last bin (PML indexes past its histogram for a score of exactly 1).
/// - Term: `loss`, one value. No cross-batch memory (as in PML).
///
/// ### See Also
/// `NTXentLoss`, `MultiSimilarityLoss`.
public struct HistogramLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// Bins over [−1, 1].
  public var bins: Int
  @usableFromInline var positives: [Int] = []
  @usableFromInline var negatives: [Int] = []
  @usableFromInline var positiveDensity: [Scalar] = []
  @usableFromInline var negativeDensity: [Scalar] = []

  /// The score between embeddings: cosine similarity.
  public var distance: Distance { .cosine }

  /// A histogram loss with `bins` bins (100 by default, as PML).
  public init(bins: Int = 100) {
    precondition(bins >= 1, "HistogramLoss: bins must be at least 1")
    self.bins = bins
  }

  public static var registryName: String { "histogram" }
  public static var summary: String { "Histogram loss (Ustinova and Lempitsky 2016): negatives scoring above positives, by soft histograms" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("bins", .integer, default: "100", "histogram bins over [−1, 1]", range: .closed(1, 100_000))]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(bins: try v.integer("bins"))
  }

  /// The bin of score `s` and its weights on the bin's two nodes, as PML computes them.
  @inlinable
  static func node(_ s: Scalar, bins: Int) -> (bin: Int, low: Scalar, high: Scalar) {
    let delta = 2 / Double(bins)
    // Clamped in Float first: a non-finite score (the trainer then stops on the non-finite loss)
    // must not trap in the conversion to Int.
    let position = ((Float(s) + 1) / Float(delta)).rounded(.down)
    let r = position.isNaN ? 0 : Int(Swift.min(Swift.max(position, 0), Float(bins - 1)))
    let d = Scalar(delta)
    return (r, (Scalar(r + 1) * d - 1 - s) / d, (s + 1 - Scalar(r) * d) / d)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "HistogramLoss compares the batch with itself (no cross-batch memory)")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    // The unordered pairs of the triplets, as flat indices i·n + j with i < j.
    var positiveSet = Set<Int>(), negativeSet = Set<Int>()
    func add(_ a: Int, _ p: Int, _ q: Int) {
      positiveSet.insert(Swift.min(a, p) * n + Swift.max(a, p))
      negativeSet.insert(Swift.min(a, q) * n + Swift.max(a, q))
    }
    Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples, add)
    positives = positiveSet.sorted()
    negatives = negativeSet.sorted()
    guard !positives.isEmpty, !negatives.isEmpty else { return LossValue(LossTerm(name: "loss", value: 0, count: 1, nonZero: 0)) }
    // The two soft histograms, each summing to 1.
    let bins = self.bins
    func density(_ pairs: [Int], _ out: inout [Scalar], _ s: UnsafeBufferPointer<Scalar>) {
      out = [Scalar](repeating: 0, count: bins + 1)
      let inverse = 1 / Scalar(pairs.count)
      for k in pairs {
        let (r, low, high) = Self.node(s[k], bins: bins)
        out[r] += low * inverse
        out[r + 1] += high * inverse
      }
    }
    var value: Scalar = 0
    scores.withUnsafeBufferPointer { s in
      density(positives, &positiveDensity, s)
      density(negatives, &negativeDensity, s)
      var cumulative: Scalar = 0
      for r in 0...bins {
        cumulative += positiveDensity[r]
        value += negativeDensity[r] * cumulative
      }
      // ∂loss/∂p⁺[t] = Σ_{r ≥ t} p⁻[r]; ∂loss/∂p⁻[r] = Σ_{t ≤ r} p⁺[t]; a score moves its two nodes by ∓1/δ.
      let delta = Scalar(2) / Scalar(bins)
      scoreGradient.withUnsafeMutableBufferPointer { g in
        let positiveScale = 1 / (delta * Scalar(positives.count))
        for k in positives {
          let r = Self.node(s[k], bins: bins).bin
          g[k] += -negativeDensity[r] * positiveScale
        }
        let negativeScale = 1 / (delta * Scalar(negatives.count))
        for k in negatives {
          let r = Self.node(s[k], bins: bins).bin
          g[k] += positiveDensity[r + 1] * negativeScale
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: value, count: 1, nonZero: value > 0 ? 1 : 0))
  }
}
