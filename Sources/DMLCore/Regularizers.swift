import Foundation

/// A term added to a loss that depends on the embeddings themselves, or on a loss's class weights
/// or proxies, not on their comparisons: PML's regularizers, with their defaults and reductions.
///
/// Each one takes a matrix (one embedding or one class weight per row) and returns its value while
/// writing its gradient with respect to every entry. A loss carries them through
/// `RegularizedLoss`, or on the command line with `embedding_regularizer=` and
/// `weight_regularizer=` (with `embedding_reg_weight=` and `weight_reg_weight=`, 1 by default).
public enum Regularizer: Sendable, Equatable, CustomStringConvertible {
  /// PML's `LpRegularizer(p, power)`: the mean over rows of `‖x_i‖_p^power`.
  case lp(p: Double = 2, power: Double = 1)
  /// PML's `ZeroMeanRegularizer`: the mean over rows of `|Σ_j x_ij|`.
  case zeroMean
  /// PML's `CenterInvariantRegularizer` (Wu et al. 2017): the mean over rows of
  /// `(‖w_i‖² − mean‖w‖²)² / 4`, so that every class weight has the same norm.
  case centerInvariant
  /// PML's `RegularFaceRegularizer` (Zhao et al. 2019): the mean over rows of the cosine between
  /// each class weight and its most similar other one.
  case regularFace
  /// PML's `SparseCentersRegularizer` (SoftTriple, Qian et al. 2019): for the centers of each class
  /// (`centersPerClass` consecutive rows), `Σ sqrt(2 − 2 cos(c_i, c_j))` over pairs of one class,
  /// divided by twice the number of such pairs.
  case sparseCenters(centersPerClass: Int)
  /// The spherical embedding constraint (SEC, Zhang et al. 2020, PML 3's
  /// `SphericalEmbeddingRegularizer`): the variance of the rows' norms, `mean_i (‖x_i‖ − μ)²` with
  /// `μ` their mean, so that embeddings lie near one sphere without being normalised.
  case sphericalEmbedding

  /// The names on the command line, in `dml list`'s order.
  public static let names = ["lp", "zero-mean", "center-invariant", "regular-face", "sparse-centers", "spherical-embedding"]

  /// One line for listings about the regularizer a command-line name gives.
  public static func summary(of name: String) -> String {
    switch name {
    case "lp": "mean over rows of the L2 norm (PML's LpRegularizer, p 2, power 1)"
    case "zero-mean": "mean over rows of |sum of the row| (PML's ZeroMeanRegularizer)"
    case "center-invariant": "class weights of equal norms: mean of (|w|² − mean |w|²)² / 4 (PML's CenterInvariantRegularizer)"
    case "regular-face": "mean cosine of each class weight to its nearest other (PML's RegularFaceRegularizer)"
    case "sparse-centers": "pulls apart the centers of one class (PML's SparseCentersRegularizer; losses with several centers per class)"
    case "spherical-embedding": "variance of the embeddings' norms (Zhang et al. 2020; PML 3's SphericalEmbeddingRegularizer)"
    default: ""
    }
  }

  /// The name on the command line.
  public var description: String {
    switch self {
    case .lp: "lp"
    case .zeroMean: "zero-mean"
    case .centerInvariant: "center-invariant"
    case .regularFace: "regular-face"
    case .sparseCenters: "sparse-centers"
    case .sphericalEmbedding: "spherical-embedding"
    }
  }

  /// The value of the regularizer on the rows of `x`; `gradient` receives `∂value/∂x`.
  public func evaluate<T: DMLScalar>(_ x: Matrix<T>, gradient: inout Matrix<T>) -> T {
    let (n, d) = (x.rows, x.columns)
    gradient.resize(rows: n, columns: d, zeroed: true)
    guard n > 0 else { return 0 }
    switch self {
    case .lp(let p, let power):
      var total: T = 0
      let (pp, pw) = (T(p), T(power))
      for i in 0..<n {
        var sum: T = 0
        for j in 0..<d { sum += p == 2 ? x[i, j] * x[i, j] : T.pow(abs(x[i, j]), pp) }
        let norm = p == 2 ? sum.squareRoot() : T.pow(sum, 1 / pp)
        total += power == 1 ? norm : T.pow(norm, pw)
        // ∂‖x‖^power/∂x_j = power · ‖x‖^(power − p) · sign(x_j) |x_j|^(p − 1); 0 at a zero row.
        guard norm > 0 else { continue }
        let scale = pw * T.pow(norm, pw - pp) / T(n)
        for j in 0..<d where x[i, j] != 0 {
          let a = abs(x[i, j])
          gradient[i, j] = scale * (x[i, j] > 0 ? 1 : -1) * (p == 2 ? a : (p == 1 ? 1 : T.pow(a, pp - 1)))
        }
      }
      return total / T(n)
    case .zeroMean:
      var total: T = 0
      for i in 0..<n {
        var s: T = 0
        for j in 0..<d { s += x[i, j] }
        total += abs(s)
        let g: T = s > 0 ? 1 / T(n) : (s < 0 ? -1 / T(n) : 0)
        for j in 0..<d { gradient[i, j] = g }
      }
      return total / T(n)
    case .centerInvariant:
      var squares = [T](repeating: 0, count: n)
      for i in 0..<n { for j in 0..<d { squares[i] += x[i, j] * x[i, j] } }
      let mean = squares.reduce(0, +) / T(n)
      var total: T = 0
      for i in 0..<n {
        let deviation = squares[i] - mean
        total += deviation * deviation / 4
        // ∂/∂w_i = deviation_i · w_i / n (the deviations sum to zero).
        for j in 0..<d { gradient[i, j] = deviation * x[i, j] / T(n) }
      }
      return total / T(n)
    case .regularFace:
      guard n > 1 else { return 0 }
      var u = Matrix<T>()
      let norms = x.unitRows(into: &u)
      var unitGradient = Matrix<T>(rows: n, columns: d)
      var total: T = 0
      for i in 0..<n {
        var best = -T.infinity, partner = -1
        for k in 0..<n where k != i {
          var c: T = 0
          for j in 0..<d { c += u[i, j] * u[k, j] }
          if c > best { (best, partner) = (c, k) }
        }
        // Non-finite weights compare false everywhere: the value is NaN, which the trainer reports.
        guard partner >= 0 else { return .nan }
        total += best
        for j in 0..<d {
          unitGradient[i, j] += u[partner, j] / T(n)
          unitGradient[partner, j] += u[i, j] / T(n)
        }
      }
      Matrix.unitRowsBackward(unitGradient, unit: u, norms: norms, into: &gradient)
      return total / T(n)
    case .sparseCenters(let k):
      guard k > 1, n % k == 0 else { return 0 }
      var u = Matrix<T>()
      let norms = x.unitRows(into: &u)
      var unitGradient = Matrix<T>(rows: n, columns: d)
      let divisor = T(n * (k - 1))  // 2 × the (n / k) · k(k − 1)/2 pairs of one class
      var total: T = 0
      for start in stride(from: 0, to: n, by: k) {
        for i in start..<(start + k) {
          for m in (i + 1)..<(start + k) {
            var c: T = 0
            for j in 0..<d { c += u[i, j] * u[m, j] }
            let clamped = Swift.min(2 * c, 2)
            let r = (2 + T.leastNormalMagnitude - clamped).squareRoot()
            total += r
            // ∂r/∂c = −1/r while 2c < 2 (clamped above, no gradient).
            guard 2 * c < 2 else { continue }
            let g = -1 / r / divisor
            for j in 0..<d {
              unitGradient[i, j] += g * u[m, j]
              unitGradient[m, j] += g * u[i, j]
            }
          }
        }
      }
      Matrix.unitRowsBackward(unitGradient, unit: u, norms: norms, into: &gradient)
      return total / divisor
    case .sphericalEmbedding:
      // ∂/∂‖x_i‖ = 2(‖x_i‖ − μ)/n (μ's own share sums to 0), along x̂_i.
      var norms = [T](repeating: 0, count: n)
      for i in 0..<n {
        var s: T = 0
        for j in 0..<d { s += x[i, j] * x[i, j] }
        norms[i] = s.squareRoot()
      }
      let mean = norms.reduce(0, +) / T(n)
      var total: T = 0
      for i in 0..<n {
        let deviation = norms[i] - mean
        total += deviation * deviation
        guard norms[i] > 0 else { continue }
        let g = 2 * deviation / T(n) / norms[i]
        for j in 0..<d { gradient[i, j] = g * x[i, j] }
      }
      return total / T(n)
    }
  }

  /// The regularizer a specification names (`lp`, `zero-mean`, …). `centersPerClass` is needed by
  /// `sparse-centers` only.
  public static func named(_ name: String, centersPerClass: Int? = nil) throws -> Regularizer {
    switch name {
    case "lp": return .lp()
    case "zero-mean": return .zeroMean
    case "center-invariant": return .centerInvariant
    case "regular-face": return .regularFace
    case "spherical-embedding": return .sphericalEmbedding
    case "sparse-centers":
      guard let k = centersPerClass, k > 1 else {
        throw SpecificationError("sparse-centers needs several centers per class (a loss with class centers, such as SoftTriple)")
      }
      return .sparseCenters(centersPerClass: k)
    default:
      throw SpecificationError("unknown regularizer '\(name)'; known: " + names.joined(separator: ", "))
    }
  }
}

/// A loss with PML's regularizer mixins: `base`, plus `embeddingWeight · embedding(embeddings)`,
/// plus `weightWeight · weights(W)` where `W` is the base loss's class weights or proxies (its
/// parameter named `weightParameter`). The regularizers' gradients join the embeddings' and the
/// weights' own.
public struct RegularizedLoss<Base: EmbeddingLoss>: EmbeddingLoss {
  /// The element type, the base loss's.
  public typealias Scalar = Base.Scalar
  /// The loss being regularized.
  public var base: Base
  /// The regularizer of the embeddings and its weight, if any.
  public var embeddingRegularizer: (regularizer: Regularizer, weight: Scalar)?
  /// The regularizer of the class weights or proxies, its weight, and the parameter's name.
  public var weightRegularizer: (regularizer: Regularizer, weight: Scalar, parameter: String)?
  /// `∂loss/∂embeddings` of the last evaluation, the regularizer's included.
  public var embeddingGradient = Matrix<Scalar>()
  var scratch = Matrix<Scalar>()

  /// `base` with the given regularizers.
  public init(
    _ base: Base, embedding: (regularizer: Regularizer, weight: Scalar)? = nil,
    weights: (regularizer: Regularizer, weight: Scalar, parameter: String)? = nil
  ) {
    self.base = base
    embeddingRegularizer = embedding
    weightRegularizer = weights
  }

  /// Evaluates the base loss, then adds the regularizers.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    let value = base.evaluate(embeddings, labels: labels, memory: memory, tuples: tuples)
    return regularize(value, embeddings)
  }

  /// Evaluates the base loss on shared scores, then adds the regularizers.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?, sharedScores: inout Matrix<Scalar>,
    workspace: inout DistanceWorkspace<Scalar>
  ) -> LossValue<Scalar> {
    let value = base.evaluate(embeddings, labels: labels, tuples: tuples, sharedScores: &sharedScores, workspace: &workspace)
    return regularize(value, embeddings)
  }

  mutating func regularize(_ value: LossValue<Scalar>, _ embeddings: Matrix<Scalar>) -> LossValue<Scalar> {
    var value = value
    embeddingGradient.assign(base.embeddingGradient)
    if let (r, w) = embeddingRegularizer {
      value.total += w * r.evaluate(embeddings, gradient: &scratch)
      embeddingGradient.add(scratch, scaledBy: w)
    }
    if let (r, w, name) = weightRegularizer {
      var added: Scalar = 0
      var scratch = self.scratch
      base.forEachParameter { full, p in
        guard full == name else { return }
        added = w * r.evaluate(p.value, gradient: &scratch)
        p.gradient.add(scratch, scaledBy: w)
      }
      self.scratch = scratch
      value.total += added
    }
    return value
  }

  /// The base loss's.
  public var acceptsMemory: Bool { base.acceptsMemory }
  /// The base loss's.
  public var sharedScoreDistance: Distance? { base.sharedScoreDistance }
  /// The base loss's.
  public var failure: String? { base.failure }
  /// The base loss's.
  public var compute: ComputeContext {
    get { base.compute }
    set { base.compute = newValue }
  }
  /// The base loss's reference updates.
  public mutating func updateReferences() { base.updateReferences() }
  /// The base loss's parameters, under their own names.
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    base.visitParameters(&visitor)
  }

  /// Visits the base loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { base.visitRandomSources(visit) }
}
