/// Instance loss (Zheng et al. 2020, dual-path image-text embeddings), as PML's `InstanceLoss`:
/// every row is classified among the batch's columns by a softmax over its scaled cosine
/// similarities.
///
/// ```
/// loss_i = −log softmax_j(γ · cos(x_i, x_j))[t_i],  t_i = rank of y_i among the batch's labels
/// loss = mean over rows
/// ```
/// - Distance: cosine (fixed); γ 64 by default, as PML. Reduction: the mean over rows.
/// - The target column is PML's: the rank of the row's label among the distinct labels of the
///   batch, sorted. With instance labels, one row per instance in label order (its intended use,
///   `--instance-labels`), that is the row itself; otherwise it depends on the batch's order, so the
///   loss is order-dependent by definition.
public struct InstanceLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// γ, the scale of the similarities.
  public var gamma: Scalar
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }
  @usableFromInline var logits: [Scalar] = [], gradient: [Scalar] = []

  /// An instance loss with scale `gamma` (64 by default, as PML).
  public init(gamma: Scalar = 64) { self.gamma = gamma }

  public static var registryName: String { "instance" }
  public static var summary: String { "Instance loss (Zheng et al. 2020): each row classified among the batch by scaled cosine" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("gamma", .real, default: "64", "γ, the scale of the similarities", range: .positive)]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(gamma: Scalar(try v.real("gamma")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, m) = (scores.rows, scores.columns)
    scoreGradient.resize(rows: n, columns: m, zeroed: true)
    guard n > 0 else { return .zero }
    let ranks = Dictionary(uniqueKeysWithValues: Set(labels.prefix(n)).sorted().enumerated().map { ($1, $0) })
    if logits.count < m {
      logits = [Scalar](repeating: 0, count: m)
      gradient = [Scalar](repeating: 0, count: m)
    }
    var acc = TermAccumulator<Scalar>()
    let inverseN = 1 / Scalar(n)
    for i in 0..<n {
      for j in 0..<m { logits[j] = gamma * scores[i, j] }
      let target = ranks[labels[i]]!
      let term = logits.withUnsafeBufferPointer { l in
        gradient.withUnsafeMutableBufferPointer { g in
          crossEntropy(logits: l.baseAddress!, count: m, label: target, scale: inverseN, gradient: g.baseAddress!)
        }
      }
      acc.add(term)
      for j in 0..<m { scoreGradient[i, j] = gamma * gradient[j] }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
