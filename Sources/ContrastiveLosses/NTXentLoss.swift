/// NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020) and
/// InfoNCE (van den Oord et al. 2018), as PML's `NTXentLoss`: each positive pair is a softmax
/// classification of the positive among its anchor's negatives.
///
/// ```
/// loss_ap = −log( exp(s(a,p)/τ) / (exp(s(a,p)/τ) + Σ_{n∈N_a} exp(s(a,n)/τ)) )
/// loss = mean over positive pairs (a,p)
/// ```
/// With a distance, `s` is the negated distance.
///
/// - Default distance: cosine similarity; default temperature τ 0.07. Default reduction: the mean
///   over the positive pairs, both orders counting (PML's `MeanReducer`).
/// - Term: `loss`, one per positive pair. As in PML, the smallest normal number is added inside
///   the logarithm, so a hopeless pair gives a large finite loss rather than +∞.
/// - Accepts a cross-batch memory: the negatives are those of the anchor's row, memory included
///   (MoCo's queue).
/// - A pair whose anchor has no negative has only itself in its softmax: its loss is 0, as in PML.
///
/// ### See Also
/// `SupConLoss`, `SelfSupervisedLoss`.
public struct NTXentLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The temperature τ.
  public var temperature: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()
  @usableFromInline var probabilities: [Scalar] = []

  /// An NT-Xent loss with temperature 0.07 and cosine similarity by default, as PML.
  public init(temperature: Scalar = 0.07, distance: Distance = .cosine) {
    self.temperature = temperature
    self.distance = distance
  }

  public static var registryName: String { "ntxent" }
  public static var summary: String { "NT-Xent / InfoNCE (Chen et al. 2020): the positive's softmax against its anchor's negatives" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("temperature", .real, default: "0.07", "the softmax temperature τ", range: .positive),
      .distance(default: "cosine"),
    ]
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
    let tiny = Scalar.leastNormalMagnitude
    var terms = TermAccumulator<Scalar>()
    // First pass: each pair's loss, and q = its softmax probability, for the gradient.
    probabilities.removeAll(keepingCapacity: true)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
          for i in 0..<n {
            let row = i * columns
            let negatives = logSumExp(
              count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * s[row + $0] },
              scratch: scratch.baseAddress!, addOne: false)
            let hasNegatives = (0..<columns).contains { m[row + $0] == PairMask.negative }
            for j in 0..<columns where m[row + j] == PairMask.positive {
              let x = scale * s[row + j]
              // q = exp(x) / (exp(x) + Σ exp(x_n)) = 1 / (1 + exp(lse_n − x)).
              let q = hasNegatives ? 1 / (1 + Scalar.exp(negatives - x)) : 1
              probabilities.append(q)
              terms.add(-Scalar.log(q + tiny))
            }
          }
        }
      }
    }
    // Second pass: ∂loss/∂x_p = −q(1 − q)/(q + tiny), ∂loss/∂x_n = q·softmax_n/(q + tiny), per pair.
    let perTerm = Reduction.mean.weight(of: Scalar(0), terms)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
            var k = 0
            for i in 0..<n {
              let row = i * columns
              var negativeWeight: Scalar = 0  // Σ over the row's pairs of q/(q + tiny)·(1 − q)
              for j in 0..<columns where m[row + j] == PairMask.positive {
                let q = probabilities[k]
                k += 1
                let ratio = q / (q + tiny) * perTerm
                g[row + j] += -(1 - q) * ratio * scale
                negativeWeight += ratio * (1 - q)
              }
              guard negativeWeight != 0 else { continue }
              // Each pair's negatives share its (1 − q) by the softmax over the negatives alone.
              _ = logSumExp(
                count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * s[row + $0] },
                scratch: scratch.baseAddress!, addOne: false,
                weights: { j, w in g[row + j] += w * negativeWeight * scale })
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
