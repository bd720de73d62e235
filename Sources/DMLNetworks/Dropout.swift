/// Dropout (Srivastava et al. 2014): in training mode each value is zeroed with probability `p`
/// and the rest are scaled by `1 / (1 − p)`; in inference mode it is the identity.
///
/// The mask comes from the layer's own seeded generator, so runs are reproducible.
public struct Dropout<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The probability of zeroing a value.
  public let probability: Double
  /// The generator for the masks.
  public var rng: RandomSource
  @usableFromInline var mask = Matrix<Scalar>()
  @usableFromInline var lastMode = ForwardMode.inference

  /// A layer that zeroes values with `probability`, in `[0, 1)`. Its mask generator is split
  /// from `rng`, which advances by one draw.
  public init(probability: Double, rng: inout RandomSource) {
    precondition(probability >= 0 && probability < 1, "Dropout probability must be in [0, 1)")
    self.probability = probability
    self.rng = rng.split()
  }

  public func outputFeatures(forInput n: Int) -> Int { n }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { visit(&rng) }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    lastMode = mode
    guard mode == .training, probability > 0 else {
      output.assign(input)
      return
    }
    mask.resize(rows: input.rows, columns: input.columns)
    output.resize(rows: input.rows, columns: input.columns)
    let keep = Scalar(1 / (1 - probability))
    let p = probability
    mask.withUnsafeMutableBufferPointer { m in
      for i in m.indices { m[i] = rng.uniform(Double.self) < p ? 0 : keep }
    }
    input.withUnsafeBufferPointer { x in
      mask.withUnsafeBufferPointer { m in
        output.withUnsafeMutableBufferPointer { y in
          for i in y.indices { y[i] = x[i] * m[i] }
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
    guard lastMode == .training, probability > 0 else {
      inputGradient.assign(outputGradient)
      return
    }
    inputGradient.assign(outputGradient)
    inputGradient.multiply(by: mask)
  }
}
