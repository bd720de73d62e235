extension Matrix {
  /// Writes each row divided by its norm (by at least 1e-12, as `torch.nn.functional.normalize`)
  /// into `unit`, and returns the rows' norms.
  @inlinable
  public func unitRows(into unit: inout Matrix) -> [Scalar] {
    var squares = [Scalar]()
    rowSquaredNorms(into: &squares)
    unit.assign(self)
    let norms = squares.map { $0.squareRoot() }
    let d = columns
    guard d > 0 else { return norms }
    unit.withUnsafeMutableBufferPointer { p in
      for i in 0..<rows {
        let inverse = 1 / Swift.max(norms[i], 1e-12), row = p.baseAddress! + i * d
        for k in 0..<d { row[k] *= inverse }
      }
    }
    return norms
  }

  /// The gradient of rows `x = ‖x‖ u` from the gradient `unitGradient` of their unit rows `u`
  /// (`unitRows`) and, if given, of their norms: `(∂u − u (u·∂u)) / max(‖x‖, 1e-12) + (∂L/∂‖x‖) u`.
  @inlinable
  public static func unitRowsBackward(
    _ unitGradient: Matrix, unit: Matrix, norms: [Scalar], normGradient: [Scalar]? = nil, into gradient: inout Matrix
  ) {
    let (n, d) = (unit.rows, unit.columns)
    gradient.resize(rows: n, columns: d)
    guard d > 0 else { return }
    unit.withUnsafeBufferPointer { u in
      unitGradient.withUnsafeBufferPointer { du in
        gradient.withUnsafeMutableBufferPointer { out in
          for i in 0..<n {
            let unitRow = u.baseAddress! + i * d, dUnit = du.baseAddress! + i * d, row = out.baseAddress! + i * d
            var dot: Scalar = 0
            for k in 0..<d { dot += unitRow[k] * dUnit[k] }
            let inverse = 1 / Swift.max(norms[i], 1e-12), radial = (normGradient?[i] ?? 0) - dot * inverse
            for k in 0..<d { row[k] = dUnit[k] * inverse + radial * unitRow[k] }
          }
        }
      }
    }
  }
}
