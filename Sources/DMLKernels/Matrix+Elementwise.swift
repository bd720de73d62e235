/// Elementwise and broadcast kernels. Each works in place on the receiver's storage and
/// allocates nothing.
extension Matrix {
  /// Sets every element to `value`.
  @inlinable
  public mutating func fill(_ value: Scalar) {
    withUnsafeMutableBufferPointer { p in
      guard let base = p.baseAddress else { return }
      base.update(repeating: value, count: p.count)
    }
  }

  /// Subtracts each row's mean from the row (the rows' centring, and its own adjoint).
  @inlinable
  public mutating func subtractRowMeans() {
    let (n, d) = (rows, columns)
    guard d > 0 else { return }
    withUnsafeMutableBufferPointer { p in
      for i in 0..<n {
        let row = p.baseAddress! + i * d
        var mean: Scalar = 0
        for k in 0..<d { mean += row[k] }
        mean /= Scalar(d)
        for k in 0..<d { row[k] -= mean }
      }
    }
  }

  /// Multiplies every element by `factor`.
  @inlinable
  public mutating func scale(by factor: Scalar) {
    withUnsafeMutableBufferPointer { p in
      for i in p.indices { p[i] *= factor }
    }
  }

  /// `self += alpha * x` (axpy). Shapes must match.
  @inlinable
  public mutating func add(_ x: Matrix, scaledBy alpha: Scalar = 1) {
    precondition(
      rows == x.rows && columns == x.columns,
      "add: shapes differ, \(rows)x\(columns) and \(x.rows)x\(x.columns)")
    x.withUnsafeBufferPointer { px in
      withUnsafeMutableBufferPointer { p in
        if alpha == 1 {
          for i in p.indices { p[i] += px[i] }
        } else {
          for i in p.indices { p[i] += alpha * px[i] }
        }
      }
    }
  }

  /// `self *= x` elementwise. Shapes must match.
  @inlinable
  public mutating func multiply(by x: Matrix) {
    precondition(
      rows == x.rows && columns == x.columns,
      "multiply: shapes differ, \(rows)x\(columns) and \(x.rows)x\(x.columns)")
    x.withUnsafeBufferPointer { px in
      withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] *= px[i] }
      }
    }
  }

  /// Applies `transform` to every element.
  @inlinable
  public mutating func apply(_ transform: (Scalar) -> Scalar) {
    withUnsafeMutableBufferPointer { p in
      for i in p.indices { p[i] = transform(p[i]) }
    }
  }

  /// A new matrix with `transform` applied to every element.
  @inlinable
  public func map(_ transform: (Scalar) -> Scalar) -> Matrix {
    var result = self
    result.apply(transform)
    return result
  }

  /// Adds `vector` to every row (broadcast over rows). `vector.count` must equal `columns`.
  @inlinable
  public mutating func addToEachRow(_ vector: UnsafeBufferPointer<Scalar>) {
    precondition(vector.count == columns, "addToEachRow: vector has \(vector.count), need \(columns)")
    let c = columns, r = rows
    withUnsafeMutableBufferPointer { p in
      for i in 0..<r {
        let row = p.baseAddress! + i * c
        for j in 0..<c { row[j] += vector[j] }
      }
    }
  }

  /// Adds `vector` to every row (broadcast over rows).
  @inlinable
  public mutating func addToEachRow(_ vector: [Scalar]) {
    vector.withUnsafeBufferPointer { addToEachRow($0) }
  }
}
