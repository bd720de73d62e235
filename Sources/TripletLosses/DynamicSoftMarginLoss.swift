/// Dynamic soft margin loss (Zhang and Rusinkiewicz, "Learning Local Descriptors with a CDF-Based
/// Dynamic Soft Margin", ICCV 2019), as PML's `DynamicSoftMarginLoss`: every triplet's
/// `x = d(a, p) − d(a, n)` weighted by the running distribution of `x`.
///
/// ```
/// x_t = d(a, p) − d(a, n)  for every triplet t (or the miner's)
/// H ← (1 − μ) H + μ · histogram of this batch's x (linear split between neighbouring bins), H / ΣH
/// loss = mean over t of CDF_H(x_t) · x_t
/// ```
/// on the Euclidean distance of normalised rows, with `bins` equal bins over `[min_val, −min_val]`.
///
/// - Defaults as PML: `min_val` −2, 10 bins, momentum 0.01 (the first batch fills the histogram
///   alone).
/// - State: `histogram`, the running distribution (not trained: it follows the batches, and
///   checkpoints keep it). The batch's update is committed after the optimizer's step
///   (`updateReferences`), so evaluating twice gives the same value.
/// - Gradient: the weights `CDF(x_t)` are constants of the gradient, as the paper's running
///   statistic. PML 2.9.0 keeps the histogram in the autograd graph, which makes the gradient flow
///   through its bin fractions and makes the second training step fail (the graph of the first is
///   freed); ours trains for any number of steps.
/// - `x` outside the bins (PML indexes past the histogram there) counts in the first or last bin.
/// - Terms: `loss`, one per triplet. Reads mined pairs or triplets, and a cross-batch memory.
public struct DynamicSoftMarginLoss<Scalar: DMLScalar>: RegisteredLoss {
  /// The lower end of the bins, `min_val` (negative); they span `[min_val, −min_val]`.
  public var minimum: Scalar
  /// The number of bins.
  public let bins: Int
  /// The weight of a batch's histogram in the running one.
  public var momentum: Scalar
  /// The running distribution of `x`, `1 × bins`, summing to 1 (0 before the first batch).
  public var histogram: Parameter<Scalar>
  /// The Euclidean distance of normalised rows (fixed, as PML requires).
  public var distance: Distance { .euclidean }
  @usableFromInline var pending: Matrix<Scalar>?
  @usableFromInline var differences: [Scalar] = []

  /// A loss with PML's defaults: `min_val` −2, 10 bins, momentum 0.01.
  public init(minimum: Scalar = -2, bins: Int = 10, momentum: Scalar = 0.01) {
    precondition(minimum < 0 && bins >= 1 && momentum > 0 && momentum <= 1, "DynamicSoftMarginLoss: min_val < 0, bins ≥ 1, momentum in (0, 1]")
    self.minimum = minimum
    self.bins = bins
    self.momentum = momentum
    histogram = Parameter(name: "histogram", shape: [bins], value: Matrix(rows: 1, columns: bins), decays: false, trainable: false)
  }

  public static var registryName: String { "dynamic-soft-margin" }
  public static var summary: String { "Dynamic soft margin (Zhang and Rusinkiewicz 2019): triplets weighted by the running CDF of d(a,p) − d(a,n)" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("min_val", .real, default: "-2", "the bins span [min_val, -min_val]", range: .closed(-1e6, -1e-6)),
      HyperparameterSpec("num_bins", .integer, default: "10", "bins of the histogram", range: .closed(1, 100_000)),
      HyperparameterSpec("momentum", .real, default: "0.01", "weight of each batch in the running histogram", range: .leftOpen(0, 1)),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(minimum: Scalar(try v.real("min_val")), bins: try v.integer("num_bins"), momentum: Scalar(try v.real("momentum")))
  }

  /// Visits the running histogram (`histogram`, not trained).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&histogram)
  }

  /// Commits the last batch's histogram, once per step after the optimizer's.
  public mutating func updateReferences() {
    if let pending { histogram.value = pending }
    pending = nil
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, columns) = (scores.rows, scores.columns)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    pending = nil
    // Every triplet's x = d(a, p) − d(a, n), in the order of `Tuples.forEachTriplet`.
    let triplets = tuples?.asTriplets
    var xs = differences
    xs.removeAll(keepingCapacity: true)
    scores.withUnsafeBufferPointer { s in
      if let triplets {
        for t in triplets { xs.append(s[Int(t.x) * columns + Int(t.y)] - s[Int(t.x) * columns + Int(t.z)]) }
        return
      }
      for a in 0..<n {
        let row = a * columns, y = labels[a]
        for p in 0..<columns where p != a && labels[p] == y {
          let positive = s[row + p]
          for q in 0..<columns where labels[q] != y { xs.append(positive - s[row + q]) }
        }
      }
    }
    differences = xs
    guard !xs.isEmpty else { return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }
    // Each x's bin and fraction towards the next (within the bins), and this batch's histogram
    // mixed into the running one (alone for the first batch).
    let width = 2 * abs(minimum) / Scalar(bins), last = Scalar(bins - 1)
    var indices = [Int32](repeating: 0, count: xs.count)
    var batch = [Scalar](repeating: 0, count: bins)
    for t in xs.indices {
      let position = Swift.min(Swift.max((xs[t] - minimum) / width, 0), last)
      let k = position.rounded(.down).truncatedInt, f = position - Scalar(k)
      indices[t] = Int32(k)
      batch[k] += 1 - f
      batch[Swift.min(k + 1, bins - 1)] += f
    }
    let old = histogram.value.elements
    let mix = old.reduce(0, +) != 0 ? momentum : 1
    var updated = (0..<bins).map { (1 - mix) * old[$0] + mix * batch[$0] }
    let total = updated.reduce(0, +)
    updated = updated.map { $0 / total }
    var cdf = updated
    for k in 1..<Swift.max(bins, 1) { cdf[k] += cdf[k - 1] }
    pending = Matrix(rows: 1, columns: bins, elements: updated)
    // loss = mean CDF(x)·x; ∂/∂x = CDF(x) / T, on d(a, p) and against d(a, n).
    var acc = TermAccumulator<Scalar>()
    for t in xs.indices { acc.add(cdf[Int(indices[t])] * xs[t]) }
    let inverse = 1 / Scalar(xs.count)
    scoreGradient.withUnsafeMutableBufferPointer { g in
      if let triplets {
        for (t, triplet) in triplets.enumerated() {
          let w = cdf[Int(indices[t])] * inverse, row = Int(triplet.x) * columns
          g[row + Int(triplet.y)] += w
          g[row + Int(triplet.z)] -= w
        }
        return
      }
      var t = 0
      for a in 0..<n {
        let row = a * columns, y = labels[a]
        for p in 0..<columns where p != a && labels[p] == y {
          var sum: Scalar = 0
          for q in 0..<columns where labels[q] != y {
            let w = cdf[Int(indices[t])] * inverse
            g[row + q] -= w
            sum += w
            t += 1
          }
          g[row + p] += sum
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
