@_exported import DMLCore

/// Uniformity loss (Wang and Isola 2020, "Understanding Contrastive Representation Learning
/// through Alignment and Uniformity on the Hypersphere"): the log of the mean Gaussian potential
/// between every two distinct embeddings of the batch,
///
/// ```
/// loss = log( 1/(n(n−1)) Σ_{i≠j} exp(−t · ‖f(x_i) − f(x_j)‖²) )
/// ```
///
/// It ignores labels: it spreads the embeddings over the hypersphere, which keeps dimensions the
/// seen classes alone would let collapse. Add it beside a pair loss, e.g.
/// `--loss contrastive --loss uniformity:weight=0.5`.
///
/// - Distance: squared Euclidean between L2-normalised rows (fixed, as in the paper).
/// - Reduction: none; the mean sits inside the log, as in the paper.
/// - Term: `uniformity`, one element (the whole batch).
public struct UniformityLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The potential's sharpness `t` (2 in the paper).
  public var t: Scalar
  /// Squared Euclidean between L2-normalised rows (fixed).
  public var distance: Distance { .squaredEuclidean }

  /// A uniformity loss with sharpness `t` (2 by default, as in the paper).
  public init(t: Scalar = 2) { self.t = t }

  public static var registryName: String { "uniformity" }
  public static var summary: String { "Uniformity on the hypersphere (Wang and Isola 2020); label-free, add beside a pair loss" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("t", .real, default: "2", "sharpness of the Gaussian potential", range: .positive)]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(t: Scalar(try v.real("t", "positive") { $0 > 0 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, m = scores.columns
    scoreGradient.resize(rows: n, columns: m, zeroed: true)
    guard m >= 2 else { return LossValue(LossTerm(name: "uniformity", value: 0, count: 0, nonZero: 0)) }
    // Stable log-sum-exp: shift by the smallest squared distance.
    var smallest = Scalar.infinity
    scores.withUnsafeBufferPointer { s in
      for i in 0..<n { for j in 0..<m where j != i { smallest = Swift.min(smallest, s[i * m + j]) } }
    }
    var sum: Scalar = 0
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        for i in 0..<n {
          // The row's exponentials in one vectorised pass; the diagonal gives exp(−∞) = 0.
          let row = g.baseAddress! + i * m
          for j in 0..<m { row[j] = -t * (s[i * m + j] - smallest) }
          if i < m { row[i] = -Scalar.infinity }
          Scalar.expInPlace(row, count: m)
          for j in 0..<m where j != i { sum += row[j] }
        }
        // d loss / d s_ij = −t · w_ij / Σ w.
        let scale = -t / sum
        for k in 0..<(n * m) { g[k] *= scale }
      }
    }
    let value = Scalar.log(sum / Scalar(n * (m - 1))) - t * smallest
    return LossValue(LossTerm(name: "uniformity", value: value, count: 1, nonZero: 1))
  }
}
