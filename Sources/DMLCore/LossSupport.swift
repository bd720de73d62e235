// Helpers that several loss families share: pair masks, `log(1 + Σ exp)`, cross-entropy.

/// The pairs a pair loss uses, as an `n × m` mask reused between steps: `1` positive, `2` negative,
/// `0` unused. Rows are the batch; columns are the batch itself (`m = n`) or the batch followed
/// by a cross-batch memory (column `j < n` is row `j`). With no tuples, every `(i, j)`, `j ≠ i`,
/// is used by label.
public struct PairMask: Sendable {
  /// The mask, row-major.
  public var values: [UInt8] = []
  /// Rows.
  public var rows = 0
  /// Columns.
  public var columns = 0

  /// An empty mask; `build` sizes and fills it.
  public init() {}

  /// The mask value of a positive pair (same label).
  public static let positive: UInt8 = 1
  /// The mask value of a negative pair (different labels).
  public static let negative: UInt8 = 2

  /// Fills the mask for `rows` anchors from `labels` (one per column; the first `rows` are the
  /// anchors' own) and optional `tuples`.
  @inlinable
  public mutating func build(rows n: Int, labels: [Int], tuples: Tuples?) {
    let m = labels.count
    precondition(n <= m, "PairMask: \(n) rows but only \(m) column labels")
    rows = n
    columns = m
    if values.count < n * m { values = [UInt8](repeating: 0, count: n * m) }
    values.withUnsafeMutableBufferPointer { mask in
      mask.baseAddress!.update(repeating: 0, count: n * m)
      if let tuples {
        let pairs = tuples.asPairs
        for p in pairs.positive { mask[Int(p.x) * m + Int(p.y)] = PairMask.positive }
        for p in pairs.negative { mask[Int(p.x) * m + Int(p.y)] = PairMask.negative }
      } else {
        for i in 0..<n {
          for j in 0..<m where i != j {
            mask[i * m + j] = labels[i] == labels[j] ? PairMask.positive : PairMask.negative
          }
        }
      }
    }
  }
}

/// `log(1 + Σ exp(x_k))` over the `count` values produced by `x(k)` for the `k` where `keep(k)`,
/// computed stably; 0 when no value is kept (PML's `logsumexp(..., add_one=True)` with a mask).
/// `weights(k, w)` then receives `w = ∂/∂x_k = exp(x_k) / (1 + Σ exp)`. `scratch` (room for
/// `count` values) holds the kept values packed together, so each exponential is computed once
/// and only for a kept value.
@inlinable
public func logOnePlusSumExp<T: DMLScalar>(
  count: Int, keep: (Int) -> Bool, x: (Int) -> T, scratch: UnsafeMutablePointer<T>,
  weights: ((Int, T) -> Void)? = nil
) -> T {
  logSumExp(count: count, keep: keep, x: x, scratch: scratch, addOne: true, weights: weights)
}

/// `log(Σ exp(x_k))`, or `log(1 + Σ exp(x_k))` with `addOne`, over the kept values, as
/// `logOnePlusSumExp` describes (PML's masked `logsumexp` with its `add_one`); 0 when no value is
/// kept. `x(k)` is called exactly once per kept `k`, in order, before any call of `weights`, which
/// receives the softmax weight of each kept value (the "1" takes its share with `addOne`).
@inlinable
public func logSumExp<T: DMLScalar>(
  count: Int, keep: (Int) -> Bool, x: (Int) -> T, scratch: UnsafeMutablePointer<T>, addOne: Bool,
  weights: ((Int, T) -> Void)? = nil
) -> T {
  let (value, sum) = logSumExpKeepingExponentials(count: count, keep: keep, x: x, scratch: scratch, addOne: addOne)
  if let weights { softmaxWeights(count: count, keep: keep, exponentials: scratch, sum: sum, weights: weights) }
  return value
}

/// The first half of `logSumExp`: returns its value and the sum of the exponentials it took
/// (`exp(x_k − largest)`, and the "1" as `exp(−largest)` with `addOne`), and leaves those
/// exponentials of the kept values in `scratch`, in order, for `softmaxWeights`. The sum is 0 when
/// no value is kept.
@inlinable
public func logSumExpKeepingExponentials<T: DMLScalar>(
  count: Int, keep: (Int) -> Bool, x: (Int) -> T, scratch: UnsafeMutablePointer<T>, addOne: Bool
) -> (value: T, sum: T) {
  var largest: T = addOne ? 0 : -T.infinity  // the "1" is exp(0)
  var kept = 0
  for k in 0..<count where keep(k) {
    let v = x(k)
    scratch[kept] = v
    largest = Swift.max(largest, v)
    kept += 1
  }
  guard kept > 0 else { return (0, 0) }
  // The exponentials in one vectorised pass (`expInPlace`), then summed in lanes.
  for q in 0..<kept { scratch[q] -= largest }
  T.expInPlace(scratch, count: kept)
  let sum = T.sum(scratch, count: kept) + (addOne ? T.exp(-largest) : 0)
  return (T.log(sum) + largest, sum)
}

/// The second half of `logSumExp`: `weights(k, w)` with the softmax weight `w` of each kept `k`, in
/// order, from the exponentials and sum `logSumExpKeepingExponentials` left (`keep` must be the
/// same).
@inlinable
public func softmaxWeights<T: DMLScalar>(
  count: Int, keep: (Int) -> Bool, exponentials scratch: UnsafePointer<T>, sum: T, weights: (Int, T) -> Void
) {
  let inverse = 1 / sum
  var q = 0
  for k in 0..<count where keep(k) {
    weights(k, scratch[q] * inverse)
    q += 1
  }
}

/// Cross-entropy of one row of logits against `label`: returns `−log softmax(logits)[label]` and
/// writes `∂/∂logits = softmax − onehot`, scaled by `scale`, into `gradient`.
@inlinable
public func crossEntropy<T: DMLScalar>(
  logits: UnsafePointer<T>, count: Int, label: Int, scale: T, gradient: UnsafeMutablePointer<T>
) -> T {
  let largest = T.maximum(logits, count: count)
  // Each exponential once, in one vectorised pass (`expInPlace`), kept in `gradient`, and summed
  // in lanes.
  for j in 0..<count { gradient[j] = logits[j] - largest }
  T.expInPlace(gradient, count: count)
  let sum = T.sum(gradient, count: count)
  let logSum = T.log(sum) + largest
  let inverse = scale / sum
  for j in 0..<count { gradient[j] *= inverse }
  gradient[label] -= scale
  return logSum - logits[label]
}

/// Checks that every label lies in `0..<classes`, for losses with one reference per class.
@inlinable
public func checkLabels(_ labels: [Int], classes: Int, loss: StaticString) {
  for (i, y) in labels.enumerated() {
    precondition(y >= 0 && y < classes, "\(loss): label \(y) of row \(i) is outside 0..<\(classes)")
  }
}

/// The sign that turns "larger is closer" into the distance's own direction: `+1` for a
/// similarity, `−1` for a distance. PML writes the same as `distance.margin(x, y)`.
extension Distance {
  /// `+1` for a similarity, `−1` for a distance: the sign that turns "larger is closer" into this
  /// distance's own direction.
  @inlinable public var closeness: Int { isSimilarity ? 1 : -1 }
}
