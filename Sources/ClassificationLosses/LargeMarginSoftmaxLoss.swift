/// Large-margin softmax (Liu et al. 2016, "Large-Margin Softmax Loss for Convolutional Neural
/// Networks") and SphereFace (Liu et al. 2017, "SphereFace: Deep Hypersphere Embedding for Face
/// Recognition"), as PML's `LargeMarginSoftmaxLoss` and `SphereFaceLoss`: cross-entropy over
/// class weights where the target class's angle is multiplied by the margin `m`.
///
/// ```
/// c = x̂_i · ŵ_j,   θ = arccos c,   k = ⌊θ m / π⌋
/// ψ(θ) = (−1)^k cos(m θ) − 2k            (cos(mθ) as the polynomial in c of the paper's Eq. 7)
/// logit_ij = s · ‖x_i‖ · ‖w_j‖ · (j = y_i ? ψ(θ_ij) : cos θ_ij)    (large-margin softmax)
/// logit_ij = s · ‖x_i‖ · (j = y_i ? ψ(θ_ij) : cos θ_ij)            (SphereFace: weights of norm 1)
/// loss = mean over rows of −log softmax_{y_i}(logit_i)
/// ```
///
/// - Defaults as PML: margin 4, scale 1.
/// - Learned state: `class_weights`, one row per class (PML's `W`, transposed).
/// - Not a function of a score matrix: the logits scale with the embeddings' own norms, so the
///   loss reads the embeddings (an `EmbeddingLoss`), and the gradient flows through the norms.
///   `k` is a constant of the gradient, as in PML (it is piecewise constant).
/// - Terms: `loss`, one per row. No cross-batch memory, no miner.
public struct LargeMarginSoftmaxLoss<Scalar: DMLScalar>: EmbeddingLoss {
  /// Whether the logits scale with the class weights' norms (large-margin softmax) or not
  /// (SphereFace).
  public enum Variant: String, Sendable {
    /// Liu et al. 2016: `s ‖x‖ ‖w‖ ψ`.
    case largeMargin = "large-margin-softmax"
    /// Liu et al. 2017: `s ‖x‖ ψ`, the weights normalised.
    case sphereFace = "sphereface"
  }

  /// The class weights, one row per class.
  public var weights: ClassWeights<Scalar>
  /// The angular margin `m`, a positive integer.
  public let margin: Int
  /// The logits' scale `s`.
  public var scale: Scalar
  /// Large-margin softmax or SphereFace.
  public let variant: Variant
  /// `∂loss/∂embeddings` of the last evaluation.
  public private(set) var embeddingGradient = Matrix<Scalar>()
  @usableFromInline var rows = Matrix<Scalar>(), classes = Matrix<Scalar>()
  @usableFromInline var cosines = Matrix<Scalar>(), cosineGradient = Matrix<Scalar>()
  @usableFromInline var rowDirections = Matrix<Scalar>(), classDirections = Matrix<Scalar>(), classTerms = Matrix<Scalar>()
  /// The threads the products use.
  public var compute: ComputeContext = .automatic

  /// The loss over `weights`; PML's defaults are margin 4 and scale 1.
  public init(weights: ClassWeights<Scalar>, margin: Int = 4, scale: Scalar = 1, variant: Variant = .largeMargin) {
    precondition(margin >= 1, "LargeMarginSoftmaxLoss: margin \(margin) must be a positive integer")
    self.weights = weights
    self.margin = margin
    self.scale = scale
    self.variant = variant
  }

  /// The declared hyperparameters, with PML's defaults.
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes,
      HyperparameterSpec("margin", .integer, default: "4", "the angle's multiplier m", range: .closed(1, 16)),
      HyperparameterSpec("scale", .real, default: "1", "the logits' scale s", range: .positive),
    ]
  }

  /// The loss from validated values.
  public init(_ v: HyperparameterValues, context: LossContext, variant: Variant) throws {
    self.init(
      weights: try ClassWeights(v, context: context), margin: try v.integer("margin"), scale: Scalar(try v.real("scale")),
      variant: variant)
  }

  /// The registry entries, `large-margin-softmax` and `sphereface`, in `Float`.
  public static var registrations: [LossFactory] {
    [
      LossFactory(
        name: Variant.largeMargin.rawValue, summary: "Large-margin softmax (Liu et al. 2016): the target angle multiplied by m",
        hyperparameters: hyperparameters, usesTuples: false, acceptsMemory: false
      ) { v, context in AnyEmbeddingLoss(try LargeMarginSoftmaxLoss<Float>(v, context: context, variant: .largeMargin)) },
      LossFactory(
        name: Variant.sphereFace.rawValue, summary: "SphereFace (Liu et al. 2017): angular margin m, normalised class weights",
        hyperparameters: hyperparameters, usesTuples: false, acceptsMemory: false
      ) { v, context in AnyEmbeddingLoss(try LargeMarginSoftmaxLoss<Float>(v, context: context, variant: .sphereFace)) },
    ]
  }

  /// No cross-batch memory.
  public var acceptsMemory: Bool { false }
  /// Nothing to update outside the optimizer.
  public mutating func updateReferences() {}

  /// Visits the class weights (`class_weights`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&weights.parameter)
  }

  /// `cos(m θ)` as the polynomial in `c = cos θ` (the paper's Eq. 7) and its derivative in `c`.
  @inlinable
  func multipleAngle(_ c: Scalar) -> (value: Scalar, slope: Scalar) {
    let s2 = 1 - c * c
    var value: Scalar = 0, slope: Scalar = 0, binomial: Double = 1  // C(m, 2n)
    for n in 0...(margin / 2) {
      if n > 0 {
        let top = Double((margin - 2 * n + 2) * (margin - 2 * n + 1)), bottom = Double((2 * n - 1) * (2 * n))
        binomial *= top / bottom
      }
      let sign: Scalar = n % 2 == 0 ? 1 : -1, a = margin - 2 * n
      let coefficient = sign * Scalar(binomial)
      let cPower = Scalar.pow(c, a), sPower = Scalar.pow(s2, n)
      value += coefficient * cPower * sPower
      if a > 0 { slope += coefficient * Scalar(a) * Scalar.pow(c, a - 1) * sPower }
      if n > 0 { slope += coefficient * cPower * Scalar(n) * Scalar.pow(s2, n - 1) * (-2 * c) }
    }
    return (value, slope)
  }

  /// `ψ(θ) = (−1)^k cos(mθ) − 2k` of a target cosine and its derivative in the cosine (`k` held).
  @inlinable
  func targetLogit(_ c: Scalar) -> (value: Scalar, slope: Scalar) {
    let angle = Scalar.acos(Swift.min(1, Swift.max(-1, c)))
    let k = (angle / (Scalar.pi / Scalar(margin))).rounded(.down)
    let (value, slope) = multipleAngle(c)
    let sign: Scalar = Int(k) % 2 == 0 ? 1 : -1
    return (sign * value - 2 * k, sign * slope)
  }

  /// The loss of the batch, and its gradient into `embeddingGradient` and the weights' gradient.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    precondition(memory == nil, "LargeMarginSoftmaxLoss takes no cross-batch memory")
    let w = weights.parameter.value
    let (n, c, d) = (embeddings.rows, w.rows, embeddings.columns)
    precondition(w.columns == d, "LargeMarginSoftmaxLoss: \(d)-dimensional embeddings, \(w.columns)-dimensional class weights")
    checkLabels(labels, classes: c, loss: "LargeMarginSoftmaxLoss")
    let rowNorms = embeddings.unitRows(into: &rowDirections)
    let classNorms = w.unitRows(into: &classDirections)
    gemm(rowDirections, classDirections, transposeB: true, into: &cosines, compute: compute)
    let usesClassNorms = variant == .largeMargin
    cosineGradient.resize(rows: n, columns: c)
    var rowNormGradient = [Scalar](repeating: 0, count: n), classNormGradient = [Scalar](repeating: 0, count: c)
    let inverseN = n > 0 ? 1 / Scalar(n) : 0
    let scale = self.scale
    var targets = [(value: Scalar, slope: Scalar)](repeating: (0, 0), count: n)
    for i in 0..<n { targets[i] = targetLogit(cosines[i, labels[i]]) }
    let classFactor = usesClassNorms ? classNorms : [Scalar](repeating: 1, count: c)
    // Row by row, split over the threads: the logits (the angular part scaled by the norms), the
    // cross-entropy's gradient, then ∂/∂cosine and ∂/∂norms. The class norms' terms are kept per
    // row and summed by columns afterwards, in row order, so the result does not depend on the
    // number of threads.
    let chunks = compute.chunkCount(rows: n, workPerRow: 8 * Swift.max(c, 1), minimumWork: 1 << 15)
    var rowLosses = [Scalar](repeating: 0, count: n)
    if usesClassNorms { classTerms.resize(rows: n, columns: c) }
    cosines.withUnsafeBufferPointer { cosine in
      cosineGradient.withUnsafeMutableBufferPointer { out in
        rowNormGradient.withUnsafeMutableBufferPointer { rowNormGradient in
          rowLosses.withUnsafeMutableBufferPointer { rowLosses in
            classTerms.withUnsafeMutableBufferPointer { classTerms in
              let (cosine, out, rowNormGradient, rowLosses, classTerms) = (
                cosine.baseAddress!, out.baseAddress!, rowNormGradient.baseAddress!, rowLosses.baseAddress!, classTerms.baseAddress
              )
              BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, rows in
                withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * Swift.max(c, 1)) { buffer in
                  let logits = buffer.baseAddress!, g = logits + c
                  classFactor.withUnsafeBufferPointer { factor in
                    let factor = factor.baseAddress!
                    for i in rows {
                      // The angular part a is the row's cosines with the label's replaced by the
                      // target logit: each pass reads the cosines and corrects the label's entry.
                      let y = labels[i], row = cosine + i * c, gradient = out + i * c
                      let rowScale = scale * rowNorms[i], target = targets[i].value
                      for j in 0..<c { logits[j] = rowScale * factor[j] * row[j] }
                      logits[y] = rowScale * factor[y] * target
                      rowLosses[i] = crossEntropy(logits: logits, count: c, label: y, scale: inverseN, gradient: g)
                      // ∂/∂logit = g; logit = s ‖x‖ (‖w‖) a: through a (to the cosine) and through the norms.
                      for j in 0..<c { gradient[j] = g[j] * rowScale * factor[j] }
                      // Σ_j g_j (‖w_j‖) a_j, as a dot product in lanes (the label's term corrected).
                      for j in 0..<c { logits[j] = g[j] * factor[j] }
                      let normSum = Scalar.dot(logits, row, count: c) + logits[y] * (target - row[y])
                      gradient[y] *= targets[i].slope
                      rowNormGradient[i] = scale * normSum
                      if usesClassNorms {
                        let terms = classTerms! + i * c
                        for j in 0..<c { terms[j] = g[j] * rowScale * row[j] }
                        terms[y] = g[y] * rowScale * target
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    if usesClassNorms { classNormGradient.withUnsafeMutableBufferPointer { classTerms.columnSums(into: $0) } }
    var acc = TermAccumulator<Scalar>()
    for value in rowLosses { acc.add(value) }
    // Cosines of directions: ∂x̂ = G Ŵ, ∂ŵ = Gᵀ X̂; then through x = ‖x‖ x̂.
    gemm(cosineGradient, classDirections, into: &rows, compute: compute)
    gemm(cosineGradient, transposeA: true, rowDirections, into: &classes, compute: compute)
    Matrix.unitRowsBackward(rows, unit: rowDirections, norms: rowNorms, normGradient: rowNormGradient, into: &embeddingGradient)
    Matrix.unitRowsBackward(
      classes, unit: classDirections, norms: classNorms, normGradient: classNormGradient, into: &weights.parameter.gradient)
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
