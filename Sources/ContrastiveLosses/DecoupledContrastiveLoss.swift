/// Decoupled contrastive loss (Yeh et al., "Decoupled Contrastive Learning", ECCV 2022), the loss
/// PML 3 adds as `DecoupledContrastiveLoss`: NT-Xent with the positive taken out of its own
/// softmax's denominator,
///
/// ```
/// loss_ap = −s(a,p)/τ + log Σ_{n∈N_a} exp(s(a,n)/τ)
/// loss = mean over positive pairs (a,p) whose anchor has a negative
/// ```
/// With a distance, `s` is the negated distance. Without the positive in the denominator, the
/// gradient of the negatives no longer shrinks as the positive pair is learned (the paper's
/// negative-positive coupling), which matters most for small batches.
///
/// - Default distance: cosine similarity; default temperature τ 0.1 (the paper's).
/// - Term: `loss`, one per positive pair with a negative (it may be below 0).
/// - Accepts mined pairs and a cross-batch memory, as NT-Xent.
/// - `weighting=vmf` is the paper's weighted variant (DCLW): each positive pair's `−s(a,p)/τ` is
///   scaled by `w_p = 2 − P · softmax_p(s(a,p)/σ)`, the softmax over the batch's `P` positive pairs
///   (σ 0.5, the paper's), so that pairs already close weigh less; the weights are differentiated
///   as the paper's code does (not held constant). The weights couple the batch's pairs: no
///   `anchor_block` then.
///
/// ### See Also
/// `NTXentLoss`.
public struct DecoupledContrastiveLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The temperature τ.
  public var temperature: Scalar
  /// The score between embeddings.
  public var distance: Distance
  /// DCLW's σ: the positive pairs are weighted by `2 − P · softmax(s/σ)`; `nil` for no weighting.
  public var weightingSigma: Scalar?
  @usableFromInline var mask = PairMask()
  @usableFromInline var negatives: [Scalar] = []
  @usableFromInline var positives: [Int] = [], pairWeights: [Scalar] = []

  /// A decoupled contrastive loss with temperature 0.1 and cosine similarity by default, and DCLW's
  /// weighting of the positive pairs with σ `weightingSigma` (none by default).
  public init(temperature: Scalar = 0.1, distance: Distance = .cosine, weightingSigma: Scalar? = nil) {
    self.temperature = temperature
    self.distance = distance
    self.weightingSigma = weightingSigma
  }

  public static var registryName: String { "decoupled-contrastive" }
  public static var summary: String { "Decoupled contrastive (Yeh et al. 2022): NT-Xent without the positive in its denominator" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { weightingSigma == nil ? AnchorBlockReductions(.mean) : nil }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("temperature", .real, default: "0.1", "the softmax temperature τ", range: .positive), .distance(default: "cosine"),
      HyperparameterSpec("weighting", .choice(["none", "vmf"]), default: "none", "vmf: DCLW's weights 2 − P·softmax(s/σ) on the positive pairs"),
      HyperparameterSpec("sigma", .real, default: "0.5", "DCLW's σ (with weighting=vmf)", range: .positive),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      temperature: Scalar(try v.real("temperature", "positive") { $0 > 0 }), distance: try v.distance(),
      weightingSigma: try v.string("weighting") == "vmf" ? Scalar(try v.real("sigma")) : nil)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let scale = Scalar(distance.closeness) / temperature  // x = s/τ, or −d/τ
    var terms = TermAccumulator<Scalar>()
    // First pass: each row's log-sum-exp over its negatives, and the positive pairs of the rows
    // that have a negative.
    negatives = [Scalar](repeating: -Scalar.infinity, count: n)
    positives.removeAll(keepingCapacity: true)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
          for i in 0..<n {
            let row = i * columns
            guard (0..<columns).contains(where: { m[row + $0] == PairMask.negative }) else { continue }
            negatives[i] = logSumExp(
              count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * s[row + $0] },
              scratch: scratch.baseAddress!, addOne: false)
            for j in 0..<columns where m[row + j] == PairMask.positive { positives.append(row + j) }
          }
        }
      }
    }
    // DCLW: w_p = 2 − P·π_p, π = softmax over the positive pairs of c·s_p/σ; x̄ = Σ π_p x_p.
    let count = Scalar(positives.count)
    let pairScores = scores.withUnsafeBufferPointer { s in positives.map { s[$0] } }
    var softmax: [Scalar] = [], meanX: Scalar = 0
    if let sigma = weightingSigma, !positives.isEmpty {
      let closeness = Scalar(distance.closeness)
      let y = pairScores.map { closeness * $0 / sigma }
      let top = y.max()!
      softmax = y.map { Scalar.exp($0 - top) }
      let total = softmax.reduce(0, +)
      for k in softmax.indices { softmax[k] /= total }
      for k in softmax.indices { meanX += softmax[k] * scale * pairScores[k] }
    }
    pairWeights = softmax.isEmpty ? [Scalar](repeating: 1, count: positives.count) : softmax.map { 2 - count * $0 }
    for (k, p) in positives.enumerated() { terms.add(negatives[p / columns] - pairWeights[k] * scale * pairScores[k]) }
    // Second pass: ∂loss/∂x_p = −w_p/T (plus, with DCLW, the weights' own derivative); each pair
    // gives its row's negatives their softmax share, 1/T.
    let perTerm = Reduction.mean.weight(of: Scalar(0), terms)
    scoreGradient.withUnsafeMutableBufferPointer { g in
      for (k, p) in positives.enumerated() {
        g[p] -= perTerm * pairWeights[k] * scale
        if let sigma = weightingSigma {
          // ∂(−Σ_q w_q x_q)/∂y_p = P·π_p·(x_p − x̄), and ∂y_p/∂s_p = c/σ.
          g[p] += perTerm * count * softmax[k] * (scale * pairScores[k] - meanX) * Scalar(distance.closeness) / sigma
        }
      }
    }
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
            for i in 0..<n where negatives[i] > -Scalar.infinity {
              let row = i * columns
              var pairs: Scalar = 0
              for j in 0..<columns where m[row + j] == PairMask.positive { pairs += 1 }
              guard pairs > 0 else { continue }
              _ = logSumExp(
                count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * s[row + $0] },
                scratch: scratch.baseAddress!, addOne: false,
                weights: { j, w in g[row + j] += w * pairs * perTerm * scale })
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
