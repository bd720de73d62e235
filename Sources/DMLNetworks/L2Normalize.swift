/// Scales each row to unit Euclidean length, `y = x / max(‖x‖, ε)`, as PyTorch's
/// `F.normalize` does (ε = 1e-12). A zero row stays zero and its gradient stays finite.
public struct L2Normalize<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The smallest norm divided by.
  public var epsilon: Scalar
  @usableFromInline var norms: [Scalar] = []

  /// A layer that divides each row by `max(‖x‖, epsilon)` (1e-12 by default, as PyTorch).
  public init(epsilon: Scalar = 1e-12) { self.epsilon = epsilon }

  public func outputFeatures(forInput n: Int) -> Int { n }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    let (rows, d) = (input.rows, input.columns)
    output.resize(rows: rows, columns: d)
    if norms.count < rows { norms = [Scalar](repeating: 0, count: rows) }
    let eps = epsilon
    guard d > 0 else { return }
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        norms.withUnsafeMutableBufferPointer { nr in
          for r in 0..<rows {
            let s = Scalar.dot(x.baseAddress! + r * d, x.baseAddress! + r * d, count: d)
            let norm = Swift.max(s.squareRoot(), eps)
            nr[r] = norm
            let source = x.baseAddress! + r * d, target = y.baseAddress! + r * d  // row pointers: the loop vectorises
            for j in 0..<d { target[j] = source[j] / norm }
          }
        }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    let (rows, d) = (input.rows, input.columns)
    inputGradient.resize(rows: rows, columns: d)
    let eps = epsilon
    guard d > 0 else { return }
    output.withUnsafeBufferPointer { y in
      outputGradient.withUnsafeBufferPointer { g in
        norms.withUnsafeBufferPointer { nr in
          inputGradient.withUnsafeMutableBufferPointer { gx in
            for r in 0..<rows {
              let norm = nr[r]
              if norm > eps {
                // (I − y yᵀ) g / ‖x‖
                let yg = Scalar.dot(y.baseAddress! + r * d, g.baseAddress! + r * d, count: d)
                let (gi, yi, gxi) = (g.baseAddress! + r * d, y.baseAddress! + r * d, gx.baseAddress! + r * d)
                for j in 0..<d { gxi[j] = (gi[j] - yi[j] * yg) / norm }
              } else {
                let (gi, gxi) = (g.baseAddress! + r * d, gx.baseAddress! + r * d)
                for j in 0..<d { gxi[j] = gi[j] / eps }
              }
            }
          }
        }
      }
    }
  }
}
