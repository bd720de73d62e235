/// Manifold loss (Aziere and Todorovic, "Ensemble Deep Manifold Similarity Learning using Hard
/// Proxies", CVPR 2019), as PML's `ManifoldLoss`: similarities along the data manifold, by a random
/// walk over the batch and `K` learned proxies, each row pulled towards its meta-class's proxy.
///
/// ```
/// E = [x; proxies],  S_ij = exp(2 max(cos(e_i, e_j), 0)) for i ≠ j (0 on the diagonal)
/// S̄ = D^−½ S D^−½ (D the row sums),   F = (1 − α) (I − α S̄)⁻¹
/// intrinsic_i = log(1 + Σ_{k ≠ m_i, v ≥ 0} exp(v_ik)),  v_ik = F[i, k] − F[i, m_i] + margin
/// context_i   = the same with cos(F[i, :], F[k, :]) for F[i, k]     (rows against proxies' rows)
/// loss = mean intrinsic + λ_C · mean context
/// ```
/// where `m_i` is row `i`'s meta-class, a proxy.
///
/// - Defaults as PML: `K` 50 proxies, `lambdaC` 1, `alpha` 0.8, `margin` 5e-4.
/// - Meta-classes: PML's, `meta_classes=random` (each proxy once, the other rows drawn uniformly,
///   in a random order: the batch needs at least `K` rows), from a seeded generator that
///   checkpoints keep; or `meta_classes=labels`, each row's label (which needs `K` ≥ the classes).
/// - Learned state: `proxies`, `K × dimension`, in optimizer group 1 (`proxy_lr`).
/// - Not a function of a score matrix (the walk inverts a matrix of the batch and the proxies): an
///   `EmbeddingLoss`. The inverse is LAPACK's in the scalar type (PML's is in float32 even for
///   float64 input).
/// - Terms: `intrinsic` and `context`, one per row each.
public struct ManifoldLoss<Scalar: DMLScalar>: EmbeddingLoss {
  /// How rows get their meta-class (their proxy).
  public enum MetaClasses: String, Sendable, CaseIterable {
    /// PML's: every proxy once, the rest uniformly, shuffled, drawn anew for each batch.
    case random
    /// Each row's label.
    case labels
  }

  /// The proxies, one per meta-class.
  public var proxies: Proxies<Scalar>
  /// The weight λ_C of the context term.
  public var contextWeight: Scalar
  /// The random walk's α in (0, 1).
  public var alpha: Scalar
  /// The margin.
  public var margin: Scalar
  /// How rows get their meta-class.
  public let metaClasses: MetaClasses
  /// The generator of random meta-classes.
  public var random: RandomSource
  /// `∂loss/∂embeddings` of the last evaluation.
  public private(set) var embeddingGradient = Matrix<Scalar>()
  /// Why the last batch could not be evaluated, if it could not.
  public private(set) var failure: String?
  /// The threads the products use.
  public var compute: ComputeContext = .automatic

  /// A manifold loss over `proxies` with PML's defaults.
  public init(
    proxies: Proxies<Scalar>, contextWeight: Scalar = 1, alpha: Scalar = 0.8, margin: Scalar = 5e-4, metaClasses: MetaClasses = .random,
    seed: UInt64 = 0
  ) {
    precondition(alpha > 0 && alpha < 1 && contextWeight >= 0, "ManifoldLoss: alpha in (0, 1), lambdaC ≥ 0")
    self.proxies = proxies
    self.contextWeight = contextWeight
    self.alpha = alpha
    self.margin = margin
    self.metaClasses = metaClasses
    random = RandomSource(seed: seed)
  }

  /// The declared hyperparameters, with PML's defaults.
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("K", .integer, default: "50", "the number of proxies (meta-classes)", range: .closed(1, 100_000)),
      HyperparameterSpec("lambdaC", .real, default: "1", "weight of the context term", range: .nonNegative),
      HyperparameterSpec("alpha", .real, default: "0.8", "the random walk's share passed to neighbours", range: .halfOpen(1e-9, 1)),
      HyperparameterSpec("margin", .real, default: "0.0005", "margin"),
      HyperparameterSpec("meta_classes", .choice(MetaClasses.allCases.map(\.rawValue)), default: "random", "random (PML's) or each row's label"),
      HyperparameterSpec("group", .integer, default: "1", "optimizer parameter group of the proxies", range: .atLeast(0)),
    ]
  }

  /// The loss from validated values.
  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let k = try v.integer("K"), meta = MetaClasses(rawValue: try v.string("meta_classes"))!
    if meta == .labels && context.classes > k {
      throw SpecificationError("\(v.component): meta_classes=labels needs K ≥ the \(context.classes) classes, not K=\(k)")
    }
    self.init(
      proxies: Proxies(classes: k, dimension: context.embeddingDimension, seed: context.seed &+ 0x4D41_4E49, group: try v.integer("group")),
      contextWeight: Scalar(try v.real("lambdaC")), alpha: Scalar(try v.real("alpha")), margin: Scalar(try v.real("margin")),
      metaClasses: meta, seed: context.seed &+ 0x4D45_5441)
  }

  /// The registry entry, `manifold`, in `Float`.
  public static var registration: LossFactory {
    LossFactory(
      name: "manifold", summary: "Manifold loss (Aziere and Todorovic 2019): random-walk similarities to learned proxies",
      hyperparameters: hyperparameters, usesTuples: false, acceptsMemory: false
    ) { v, context in AnyEmbeddingLoss(try ManifoldLoss<Float>(v, context: context)) }
  }

  /// No cross-batch memory.
  public var acceptsMemory: Bool { false }
  /// Nothing to update outside the optimizer.
  public mutating func updateReferences() {}

  /// Visits the proxies (`proxies`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&proxies.parameter)
  }

  /// Visits the generator of random meta-classes.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { visit(&random) }

  /// PML's random meta-classes for `n ≥ K` rows: each proxy once, the rest uniform, shuffled.
  public mutating func randomMetaClasses(rows n: Int) -> [Int] {
    let k = proxies.classes
    var meta = Array(0..<k) + (0..<Swift.max(n - k, 0)).map { _ in random.index(below: k) }
    for i in stride(from: meta.count - 1, to: 0, by: -1) { meta.swapAt(i, random.index(below: i + 1)) }
    return meta
  }

  /// The loss of the batch, meta-classes by `metaClasses`.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    precondition(memory == nil, "ManifoldLoss takes no cross-batch memory")
    failure = nil
    let n = embeddings.rows, k = proxies.classes
    switch metaClasses {
    case .random:
      guard n >= k else {
        failure = "ManifoldLoss draws every one of its K=\(k) meta-classes in each batch: a batch of \(n) rows is too small (use K ≤ the batch size)"
        embeddingGradient.resize(rows: n, columns: embeddings.columns, zeroed: true)
        return .zero
      }
      return evaluate(embeddings, metaClasses: randomMetaClasses(rows: n))
    case .labels:
      if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
        failure = "ManifoldLoss with meta_classes=labels: label \(labels[bad]) of row \(bad) is not below K=\(k)"
        embeddingGradient.resize(rows: n, columns: embeddings.columns, zeroed: true)
        return .zero
      }
      return evaluate(embeddings, metaClasses: labels)
    }
  }

  /// The loss of the batch with the given meta-class (a proxy index) of each row, and its
  /// gradients into `embeddingGradient` and the proxies' gradient.
  public mutating func evaluate(_ x: Matrix<Scalar>, metaClasses meta: [Int]) -> LossValue<Scalar> {
    let p = proxies.parameter.value
    let (n, k, l) = (x.rows, p.rows, x.columns)
    precondition(meta.count == n && meta.allSatisfy { $0 >= 0 && $0 < k }, "ManifoldLoss: one meta-class in 0..<\(k) per row")
    precondition(p.columns == l, "ManifoldLoss: \(l)-dimensional embeddings, \(p.columns)-dimensional proxies")
    let m = n + k
    // E = [x; proxies], normalised; C = cosines; S = exp(2 max(C, 0)) off the diagonal.
    var e = Matrix<Scalar>(rows: m, columns: l)
    for i in 0..<n { for j in 0..<l { e[i, j] = x[i, j] } }
    for i in 0..<k { for j in 0..<l { e[n + i, j] = p[i, j] } }
    var unit = Matrix<Scalar>()
    let norms = e.unitRows(into: &unit)
    var c = Matrix<Scalar>()
    gemm(unit, unit, transposeB: true, into: &c, compute: compute)
    var s = Matrix<Scalar>(rows: m, columns: m)
    var rowSums = [Scalar](repeating: 0, count: m)
    for i in 0..<m {
      for j in 0..<m where j != i {
        s[i, j] = Scalar.exp(2 * Swift.max(c[i, j], 0))
        rowSums[i] += s[i, j]
      }
    }
    let r = rowSums.map { 1 / $0.squareRoot() }
    // A = I − α D^−½ S D^−½; F = (1 − α) A⁻¹.
    var a = Matrix<Scalar>(rows: m, columns: m)
    for i in 0..<m {
      for j in 0..<m { a[i, j] = (i == j ? 1 : 0) - alpha * r[i] * s[i, j] * r[j] }
    }
    guard let inverse = a.inverse() else {
      failure = "ManifoldLoss: the random walk's matrix I − αS̄ is singular"
      embeddingGradient.resize(rows: n, columns: l, zeroed: true)
      return .zero
    }
    var f = inverse
    f.scale(by: 1 - alpha)
    var gradientF = Matrix<Scalar>(rows: m, columns: m)
    /// `log(1 + Σ_{k ≠ own, v ≥ 0} exp(v_k))` of `v_k = value(k) − value(own) + margin`, with its
    /// weights `∂/∂v_k`, added (times `scale`) to `add(k, w)` and, negated, to `add(own, ·)`.
    func term(own: Int, _ value: (Int) -> Scalar, scale: Scalar, add: (Int, Scalar) -> Void) -> Scalar {
      let base = value(own)
      var v = [Scalar](repeating: 0, count: k), active = [Bool](repeating: false, count: k)
      var largest: Scalar = 0  // the "1" of log(1 + Σ), as exp(0)
      for q in 0..<k where q != own {
        v[q] = value(q) - base + margin
        active[q] = v[q] >= 0
        if active[q] { largest = Swift.max(largest, v[q]) }
      }
      var sum = Scalar.exp(-largest)
      for q in 0..<k where active[q] { sum += Scalar.exp(v[q] - largest) }
      var total: Scalar = 0
      for q in 0..<k where active[q] {
        let w = Scalar.exp(v[q] - largest) / sum * scale
        add(q, w)
        total += w
      }
      add(own, -total)
      return largest + Scalar.log(sum)
    }
    // Intrinsic: rows of F against the proxies' columns.
    var intrinsic = TermAccumulator<Scalar>()
    let inverseN = 1 / Scalar(n)
    for i in 0..<n {
      intrinsic.add(term(own: meta[i], { f[i, n + $0] }, scale: inverseN) { q, w in gradientF[i, n + q] += w })
    }
    // Context: cosines of F's rows (the batch's against the proxies').
    var context = TermAccumulator<Scalar>()
    if contextWeight > 0 {
      var fUnit = Matrix<Scalar>()
      let fNorms = f.unitRows(into: &fUnit)
      var cosine = Matrix<Scalar>()
      gemm(fUnit, fUnit, transposeB: true, into: &cosine, compute: compute)  // only [0..<n, n..<m] is read
      var gradientCosine = Matrix<Scalar>(rows: n, columns: k)
      for i in 0..<n {
        context.add(term(own: meta[i], { cosine[i, n + $0] }, scale: contextWeight * inverseN) { q, w in gradientCosine[i, q] += w })
      }
      // cos_iq = û_i · û_{n+q}: ∂û_i += Σ_q G_iq û_{n+q}, ∂û_{n+q} += Σ_i G_iq û_i; then through the norms.
      var unitGradient = Matrix<Scalar>(rows: m, columns: m)
      for i in 0..<n {
        for q in 0..<k where gradientCosine[i, q] != 0 {
          let g = gradientCosine[i, q]
          for j in 0..<m {
            unitGradient[i, j] += g * fUnit[n + q, j]
            unitGradient[n + q, j] += g * fUnit[i, j]
          }
        }
      }
      var fromCosine = Matrix<Scalar>()
      Matrix.unitRowsBackward(unitGradient, unit: fUnit, norms: fNorms, into: &fromCosine)
      gradientF.add(fromCosine)
    }
    // F = (1 − α) L, L = A⁻¹: ∂A = −Lᵀ ∂L Lᵀ; A = I − α S̄: ∂S̄ = α Lᵀ ∂L Lᵀ.
    gradientF.scale(by: 1 - alpha)
    var temporary = Matrix<Scalar>(), gradientBar = Matrix<Scalar>()
    gemm(inverse, transposeA: true, gradientF, into: &temporary, compute: compute)
    gemm(temporary, inverse, transposeB: true, alpha: alpha, into: &gradientBar, compute: compute)
    // S̄_ij = r_i S_ij r_j, r = d^−½, d = row sums of S.
    var gradientR = [Scalar](repeating: 0, count: m)
    var gradientS = Matrix<Scalar>(rows: m, columns: m)
    for i in 0..<m {
      for j in 0..<m where j != i {
        let g = gradientBar[i, j]
        gradientS[i, j] = g * r[i] * r[j]
        gradientR[i] += g * s[i, j] * r[j]
        gradientR[j] += g * r[i] * s[i, j]
      }
    }
    for i in 0..<m {
      let gradientD = gradientR[i] * (-0.5) * r[i] * r[i] * r[i]
      for j in 0..<m where j != i { gradientS[i, j] += gradientD }
    }
    // S = exp(2 max(C, 0)); C = Ê Êᵀ: ∂Ê = (∂C + ∂Cᵀ) Ê.
    var gradientC = Matrix<Scalar>(rows: m, columns: m)
    for i in 0..<m {
      for j in 0..<m where j != i && c[i, j] >= 0 {
        let g = gradientS[i, j] * 2 * s[i, j]
        gradientC[i, j] += g
        gradientC[j, i] += g
      }
    }
    var unitGradient = Matrix<Scalar>(), gradientE = Matrix<Scalar>()
    gemm(gradientC, unit, into: &unitGradient, compute: compute)
    Matrix.unitRowsBackward(unitGradient, unit: unit, norms: norms, into: &gradientE)
    embeddingGradient.resize(rows: n, columns: l)
    for i in 0..<n { for j in 0..<l { embeddingGradient[i, j] = gradientE[i, j] } }
    proxies.parameter.gradient.resize(rows: k, columns: l)
    for i in 0..<k { for j in 0..<l { proxies.parameter.gradient[i, j] = gradientE[n + i, j] } }
    return LossValue(
      LossTerm(name: "intrinsic", value: Reduction.mean.value(intrinsic), count: intrinsic.count, nonZero: intrinsic.nonZero),
      contextWeight > 0
        ? LossTerm(name: "context", value: contextWeight * Reduction.mean.value(context), count: context.count, nonZero: context.nonZero)
        : nil)
  }
}
