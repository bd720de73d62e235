@_exported import DMLCore

/// Learned class weights, one row per class: the family's shared storage.
public struct ClassWeights<Scalar: DMLScalar>: Sendable {
  /// The weights, `classes × dimension` (the transpose of PML's `W`).
  public var parameter: Parameter<Scalar>

  /// He-normal weights drawn with `seed`.
  public init(classes: Int, dimension: Int, seed: UInt64, group: Int = 0) {
    precondition(classes > 0 && dimension > 0, "Class weights need classes and a dimension")
    var rng = RandomSource(seed: seed)
    var value = Matrix<Scalar>(rows: classes, columns: dimension)
    let std = (2 / Double(dimension)).squareRoot()
    value.apply { _ in Scalar(std * rng.normal(Double.self)) }
    parameter = Parameter(name: "class_weights", shape: [classes, dimension], value: value, group: group)
  }

  /// Given weights, `classes × dimension`.
  public init(_ value: Matrix<Scalar>, group: Int = 0) {
    parameter = Parameter(name: "class_weights", shape: [value.rows, value.columns], value: value, group: group)
  }

  /// Weights built from a registry's values.
  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let classes = try v.learnedClasses(context)
    self.init(
      classes: classes, dimension: context.embeddingDimension,
      seed: context.seed &+ 0x434C_4153)
  }
}

/// A loss of this family: its references are its class weights, trained by the optimizer.
public protocol ClassWeightLoss: PairwiseLoss {
  /// The class weights.
  var weights: ClassWeights<Scalar> { get set }
}

extension ClassWeightLoss {
  /// The class weights' values, one row per class.
  public var references: Matrix<Scalar>? { weights.parameter.value }

  /// Stores `∂loss/∂weights` as the weights' gradient, for the optimizer.
  public mutating func receiveReferenceGradient(
    _ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]
  ) {
    weights.parameter.gradient.assign(gradient)
  }

  /// Visits the class weights (`class_weights`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&weights.parameter)
  }
}

/// The softmax cross-entropy that every loss of this family ends with. `targetLogit` turns the
/// target class's score (and the class) into its logit and returns the logit's derivative with
/// respect to the score; other classes use `scale · score`.
@inlinable
func classificationLoss<T: DMLScalar>(
  scores: Matrix<T>, labels: [Int], scale: T, bias: UnsafeBufferPointer<T>?,
  targetLogit: (T, Int) -> (logit: T, slope: T), scoreGradient: inout Matrix<T>
) -> LossValue<T> {
  let (n, c) = (scores.rows, scores.columns)
  checkLabels(labels, classes: c, loss: "classification loss")
  scoreGradient.resize(rows: n, columns: c)
  var acc = TermAccumulator<T>()
  let inverseN = n > 0 ? 1 / T(n) : 0
  scores.withUnsafeBufferPointer { s in
    scoreGradient.withUnsafeMutableBufferPointer { g in
      withUnsafeTemporaryAllocation(of: T.self, capacity: c) { logits in
        for i in 0..<n {
          let y = labels[i]
          for j in 0..<c { logits[j] = scale * s[i * c + j] + (bias?[j] ?? 0) }
          let target = targetLogit(s[i * c + y], y)
          logits[y] = scale * target.logit + (bias?[y] ?? 0)
          let row = g.baseAddress! + i * c
          acc.add(crossEntropy(logits: logits.baseAddress!, count: c, label: y, scale: inverseN, gradient: row))
          for j in 0..<c { row[j] *= scale }
          row[y] *= target.slope
        }
      }
    }
  }
  return LossValue(LossTerm(name: "element", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
}

/// Softmax cross-entropy over a learned linear classifier, `logits = x Wᵀ + b`: the
/// classification baseline, and the partner of `CenterLoss` (Wen et al. 2016 train the two
/// together). PML has no loss of its own for it: its users put `torch.nn.CrossEntropyLoss` on a
/// `Linear` layer, which this reproduces.
///
/// ```
/// loss_i = −log( exp(logit_{i,y_i}) / Σ_c exp(logit_{i,c}) )
/// ```
///
/// - Distance: dot product of unnormalised rows. Reduction: the mean over rows.
/// - Terms: `element`, one per row.
public struct SoftmaxLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The classifier's weights.
  public var weights: ClassWeights<Scalar>
  /// The classifier's bias, one per class.
  public var bias: Parameter<Scalar>
  /// Dot product of unnormalised rows (fixed): the scores are the logits before the bias.
  public var distance: Distance { .dotProduct }

  /// A classifier with the given weights and a zero bias (without weight decay).
  public init(weights: ClassWeights<Scalar>) {
    self.weights = weights
    bias = Parameter(
      name: "bias", shape: [weights.parameter.value.rows],
      value: Matrix(rows: 1, columns: weights.parameter.value.rows), decays: false)
  }

  public static var registryName: String { "softmax" }
  public static var summary: String { "Softmax cross-entropy over a linear classifier" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] { [.classes] }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(weights: try ClassWeights(v, context: context))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let value = bias.value.withUnsafeBufferPointer { b in
      classificationLoss(
        scores: scores, labels: labels, scale: 1, bias: b, targetLogit: { s, _ in (s, 1) },
        scoreGradient: &scoreGradient)
    }
    // The logits' gradient is the bias's, summed over rows.
    bias.gradient.withUnsafeMutableBufferPointer { scoreGradient.columnSums(into: $0) }
    return value
  }

  // Spelled out, as the family's: a type with its own `visitParameters` would otherwise be given
  // `PairwiseLoss`'s default for the gradient (the conformance suite caught it once).
  /// Stores `∂loss/∂weights` as the weights' gradient, for the optimizer.
  public mutating func receiveReferenceGradient(
    _ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]
  ) {
    weights.parameter.gradient.assign(gradient)
  }

  /// Visits the weights (`class_weights`), then the bias (`bias`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&weights.parameter)
    visitor.visit(&bias)
  }
}

/// Normalised softmax (Zhai and Wu 2019, "Classification is a strong baseline"): cross-entropy of
/// cosine similarities to the class weights divided by a temperature.
///
/// ```
/// loss_i = −log softmax_{y_i}(x̂_i · ŵ_c / T)
/// ```
/// - Distance: cosine. Reduction: the mean over rows. Terms: `element`, one per row.
public struct NormalizedSoftmaxLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The class weights, one row per class.
  public var weights: ClassWeights<Scalar>
  /// The temperature T.
  public var temperature: Scalar
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }

  /// Normalised softmax over `weights` with temperature `temperature` (0.05 by default, as PML).
  public init(weights: ClassWeights<Scalar>, temperature: Scalar = 0.05) {
    self.weights = weights
    self.temperature = temperature
  }

  public static var registryName: String { "normalized-softmax" }
  public static var summary: String { "Normalised softmax (Zhai and Wu 2019)" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [.classes, HyperparameterSpec("temperature", .real, default: "0.05", "softmax temperature", range: .positive)]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      weights: try ClassWeights(v, context: context),
      temperature: Scalar(try v.real("temperature", "positive") { $0 > 0 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    classificationLoss(
      scores: scores, labels: labels, scale: 1 / temperature, bias: nil, targetLogit: { s, _ in (s, 1) },
      scoreGradient: &scoreGradient)
  }
}

/// ArcFace (Deng et al. 2019): an additive angular margin on the target class.
///
/// ```
/// θ = arccos(x̂ · ŵ_y);  target logit = cos(θ + m) if θ ≤ π − m, else cos θ − m sin m
/// loss_i = −log softmax_{y_i}(s · logits)
/// ```
/// - Distance: cosine. Reduction: the mean over rows. Terms: `element`.
/// - `margin` is in degrees (28.6 by default, as PML), converted to radians inside.
public struct ArcFaceLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The class weights, one row per class.
  public var weights: ClassWeights<Scalar>
  /// The angular margin, in degrees.
  public var marginDegrees: Scalar
  /// The logit scale s.
  public var scale: Scalar
  /// One angular margin per class, in radians, in place of `marginDegrees` (dynamic ArcFace's
  /// margins from the class sizes); `nil` for the one margin.
  public var classMargins: [Scalar]?
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }

  /// ArcFace over `weights` with an angular margin of `marginDegrees` degrees (28.6 by default)
  /// and logit scale `scale` (64 by default), as PML.
  public init(weights: ClassWeights<Scalar>, marginDegrees: Scalar = 28.6, scale: Scalar = 64) {
    self.weights = weights
    self.marginDegrees = marginDegrees
    self.scale = scale
  }

  public static var registryName: String { "arcface" }
  public static var summary: String { "ArcFace additive angular margin (Deng et al. 2019)" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes, HyperparameterSpec("margin", .real, default: "28.6", "angular margin in degrees", range: .halfOpen(0, 90)),
      HyperparameterSpec("scale", .real, default: "64", "logit scale", range: .positive),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      weights: try ClassWeights(v, context: context),
      marginDegrees: Scalar(try v.real("margin", "in [0, 90)") { $0 >= 0 && $0 < 90 }),
      scale: Scalar(try v.real("scale", "positive") { $0 > 0 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let single = marginDegrees * Scalar.pi / 180
    let margins = classMargins
    return classificationLoss(
      scores: scores, labels: labels, scale: scale, bias: nil,
      targetLogit: { c, y in
        let m = margins?[y] ?? single
        let (cosM, sinM) = (Scalar.cos(m), Scalar.sin(m))
        let cc = Swift.min(Swift.max(c, -1), 1)
        let theta = Scalar.acos(cc)
        if theta <= Scalar.pi - m {
          // cos(θ + m) = c cos m − √(1 − c²) sin m
          let root = Swift.max(1 - cc * cc, Scalar.ulpOfOne).squareRoot()
          return (Scalar.cos(theta + m), cosM + cc * sinM / root)
        }
        return (cc - m * sinM, 1)
      }, scoreGradient: &scoreGradient)
  }
}

/// CosFace (Wang et al. 2018): an additive cosine margin on the target class,
/// `logits = s · (cos θ_c − m [c = y])`.
///
/// - Distance: cosine. Reduction: the mean over rows. Terms: `element`.
public struct CosFaceLoss<Scalar: DMLScalar>: RegisteredLoss, ClassWeightLoss {
  /// The class weights, one row per class.
  public var weights: ClassWeights<Scalar>
  /// The cosine margin m.
  public var margin: Scalar
  /// The logit scale s.
  public var scale: Scalar
  /// Cosine similarity (fixed).
  public var distance: Distance { .cosine }

  /// CosFace over `weights` with cosine margin `margin` (0.35 by default) and logit scale `scale`
  /// (64 by default), as PML.
  public init(weights: ClassWeights<Scalar>, margin: Scalar = 0.35, scale: Scalar = 64) {
    self.weights = weights
    self.margin = margin
    self.scale = scale
  }

  public static var registryName: String { "cosface" }
  public static var summary: String { "CosFace additive cosine margin (Wang et al. 2018)" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes, HyperparameterSpec("margin", .real, default: "0.35", "cosine margin", range: .nonNegative),
      HyperparameterSpec("scale", .real, default: "64", "logit scale", range: .positive),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      weights: try ClassWeights(v, context: context), margin: Scalar(try v.real("margin")),
      scale: Scalar(try v.real("scale", "positive") { $0 > 0 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let m = margin
    return classificationLoss(
      scores: scores, labels: labels, scale: scale, bias: nil, targetLogit: { s, _ in (s - m, 1) },
      scoreGradient: &scoreGradient)
  }
}

/// The classification losses of this module, for a `LossRegistry`.
public enum ClassificationLosses {
  /// Registry entries for `SoftmaxLoss`, `NormalizedSoftmaxLoss`, `ArcFaceLoss`, `CosFaceLoss`,
  /// `SubCenterArcFaceLoss`, `SoftTripleLoss`, `P2SGradLoss`, and `LargeMarginSoftmaxLoss` as
  /// `large-margin-softmax` and `sphereface`, and `DynamicArcFace`, in `Float`.
  public static var registrations: [LossFactory] {
    [
      LossFactory(SoftmaxLoss<Float>.self), LossFactory(NormalizedSoftmaxLoss<Float>.self),
      LossFactory(ArcFaceLoss<Float>.self), LossFactory(CosFaceLoss<Float>.self),
      LossFactory(SubCenterArcFaceLoss<Float>.self), LossFactory(SoftTripleLoss<Float>.self),
      LossFactory(P2SGradLoss<Float>.self),
    ] + LargeMarginSoftmaxLoss<Float>.registrations + [DynamicArcFace.registration]
  }
}
