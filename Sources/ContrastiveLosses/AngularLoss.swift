/// Angular loss (Wang et al. 2017), as PML's `AngularLoss`: bounds the angle at the negative of
/// the triangle each positive pair forms with it, written with dot products of normalised rows.
///
/// ```
/// f_apn = 4 tan²α · (x_a + x_p)·x_n − 2 (1 + tan²α) · x_a·x_p
/// loss_ap = log(1 + Σ_{n: y_n ≠ y_a} exp(f_apn))
/// loss = mean over positive pairs (a,p)
/// ```
///
/// - Scores: dot products of L2-normalised rows (cosine), from which `x_a·x_p` and
///   `(x_a + x_p)·x_n = s(a,n) + s(p,n)` are read. Default α: 40°. Reduction: the mean over the
///   positive pairs, both orders counting (PML's `MeanReducer`).
/// - Pairs: the positive pairs of the tuples (or all); as in PML, each pair's negatives are all the
///   batch's rows of another label, whatever the tuples' negative pairs, and a batch or tuple list
///   without a negative pair has loss 0.
/// - No cross-batch memory: `s(p,n)` needs the positive to be a row of the batch.
/// - Every row is normalised, negatives included, as in the paper. PML normalises the anchors and
///   positives but not the negatives; on unit-length embeddings the two agree.
///
/// ### See Also
/// `TripletMarginLoss`, `NTXentLoss`.
public struct AngularLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The angle α, in degrees.
  public var alphaDegrees: Scalar
  @usableFromInline var mask = PairMask()

  /// The score between embeddings: dot products of normalised rows.
  public var distance: Distance { .cosine }

  /// An angular loss with α = 40° by default, as PML.
  public init(alphaDegrees: Scalar = 40) {
    self.alphaDegrees = alphaDegrees
  }

  public static var registryName: String { "angular" }
  public static var summary: String { "Angular loss (Wang et al. 2017): the angle at the negative, bounded by α" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("alpha", .real, default: "40", "the angle α in degrees", range: ValueRange(lower: (0, false), upper: (90, false)))]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(alphaDegrees: Scalar(try v.real("alpha")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "AngularLoss compares the batch with itself (no cross-batch memory)")
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let tangent = Scalar.tan(alphaDegrees * Scalar.pi / 180)
    let t = tangent * tangent
    let (cross, own) = (4 * t, 2 * (1 + t))
    let anyNegative = mask.values.withUnsafeBufferPointer { m in (0..<(n * columns)).contains { m[$0] == PairMask.negative } }
    var terms = TermAccumulator<Scalar>()
    guard anyNegative else {
      mask.values.withUnsafeBufferPointer { m in for k in 0..<(n * columns) where m[k] == PairMask.positive { terms.add(0) } }
      return LossValue(LossTerm(name: "loss", value: 0, count: terms.count, nonZero: 0))
    }
    // f_apn for negative column q of pair (a, p).
    @inline(__always) func f(_ s: UnsafeBufferPointer<Scalar>, _ a: Int, _ p: Int, _ q: Int) -> Scalar {
      cross * (s[a * columns + q] + s[p * columns + q]) - own * s[a * columns + p]
    }
    // One term per positive pair, so the mean's weight is known before the pass; each pair's
    // exponentials are taken once, for its value and then its softmax weights.
    let positivePairs = mask.values.withUnsafeBufferPointer { m in
      var count = 0
      for k in 0..<(n * columns) { count += m[k] == PairMask.positive ? 1 : 0 }
      return count
    }
    let perTerm = 1 / Scalar(positivePairs)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          labels.withUnsafeBufferPointer { label in
            withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
              for k in 0..<(n * columns) where m[k] == PairMask.positive {
                let (a, p) = (k / columns, k % columns)
                let keep = { (q: Int) in label[q] != label[a] }
                let (value, sum) = logSumExpKeepingExponentials(
                  count: columns, keep: keep, x: { f(s, a, p, $0) }, scratch: scratch.baseAddress!, addOne: true)
                terms.add(value)
                var total: Scalar = 0
                softmaxWeights(
                  count: columns, keep: keep, exponentials: scratch.baseAddress!, sum: sum,
                  weights: { q, w in
                    let dw = w * perTerm
                    g[a * columns + q] += cross * dw
                    g[p * columns + q] += cross * dw
                    total += dw
                  })
                g[k] -= own * total
              }
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
