@_exported import DMLCore

/// Center loss (Wen, Zhang, Li and Qiao 2016): pulls each embedding towards a center for its
/// class; used with weight λ beside `SoftmaxLoss`, as in the paper.
///
/// ```
/// loss = ½ · mean_i ‖x_i − c_{y_i}‖²
/// Δc_j = Σ_i [y_i = j] (c_j − x_i) / (1 + n_j);   c_j ← c_j − α Δc_j
/// ```
/// The centers are updated by the paper's rule, once per step by `updateReferences()`, with the
/// embeddings of that step's evaluation; the optimizer never steps them. They start at 0. They
/// are a non-trainable parameter named `centers`, so that checkpoints hold them.
///
/// - Distance: squared Euclidean between *unnormalised* embeddings and the centers.
/// - Reduction: the mean over the batch's rows. Terms: `center`, one per row.
///
/// ### See Also
/// `SoftmaxLoss`, `WeightedSum`.
public struct CenterLoss<Scalar: DMLScalar>: RegisteredLoss {
  /// The class centers, `classes × dimension`, as a parameter that the optimizer does not step
  /// (`trainable` is false): the α rule moves them.
  public var centerParameter: Parameter<Scalar>
  /// The class centers, `classes × dimension`.
  @inlinable public var centers: Matrix<Scalar> {
    get { centerParameter.value }
    set { centerParameter.value = newValue }
  }
  /// The center learning rate α.
  public var alpha: Scalar
  /// Squared Euclidean between unnormalised rows (fixed).
  public var distance: Distance { Distance(.squaredEuclidean, normalizesEmbeddings: false) }
  /// The centers.
  public var references: Matrix<Scalar>? { centerParameter.value }
  /// `∂loss/∂centers` of the last evaluation (the rule above is used instead).
  public private(set) var centerGradient = Matrix<Scalar>()
  @usableFromInline var lastEmbeddings = Matrix<Scalar>()
  @usableFromInline var lastLabels: [Int] = []
  @usableFromInline var delta = Matrix<Scalar>()
  @usableFromInline var classCounts: [Int] = []

  /// Centers at zero.
  public init(classes: Int, dimension: Int, alpha: Scalar = 0.5) {
    precondition(classes > 0 && dimension > 0, "CenterLoss needs classes and a dimension")
    self.init(centers: Matrix(rows: classes, columns: dimension), alpha: alpha)
  }

  /// Given centers (`classes × dimension`).
  public init(centers: Matrix<Scalar>, alpha: Scalar = 0.5) {
    centerParameter = Parameter(
      name: "centers", shape: [centers.rows, centers.columns], value: centers, decays: false, trainable: false)
    self.alpha = alpha
  }

  public static var registryName: String { "center" }
  public static var summary: String { "Center loss (Wen et al. 2016); pair it with softmax" }
  public static var usesTuples: Bool { false }
  /// `true`: each row's distance to its own class's center is all the loss reads, so only those
  /// are computed (O(n·d), not a GEMM against every center).
  public static var readsOwnClassScoresOnly: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("alpha", .real, default: "0.5", "center update rate α", range: .leftOpen(0, 1)), .classes]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let classes = try v.learnedClasses(context)
    self.init(
      classes: classes, dimension: context.embeddingDimension,
      alpha: Scalar(try v.real("alpha", "in (0, 1]") { $0 > 0 && $0 <= 1 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, c) = (scores.rows, scores.columns)
    checkLabels(labels, classes: c, loss: "CenterLoss")
    scoreGradient.resize(rows: n, columns: c, zeroed: true)
    var acc = TermAccumulator<Scalar>()
    let w = n > 0 ? 1 / (2 * Scalar(n)) : 0
    for i in 0..<n {
      acc.add(scores[i, labels[i]] / 2)
      scoreGradient[i, labels[i]] = w
    }
    return LossValue(LossTerm(name: "center", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }

  /// Keeps `∂loss/∂centers` in `centerGradient`, and the embeddings and labels for
  /// `updateCenters()`: the optimizer never sees the centers.
  public mutating func receiveReferenceGradient(
    _ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]
  ) {
    centerGradient.assign(gradient)
    lastEmbeddings.assign(embeddings)
    lastLabels.removeAll(keepingCapacity: true)
    lastLabels.append(contentsOf: labels)
  }

  /// Wen et al.'s update with the last evaluation's embeddings: returns `Δc` (also applied).
  @discardableResult
  public mutating func updateCenters() -> Matrix<Scalar> {
    let (c, d) = (centerParameter.value.rows, centerParameter.value.columns)
    delta.resize(rows: c, columns: d, zeroed: true)
    if classCounts.count != c { classCounts = [Int](repeating: 0, count: c) }
    for j in 0..<c { classCounts[j] = 0 }
    for (i, y) in lastLabels.enumerated() {
      classCounts[y] += 1
      for k in 0..<d { delta[y, k] += centerParameter.value[y, k] - lastEmbeddings[i, k] }
    }
    for j in 0..<c {
      let scale = 1 / Scalar(1 + classCounts[j])
      for k in 0..<d {
        delta[j, k] *= scale
        centerParameter.value[j, k] -= alpha * delta[j, k]
      }
    }
    return delta
  }

  /// Visits the centers (`centers`), which the optimizer skips (not trainable).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&centerParameter)
  }

  /// Applies `updateCenters()`; does nothing before the first evaluation.
  public mutating func updateReferences() {
    guard !lastLabels.isEmpty else { return }
    updateCenters()
  }
}

/// The center losses of this module, for a `LossRegistry`.
public enum CenterLosses {
  /// The registry entry for `CenterLoss`, in `Float`.
  public static var registrations: [LossFactory] { [LossFactory(CenterLoss<Float>.self)] }
}
