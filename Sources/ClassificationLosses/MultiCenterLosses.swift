/// Sub-center ArcFace (Deng et al. 2020): `subCenters` learned vectors per class; each class's
/// cosine is its best sub-center's, and ArcFace's additive angular margin applies to that.
///
/// ```
/// cos_{i,c} = max_k x̂_i · ŵ_{c,k};  then ArcFace on cos_{i,·}
/// ```
/// - Distance: cosine. Reduction: the mean over rows. Terms: `element`.
/// - `class_weights` has `classes × subCenters` rows, class `c`'s sub-centers consecutive (PML's
///   `W` columns `c·K … c·K + K − 1`); the gradient reaches each row's best sub-center of every
///   class.
public struct SubCenterArcFaceLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The sub-centers, `classes · subCenters` rows.
  public var weights: ClassWeights<Scalar>
  /// Sub-centers per class (3, as PML).
  public let subCenters: Int
  /// ArcFace on the class cosines.
  public var arcFace: ArcFaceLoss<Scalar>
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }
  @usableFromInline var classScores = Matrix<Scalar>(), classGradient = Matrix<Scalar>()
  @usableFromInline var best: [Int32] = []

  /// Sub-center ArcFace over `weights` (`classes · subCenters` rows).
  public init(weights: ClassWeights<Scalar>, subCenters: Int = 3, marginDegrees: Scalar = 28.6, scale: Scalar = 64) {
    precondition(subCenters >= 1 && weights.parameter.value.rows % subCenters == 0, "SubCenterArcFace: rows not a multiple of the sub-centers")
    self.weights = weights
    self.subCenters = subCenters
    arcFace = ArcFaceLoss(weights: ClassWeights(Matrix(rows: 1, columns: 1)), marginDegrees: marginDegrees, scale: scale)
  }

  public static var registryName: String { "subcenter-arcface" }
  public static var summary: String { "Sub-center ArcFace (Deng et al. 2020): ArcFace on each class's best of K sub-centers" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes, HyperparameterSpec("margin", .real, default: "28.6", "angular margin in degrees", range: .halfOpen(0, 90)),
      HyperparameterSpec("scale", .real, default: "64", "logit scale", range: .positive),
      HyperparameterSpec("sub_centers", .integer, default: "3", "sub-centers per class", range: .closed(1, 64)),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let classes = try v.learnedClasses(context), k = try v.integer("sub_centers")
    self.init(
      weights: ClassWeights(classes: classes * k, dimension: context.embeddingDimension, seed: context.seed &+ 0x5343_4146),
      subCenters: k, marginDegrees: Scalar(try v.real("margin")), scale: Scalar(try v.real("scale")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, k) = (scores.rows, subCenters)
    let classes = scores.columns / k
    classScores.resize(rows: n, columns: classes)
    if best.count < n * classes { best = [Int32](repeating: 0, count: n * classes) }
    for i in 0..<n {
      for c in 0..<classes {
        var top = 0
        for s in 1..<Swift.max(k, 1) where scores[i, c * k + s] > scores[i, c * k + top] { top = s }
        best[i * classes + c] = Int32(c * k + top)
        classScores[i, c] = scores[i, c * k + top]
      }
    }
    let value = arcFace.compute(scores: classScores, labels: labels, tuples: nil, scoreGradient: &classGradient)
    scoreGradient.resize(rows: n, columns: scores.columns, zeroed: true)
    for i in 0..<n {
      for c in 0..<classes { scoreGradient[i, Int(best[i * classes + c])] = classGradient[i, c] }
    }
    return value
  }
}

/// SoftTriple loss (Qian et al. 2019): `centersPerClass` learned centers per class; a row's
/// similarity to a class is the softmax-weighted mean of its similarities to the class's centers,
/// and a softmax cross-entropy with a small margin on the target class follows.
///
/// ```
/// S_{i,c} = Σ_k softmax_k(s_{i,c,k} / γ) · s_{i,c,k}
/// loss_i = −log softmax_{y_i}(λ (S_{i,·} − δ [· = y_i]))
/// ```
/// - Distance: cosine. Reduction: the mean over rows. Terms: `element`.
/// - PML's defaults: 10 centers per class, λ (`la`) 20, γ 0.1, δ (`margin`) 0.01. The paper's
///   regulariser of the centers is `weight_regularizer=sparse-centers`, as in PML.
/// - `class_centers` has `classes × centersPerClass` rows (PML's `fc`, transposed), initialised
///   uniformly in `±1/√(classes · centersPerClass)` as PML's Kaiming-uniform (a = √5).
public struct SoftTripleLoss<Scalar: DMLScalar>: RegisteredLoss {
  /// The centers, `classes · centersPerClass` rows.
  public var centers: Parameter<Scalar>
  /// Centers per class.
  public let centersPerClass: Int
  /// λ, the logits' scale.
  public var la: Scalar
  /// γ, the temperature of the softmax over a class's centers.
  public var gamma: Scalar
  /// δ, the margin on the target class.
  public var margin: Scalar
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }
  @usableFromInline var logits: [Scalar] = [], gradient: [Scalar] = [], weighted: [Scalar] = []

  /// SoftTriple over `centers` (`classes · centersPerClass × dimension`).
  public init(centers: Matrix<Scalar>, centersPerClass: Int = 10, la: Scalar = 20, gamma: Scalar = 0.1, margin: Scalar = 0.01) {
    precondition(centersPerClass >= 1 && centers.rows % centersPerClass == 0, "SoftTriple: rows not a multiple of the centers per class")
    self.centers = Parameter(name: "class_centers", shape: [centers.rows, centers.columns], value: centers, decays: false)
    self.centersPerClass = centersPerClass
    self.la = la
    self.gamma = gamma
    self.margin = margin
  }

  public static var registryName: String { "soft-triple" }
  public static var summary: String { "SoftTriple (Qian et al. 2019): several centers per class, a softmax over them, then a margin softmax" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes, HyperparameterSpec("centers_per_class", .integer, default: "10", "centers per class", range: .closed(1, 256)),
      HyperparameterSpec("la", .real, default: "20", "λ, the scale of the logits", range: .positive),
      HyperparameterSpec("gamma", .real, default: "0.1", "γ, the temperature over a class's centers", range: .positive),
      HyperparameterSpec("margin", .real, default: "0.01", "δ, the margin on the target class", range: .nonNegative),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let classes = try v.learnedClasses(context), k = try v.integer("centers_per_class")
    var rng = RandomSource(seed: context.seed &+ 0x5354_5250)
    let bound = 1 / Double(classes * k).squareRoot()
    var c = Matrix<Scalar>(rows: classes * k, columns: context.embeddingDimension)
    c.apply { _ in Scalar(bound * (2 * rng.uniform(Double.self) - 1)) }
    self.init(
      centers: c, centersPerClass: k, la: Scalar(try v.real("la")), gamma: Scalar(try v.real("gamma")), margin: Scalar(try v.real("margin")))
  }

  /// The centers' values.
  public var references: Matrix<Scalar>? { centers.value }

  /// Stores `∂loss/∂centers` as the centers' gradient, for the optimizer.
  public mutating func receiveReferenceGradient(_ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]) {
    centers.gradient.assign(gradient)
  }

  /// Visits the centers (`class_centers`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&centers)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, k) = (scores.rows, centersPerClass)
    let classes = scores.columns / k
    checkLabels(labels, classes: classes, loss: "SoftTriple")
    scoreGradient.resize(rows: n, columns: scores.columns, zeroed: true)
    if logits.count < classes { logits = [Scalar](repeating: 0, count: classes) }
    if gradient.count < classes { gradient = [Scalar](repeating: 0, count: classes) }
    if weighted.count < classes { weighted = [Scalar](repeating: 0, count: classes) }
    let inverseGamma = 1 / gamma, inverseN = n > 0 ? 1 / Scalar(n) : 0
    var acc = TermAccumulator<Scalar>()
    for i in 0..<n {
      // S_{i,c}: the softmax-weighted mean of the row's similarities to class c's centers.
      for c in 0..<classes {
        var largest = -Scalar.infinity
        for s in 0..<k { largest = Swift.max(largest, scores[i, c * k + s] * inverseGamma) }
        var sum: Scalar = 0, dot: Scalar = 0
        for s in 0..<k {
          let e = Scalar.exp(scores[i, c * k + s] * inverseGamma - largest)
          sum += e
          dot += e * scores[i, c * k + s]
        }
        weighted[c] = dot / sum
        logits[c] = la * (weighted[c] - (c == labels[i] ? margin : 0))
      }
      let term = logits.withUnsafeBufferPointer { l in
        gradient.withUnsafeMutableBufferPointer { g in
          crossEntropy(logits: l.baseAddress!, count: classes, label: labels[i], scale: inverseN, gradient: g.baseAddress!)
        }
      }
      acc.add(term)
      // ∂S/∂s_k = p_k (1 + (s_k − S) / γ), p the softmax over the class's centers.
      for c in 0..<classes {
        let dS = la * gradient[c]
        var largest = -Scalar.infinity
        for s in 0..<k { largest = Swift.max(largest, scores[i, c * k + s] * inverseGamma) }
        var sum: Scalar = 0
        for s in 0..<k { sum += Scalar.exp(scores[i, c * k + s] * inverseGamma - largest) }
        for s in 0..<k {
          let x = scores[i, c * k + s]
          let p = Scalar.exp(x * inverseGamma - largest) / sum
          scoreGradient[i, c * k + s] = dS * p * (1 + (x - weighted[c]) * inverseGamma)
        }
      }
    }
    return LossValue(LossTerm(name: "element", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
