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
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        for i in 0..<n {
          for j in 0..<k {
            // As PML, the cosine is clamped to [−1, 1] (no gradient beyond, where rounding puts it).
            let raw = s[i * k + j], c = Swift.min(Swift.max(raw, -1), 1)
            let e = c - (j == labels[i] ? 1 : 0)
            sum += e * e
            g[i * k + j] = raw == c ? 2 * e * inverse : 0
          }
        }
      }
    }
    let value = sum * inverse
    return LossValue(LossTerm(name: "loss", value: value, count: 1, nonZero: value > 0 ? 1 : 0))
  }
}
