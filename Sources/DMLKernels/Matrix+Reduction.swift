/// Reductions over all elements, rows or columns.
extension Matrix {
  /// The sum of all elements.
  @inlinable
  public func sum() -> Scalar {
    withUnsafeBufferPointer { p in
      var s: Scalar = 0
      for v in p { s += v }
      return s
    }
  }

  /// The largest absolute value (0 for an empty matrix).
  @inlinable
  public func maxAbs() -> Scalar {
    withUnsafeBufferPointer { p in
      var m: Scalar = 0
      for v in p { m = Swift.max(m, Swift.abs(v)) }
      return m
    }
  }

  /// Whether every element is finite.
  @inlinable
  public var isFinite: Bool {
    withUnsafeBufferPointer { p in p.allSatisfy { $0.isFinite } }
  }

  /// The dot product of the two matrices seen as vectors. Shapes must match.
  @inlinable
  public func dot(_ other: Matrix) -> Scalar {
    precondition(rows == other.rows && columns == other.columns, "dot: shapes differ")
    return withUnsafeBufferPointer { p in
      other.withUnsafeBufferPointer { q in
        guard let a = p.baseAddress, let b = q.baseAddress else { return 0 }
        return Scalar.dot(a, b, count: p.count)
      }
    }
  }

  /// Writes the sum of each column (a reduction over rows) into `result`, which must hold
  /// `columns` elements. With `accumulate`, adds to `result` instead of overwriting it.
  @inlinable
  public func columnSums(into result: UnsafeMutableBufferPointer<Scalar>, accumulate: Bool = false) {
    precondition(result.count == columns, "columnSums: result has \(result.count), need \(columns)")
    if !accumulate { result.baseAddress?.update(repeating: 0, count: columns) }
    let c = columns
    withUnsafeBufferPointer { p in
      guard c > 0 else { return }
      for i in 0..<rows {
        let row = p.baseAddress! + i * c
        for j in 0..<c { result[j] += row[j] }
      }
    }
  }

  /// The sum of each column, as a new array.
  @inlinable
  public func columnSums() -> [Scalar] {
    var r = [Scalar](repeating: 0, count: columns)
    r.withUnsafeMutableBufferPointer { columnSums(into: $0) }
    return r
  }

  /// The sum of each row, as a new array.
  @inlinable
  public func rowSums() -> [Scalar] {
    var r = [Scalar](repeating: 0, count: rows)
    let c = columns
    withUnsafeBufferPointer { p in
      for i in 0..<rows {
        var s: Scalar = 0
        for j in 0..<c { s += p[i * c + j] }
        r[i] = s
      }
    }
    return r
  }

  /// The squared Euclidean norm of each row, into `out` (resized to `rows`).
  @inlinable
  public func rowSquaredNorms(into out: inout [Scalar]) {
    if out.count != rows { out = [Scalar](repeating: 0, count: rows) }
    let c = columns
    withUnsafeBufferPointer { p in
      out.withUnsafeMutableBufferPointer { o in
        guard c > 0 else { return o.update(repeating: 0) }
        for i in o.indices {
          let row = p.baseAddress! + i * c
          o[i] = Scalar.dot(row, row, count: c)
        }
      }
    }
  }

  /// The Euclidean norm of each row, as a new array.
  @inlinable
  public func rowNorms() -> [Scalar] {
    var r = [Scalar](repeating: 0, count: rows)
    let c = columns
    withUnsafeBufferPointer { p in
      guard c > 0 else { return }
      for i in 0..<rows {
        let row = p.baseAddress! + i * c
        r[i] = Scalar.dot(row, row, count: c).squareRoot()
      }
    }
    return r
  }

  /// A copy with every row scaled to unit length (`x / max(‖x‖, 1e-12)`, as PyTorch's
  /// `F.normalize`).
  @inlinable
  public func rowsNormalized() -> Matrix {
    var y = self
    let norms = rowNorms()
    let c = columns
    y.withUnsafeMutableBufferPointer { p in
      for i in 0..<rows {
        let n = Swift.max(norms[i], 1e-12)
        for j in 0..<c { p[i * c + j] /= n }
      }
    }
    return y
  }

  /// The column index of the largest element of each row (the first one on ties).
  @inlinable
  public func argmaxPerRow() -> [Int] {
    var r = [Int](repeating: 0, count: rows)
    let c = columns
    withUnsafeBufferPointer { p in
      for i in 0..<rows {
        var best = 0
        for j in 1..<Swift.max(c, 1) where p[i * c + j] > p[i * c + best] { best = j }
        r[i] = best
      }
    }
    return r
  }
}
