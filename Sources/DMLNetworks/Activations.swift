/// Elementwise activations. Each keeps nothing between passes: the backward pass reads the
/// forward pass's input (and output) from the caller.

/// The rectifier, `max(x, 0)`. Its derivative at 0 is taken as 0, as in PyTorch.
public struct ReLU<Scalar: DMLScalar>: Layer, ParameterFree {
  /// A ReLU layer. It has no parameters.
  public init() {}
  public func outputFeatures(forInput n: Int) -> Int { n }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    let (n, f) = (input.rows, input.columns)
    output.resize(rows: n, columns: f)
    let chunks = compute.chunkCount(rows: n, workPerRow: f)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, r in
          reluForward(x.baseAddress! + r.lowerBound * f, y.baseAddress! + r.lowerBound * f, count: r.count * f)
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
    let (n, f) = (input.rows, input.columns)
    inputGradient.resize(rows: n, columns: f)
    let chunks = compute.chunkCount(rows: n, workPerRow: f)
    input.withUnsafeBufferPointer { x in
      outputGradient.withUnsafeBufferPointer { g in
        inputGradient.withUnsafeMutableBufferPointer { gx in
          BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, r in
            let o = r.lowerBound * f
            reluBackward(x.baseAddress! + o, g.baseAddress! + o, gx.baseAddress! + o, count: r.count * f)
          }
        }
      }
    }
  }
}

/// The leaky rectifier, `x` for `x > 0` and `slope * x` otherwise.
public struct LeakyReLU<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The slope for negative inputs (PyTorch's default 0.01).
  public var slope: Scalar

  /// A leaky ReLU with the given negative `slope` (0.01 by default).
  public init(slope: Scalar = 0.01) { self.slope = slope }
  public func outputFeatures(forInput n: Int) -> Int { n }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    output.resize(rows: input.rows, columns: input.columns)
    let a = slope
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        for i in x.indices { y[i] = x[i] > 0 ? x[i] : a * x[i] }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    inputGradient.resize(rows: input.rows, columns: input.columns)
    let a = slope
    input.withUnsafeBufferPointer { x in
      outputGradient.withUnsafeBufferPointer { g in
        inputGradient.withUnsafeMutableBufferPointer { gx in
          for i in x.indices { gx[i] = x[i] > 0 ? g[i] : a * g[i] }
        }
      }
    }
  }
}

/// The Gaussian error linear unit, exact form: `x Φ(x) = x (1 + erf(x / √2)) / 2`
/// (PyTorch's default `approximate="none"`).
public struct GELU<Scalar: DMLScalar>: Layer, ParameterFree {
  /// A GELU layer (exact form). It has no parameters.
  public init() {}
  public func outputFeatures(forInput n: Int) -> Int { n }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    output.resize(rows: input.rows, columns: input.columns)
    let r = 1 / Scalar.sqrt(2)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        for i in x.indices { y[i] = x[i] * (1 + Scalar.erf(x[i] * r)) / 2 }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    inputGradient.resize(rows: input.rows, columns: input.columns)
    let r = 1 / Scalar.sqrt(2)
    let c = 1 / Scalar.sqrt(2 * Scalar.pi)
    input.withUnsafeBufferPointer { x in
      outputGradient.withUnsafeBufferPointer { g in
        inputGradient.withUnsafeMutableBufferPointer { gx in
          for i in x.indices {
            let v = x[i]
            let cdf = (1 + Scalar.erf(v * r)) / 2
            let pdf = c * Scalar.exp(-v * v / 2)
            gx[i] = g[i] * (cdf + v * pdf)
          }
        }
      }
    }
  }
}
