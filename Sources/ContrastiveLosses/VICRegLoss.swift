/// VICReg (Bardes, Ponce and LeCun 2022), as PML's `VICRegLoss`: a self-supervised loss on two
/// views `Z` and `Z′` of the same `N` samples (`D` features), with no negatives. It keeps the views
/// alike (invariance), each feature's spread up (variance) and the features decorrelated
/// (covariance):
///
/// ```
/// s(Z, Z′) = mean_i ‖z_i − z′_i‖² / D
/// v(Z) = mean_d relu(1 − √(Var(z_·d) + ε)) / 2              (unbiased variance over the N rows)
/// c(Z) = Σ_{j≠k} C(Z)_jk² / D,  C(Z) = Ẑᵀ Ẑ / (N − 1)        (Ẑ: Z with its column means removed)
/// loss = λ s(Z, Z′) + μ (v(Z) + v(Z′)) + ν (c(Z) + c(Z′))
/// ```
///
/// - The views are the batch's rows paired by label: each label must appear exactly twice, the
///   first row in `Z`, the second in `Z′` (what `--batch views` gives, PML's `SelfSupervisedLoss`
///   layout). Anything else stops training with an error naming the label.
/// - Defaults as PML: λ = 25, μ = 25, ν = 1, ε = 1e-4. No distance, no miner, no cross-batch
///   memory (as PML, which refuses them).
/// - Terms: `invariance_loss` (one per pair, λ s) and `variance_covariance_loss` (μ (v + v′) +
///   ν (c + c′), one value): PML's four sub-losses, the last three added.
public struct VICRegLoss<Scalar: DMLScalar>: EmbeddingLoss, ParameterFree {
  /// λ, the weight of the invariance term.
  public var invarianceWeight: Scalar
  /// μ, the weight of the variance terms.
  public var varianceWeight: Scalar
  /// ν, the weight of the covariance terms.
  public var covarianceWeight: Scalar
  /// ε, added to each variance under the square root.
  public var epsilon: Scalar
  /// `∂loss/∂embeddings` of the last evaluation.
  public private(set) var embeddingGradient = Matrix<Scalar>()
  /// Why the last batch could not be evaluated (its labels do not pair the rows), or `nil`.
  public private(set) var failure: String?
  @usableFromInline var views = [Matrix<Scalar>(), Matrix<Scalar>()]
  @usableFromInline var covariance = Matrix<Scalar>()
  @usableFromInline var viewGradient = Matrix<Scalar>()

  /// A VICReg loss with λ = 25, μ = 25, ν = 1 and ε = 1e-4 by default, as PML.
  public init(invarianceWeight: Scalar = 25, varianceWeight: Scalar = 25, covarianceWeight: Scalar = 1, epsilon: Scalar = 1e-4) {
    self.invarianceWeight = invarianceWeight
    self.varianceWeight = varianceWeight
    self.covarianceWeight = covarianceWeight
    self.epsilon = epsilon
  }

  /// The declared hyperparameters, with PML's defaults.
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("invariance_lambda", .real, default: "25", "λ, weight of the invariance term", range: .atLeast(0)),
      HyperparameterSpec("variance_mu", .real, default: "25", "μ, weight of the variance terms", range: .atLeast(0)),
      HyperparameterSpec("covariance_v", .real, default: "1", "ν, weight of the covariance terms", range: .atLeast(0)),
      HyperparameterSpec("eps", .real, default: "0.0001", "ε, added to each variance under the square root", range: .positive),
    ]
  }

  /// The loss from validated values.
  public init(_ v: HyperparameterValues) throws {
    self.init(
      invarianceWeight: Scalar(try v.real("invariance_lambda")), varianceWeight: Scalar(try v.real("variance_mu")),
      covarianceWeight: Scalar(try v.real("covariance_v")), epsilon: Scalar(try v.real("eps")))
  }

  /// The registry entry, `vicreg`, in `Float`.
  public static var registration: LossFactory {
    LossFactory(
      name: "vicreg", summary: "VICReg (Bardes et al. 2022): invariance, variance and covariance of two views (--batch views)",
      hyperparameters: hyperparameters, usesTuples: false, acceptsMemory: false
    ) { v, _ in AnyEmbeddingLoss(try VICRegLoss<Float>(v)) }
  }

  /// No cross-batch memory.
  public var acceptsMemory: Bool { false }
  /// Nothing to update outside the optimizer.
  public mutating func updateReferences() {}

  /// The loss of the two views the labels pair, and its gradient into `embeddingGradient`; a
  /// batch whose labels do not pair the rows gives a zero loss and sets `failure`.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    precondition(memory == nil, "VICRegLoss takes no cross-batch memory")
    let (rows, d) = (embeddings.rows, embeddings.columns)
    precondition(labels.count == rows, "VICRegLoss: \(rows) rows but \(labels.count) labels")
    embeddingGradient.resize(rows: rows, columns: d, zeroed: true)
    failure = nil
    // Pairs in the order of their first rows.
    let (pairs, problem) = viewPairs(labels, loss: "VICRegLoss")
    if let problem {
      failure = problem
      return .zero
    }
    let n = pairs.count
    guard n >= 2, d > 0 else {
      failure = "VICRegLoss needs at least two pairs of views and one feature (got \(n) pairs of \(d) features)"
      return .zero
    }
    for side in 0..<2 {
      views[side] = embeddings.rows(pairs.map { side == 0 ? $0.0 : $0.1 })
    }
    // Invariance: λ/(N D) Σ ‖z − z′‖²; its gradient 2λ/(N D) (z − z′), and the opposite for z′.
    var invariance: Scalar = 0
    var invarianceAccumulator = TermAccumulator<Scalar>()
    let invarianceScale = 2 * invarianceWeight / (Scalar(n) * Scalar(d))
    views[0].withUnsafeBufferPointer { a in
      views[1].withUnsafeBufferPointer { b in
        embeddingGradient.withUnsafeMutableBufferPointer { g in
          for i in 0..<n {
            let (za, zb) = (a.baseAddress! + i * d, b.baseAddress! + i * d)
            let (ga, gb) = (g.baseAddress! + pairs[i].0 * d, g.baseAddress! + pairs[i].1 * d)
            var s: Scalar = 0
            for k in 0..<d {
              let diff = za[k] - zb[k]
              s += diff * diff
              ga[k] += invarianceScale * diff
              gb[k] -= invarianceScale * diff
            }
            let term = invarianceWeight * s / Scalar(d)
            invarianceAccumulator.add(term)
            invariance += term
          }
        }
      }
    }
    var regularizer: Scalar = 0
    for side in 0..<2 {
      regularizer += viewTerms(side: side, rows: pairs.map { side == 0 ? $0.0 : $0.1 })
    }
    return LossValue(
      LossTerm(name: "invariance_loss", value: Reduction.mean.value(invarianceAccumulator), count: n, nonZero: invarianceAccumulator.nonZero),
      LossTerm(name: "variance_covariance_loss", value: regularizer, count: 1, nonZero: regularizer > 0 ? 1 : 0))
  }

  /// One view's variance and covariance terms, `μ v(Z) + ν c(Z)`, their gradient added to the
  /// rows `rows` of `embeddingGradient`. The view is centred in place.
  @usableFromInline
  mutating func viewTerms(side: Int, rows: [Int]) -> Scalar {
    let (n, d) = (views[side].rows, views[side].columns)
    // Centre the columns, and each column's standard deviation σ_d.
    var means = [Scalar](repeating: 0, count: d), squares = [Scalar](repeating: 0, count: d)
    views[side].withUnsafeMutableBufferPointer { z in
      for i in 0..<n {
        let row = z.baseAddress! + i * d
        for k in 0..<d { means[k] += row[k] }
      }
      for k in 0..<d { means[k] /= Scalar(n) }
      for i in 0..<n {
        let row = z.baseAddress! + i * d
        for k in 0..<d {
          row[k] -= means[k]
          squares[k] += row[k] * row[k]
        }
      }
    }
    let centred = views[side]
    // Variance: μ/(2D) Σ_d relu(1 − σ_d); ∂/∂z_id = −μ ẑ_id / (2 D σ_d (N − 1)) where 1 > σ_d.
    var variance: Scalar = 0
    var slopes = [Scalar](repeating: 0, count: d)
    for k in 0..<d {
      let sigma = (squares[k] / Scalar(n - 1) + epsilon).squareRoot()
      guard sigma < 1 else { continue }
      variance += (1 - sigma) / 2
      slopes[k] = -varianceWeight / (2 * Scalar(d) * sigma * Scalar(n - 1))
    }
    variance = varianceWeight * variance / Scalar(d)
    // Covariance: ν/D Σ_{j≠k} C_jk²; ∂/∂Z = 4ν/(D (N − 1)) Ẑ offdiag(C) (Ẑ's columns have mean 0,
    // so the centring passes this gradient unchanged).
    gemm(centred, transposeA: true, centred, alpha: 1 / Scalar(n - 1), into: &covariance)
    var offDiagonal: Scalar = 0
    covariance.withUnsafeMutableBufferPointer { c in
      for j in 0..<d {
        for k in 0..<d where j != k { offDiagonal += c[j * d + k] * c[j * d + k] }
        c[j * d + j] = 0
      }
    }
    gemm(centred, covariance, alpha: 4 * covarianceWeight / (Scalar(d) * Scalar(n - 1)), into: &viewGradient)
    centred.withUnsafeBufferPointer { z in
      viewGradient.withUnsafeBufferPointer { v in
        embeddingGradient.withUnsafeMutableBufferPointer { g in
          for i in 0..<n {
            let (zi, vi, gi) = (z.baseAddress! + i * d, v.baseAddress! + i * d, g.baseAddress! + rows[i] * d)
            for k in 0..<d { gi[k] += slopes[k] * zi[k] + vi[k] }
          }
        }
      }
    }
    return variance + covarianceWeight * offDiagonal / Scalar(d)
  }

}
