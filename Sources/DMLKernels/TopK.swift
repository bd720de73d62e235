/// The `k` best entries of a row of scores: the smallest (distances) or the largest
/// (similarities), best first, ties broken by the lower column index. NaN ranks last.
///
/// The selection is a bounded heap kept inside the output buffers, so it allocates nothing and
/// runs in `O(n log k)`.
///
/// - Parameters:
///   - row: the `n` scores.
///   - n: the number of scores in `row`.
///   - k: how many to keep; at most `n`.
///   - largest: keep the largest scores instead of the smallest.
///   - indices: receives `k` column indices, best first.
///   - values: receives the `k` scores, best first.
@inlinable
package func selectTopK<T: DMLScalar>(
  row: UnsafePointer<T>, count n: Int, k: Int, largest: Bool,
  indices: UnsafeMutablePointer<Int32>, values: UnsafeMutablePointer<T>
) {
  precondition(k >= 0 && k <= n, "top-k: k = \(k) must lie in 0...\(n)")
  guard k > 0 else { return }
  // Keys are oriented so that smaller is better; NaN becomes the worst key.
  @inline(__always) func key(_ v: T) -> T {
    if v.isNaN { return T.infinity }
    return largest ? -v : v
  }
  // `worse(a, b)`: entry a ranks after entry b.
  @inline(__always) func worse(_ ka: T, _ ia: Int32, _ kb: T, _ ib: Int32) -> Bool {
    ka > kb || (ka == kb && ia > ib)
  }
  // The heap holds keys in `values` while it is built; the root is the worst kept entry.
  func siftDown(_ start: Int, _ size: Int) {
    var i = start
    while true {
      let l = 2 * i + 1
      if l >= size { return }
      var w = l
      let r = l + 1
      if r < size && worse(values[r], indices[r], values[l], indices[l]) { w = r }
      if worse(values[w], indices[w], values[i], indices[i]) {
        swap(&values[w], &values[i])
        swap(&indices[w], &indices[i])
        i = w
      } else {
        return
      }
    }
  }
  for j in 0..<k {
    values[j] = key(row[j])
    indices[j] = Int32(j)
  }
  for s in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(s, k) }
  if k < n {
    for j in k..<n {
      let kj = key(row[j])
      if worse(values[0], indices[0], kj, Int32(j)) {
        values[0] = kj
        indices[0] = Int32(j)
        siftDown(0, k)
      }
    }
  }
  // Heap sort: the worst goes to the end, so the buffers end best first.
  var size = k
  while size > 1 {
    size -= 1
    swap(&values[0], &values[size])
    swap(&indices[0], &indices[size])
    siftDown(0, size)
  }
  for j in 0..<k { values[j] = row[Int(indices[j])] }
}

/// The result of `Matrix.topK`: for each row, `k` column indices and their scores, best first.
public struct TopK<Scalar: DMLScalar>: Sendable {
  /// Column indices, `rows × k`, row-major.
  public var indices: [Int32]
  /// The scores at those indices, `rows × k`.
  public var values: Matrix<Scalar>
  /// Entries kept per row.
  public var k: Int

  /// A result from `rows × k` row-major `indices` and the matching `values`, `k` per row.
  @inlinable
  public init(indices: [Int32], values: Matrix<Scalar>, k: Int) {
    self.indices = indices
    self.values = values
    self.k = k
  }
}

extension Matrix {
  /// The `k` smallest (or, with `largest`, largest) entries of every row, best first.
  @inlinable
  public func topK(_ k: Int, largest: Bool = false) -> TopK<Scalar> {
    precondition(k >= 0 && k <= columns, "topK: k = \(k) must lie in 0...\(columns)")
    var indices = [Int32](repeating: 0, count: rows * k)
    var values = Matrix(rows: rows, columns: k)
    let c = columns
    withUnsafeBufferPointer { p in
      indices.withUnsafeMutableBufferPointer { pi in
        values.withUnsafeMutableBufferPointer { pv in
          for i in 0..<rows {
            selectTopK(
              row: p.baseAddress! + i * c, count: c, k: k, largest: largest,
              indices: pi.baseAddress! + i * k, values: pv.baseAddress! + i * k)
          }
        }
      }
    }
    return TopK(indices: indices, values: values, k: k)
  }
}
