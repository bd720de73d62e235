/// P2SGrad (Zhang et al. 2019), as PML's `P2SGradLoss`: the mean squared error between each row's
/// cosines to the class weights and its one-hot label, whose gradients are the paper's
/// probability-to-similarity gradients.
///
/// ```
/// cos θ_ij = x_i · w_j / (‖x_i‖ ‖w_j‖)     loss = (1 / (N K)) Σ_i Σ_j (cos θ_ij − [j = y_i])²
/// ```
///
/// - Distance: cosine. Reduction: the mean over every row and class. Term: `loss`, one value.
///   Ignores a miner, as PML.
/// - Class weights: PML keeps unit columns by renormalising them before each pass, outside the
///   gradient, so its weight gradient has a component along each weight that the renormalisation
///   then undoes. Here the cosine normalises the weights inside the gradient: the values and the
///   embeddings' gradient are PML's, the weights' gradient is PML's without that component (its
///   projection orthogonal to each weight), and the weights' lengths are free, as they do not
///   change the loss. PML's renormalisation divides by the norm plus 1e-7 (`torch.renorm`), so its
///   cosines are 1e-7 smaller than these. Initial weights are He-normal like the family's others,
///   not PML's uniform.
public struct P2SGradLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The class weights, one row per class.
  public var weights: ClassWeights<Scalar>
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }

  /// P2SGrad over `weights`.
  public init(weights: ClassWeights<Scalar>) { self.weights = weights }

  public static var registryName: String { "p2s-grad" }
  public static var summary: String { "P2SGrad (Zhang et al. 2019): squared error of the class cosines against one-hot labels" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] { [.classes] }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(weights: try ClassWeights(v, context: context))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, k) = (scores.rows, scores.columns)
    checkLabels(labels, classes: k, loss: "P2SGradLoss")
    scoreGradient.resize(rows: n, columns: k)
    guard n > 0, k > 0 else { return LossValue(LossTerm(name: "loss", value: 0, count: 1, nonZero: 0)) }
    let inverse = 1 / (Scalar(n) * Scalar(k))
    var sum: Scalar = 0
    // Row by row: the errors against zero in one vectorisable pass (kept in a buffer), the
    // label's entry corrected, then the row's squared errors summed in lanes.
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: k) { errors in
          let e = errors.baseAddress!
          @inline(__always) func entry(_ raw: Scalar, target: Scalar) -> (error: Scalar, gradient: Scalar) {
            // As PML, the cosine is clamped to [−1, 1] (no gradient beyond, where rounding puts it).
            // (Selects, which vectorise, where `min` and `max` branch on NaN; NaN stays NaN either way.)
            let c = raw < -1 ? -1 : (raw > 1 ? 1 : raw)
            let error = c - target
            return (error, raw == c ? 2 * error * inverse : 0)
          }
          typealias Lanes = Scalar.Lanes
          let (below, above, zero) = (Lanes(repeating: -1), Lanes(repeating: 1), Lanes(repeating: 0))
          let slope = Lanes(repeating: 2 * inverse)
          for i in 0..<n {
            let row = s.baseAddress! + i * k, gradient = g.baseAddress! + i * k
            var j = 0
            while j + Lanes.width <= k {
              // The same clamp in lanes; a NaN lane is caught below, with its row.
              let raw = Lanes(loading: row + j)
              let c = raw.replacing(with: below, where: Lanes.less(raw, below)).replacing(with: above, where: Lanes.greater(raw, above))
              c.store(to: e + j)
              (slope * c).replacing(with: zero, where: Lanes.less(raw, below)).replacing(with: zero, where: Lanes.greater(raw, above))
                .store(to: gradient + j)
              j += Lanes.width
            }
            while j < k {
              (e[j], gradient[j]) = entry(row[j], target: 0)
              j += 1
            }
            let y = labels[i]
            (e[y], gradient[y]) = entry(row[y], target: 1)
            var rowSum = Scalar.dot(e, e, count: k)
            if rowSum.isNaN {
              // A NaN cosine: the row again entry by entry, where a NaN gets no gradient.
              for j in 0..<k { (e[j], gradient[j]) = entry(row[j], target: j == y ? 1 : 0) }
              rowSum = Scalar.dot(e, e, count: k)
            }
            sum += rowSum
          }
        }
      }
    }
    let value = sum * inverse
    return LossValue(LossTerm(name: "loss", value: value, count: 1, nonZero: value > 0 ? 1 : 0))
  }
}
