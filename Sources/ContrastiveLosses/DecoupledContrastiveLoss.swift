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
/// - The paper's weighted variant (DCLW) is not included.
///
/// ### See Also
/// `NTXentLoss`.
public struct DecoupledContrastiveLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The temperature τ.
  public var temperature: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()
  @usableFromInline var negatives: [Scalar] = []

  /// A decoupled contrastive loss with temperature 0.1 and cosine similarity by default.
  public init(temperature: Scalar = 0.1, distance: Distance = .cosine) {
    self.temperature = temperature
    self.distance = distance
  }

  public static var registryName: String { "decoupled-contrastive" }
  public static var summary: String { "Decoupled contrastive (Yeh et al. 2022): NT-Xent without the positive in its denominator" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("temperature", .real, default: "0.1", "the softmax temperature τ", range: .positive), .distance(default: "cosine")]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(temperature: Scalar(try v.real("temperature", "positive") { $0 > 0 }), distance: try v.distance())
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
    // First pass: each row's log-sum-exp over its negatives, and its pairs' terms.
    negatives = [Scalar](repeating: -Scalar.infinity, count: n)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
          for i in 0..<n {
            let row = i * columns
            guard (0..<columns).contains(where: { m[row + $0] == PairMask.negative }) else { continue }
            negatives[i] = logSumExp(
              count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * s[row + $0] },
              scratch: scratch.baseAddress!, addOne: false)
            for j in 0..<columns where m[row + j] == PairMask.positive { terms.add(negatives[i] - scale * s[row + j]) }
          }
        }
      }
    }
    // Second pass: ∂loss/∂x_p = −1/T; each pair gives its row's negatives their softmax share, 1/T.
    let perTerm = Reduction.mean.weight(of: Scalar(0), terms)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
            for i in 0..<n where negatives[i] > -Scalar.infinity {
              let row = i * columns
              var pairs: Scalar = 0
              for j in 0..<columns where m[row + j] == PairMask.positive {
                g[row + j] -= perTerm * scale
                pairs += 1
              }
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
