/// A fully connected layer, `y = x Wᵀ + b`.
///
/// The weight is `outputs × inputs`, PyTorch's `nn.Linear` layout, so weights move between the
/// two without transposing. Initialisation is He normal with a zero bias.
public struct Linear<Scalar: DMLScalar>: Layer {
  /// The weight, `outputs × inputs`.
  public var weight: Parameter<Scalar>
  /// The bias, one row of `outputs`.
  public var bias: Parameter<Scalar>
  /// Input features.
  public let inputs: Int
  /// Output features.
  public let outputs: Int

  /// A He-initialised layer.
  public init(_ inputs: Int, _ outputs: Int, rng: inout RandomSource) {
    self.init(
      weight: heNormal(rows: outputs, columns: inputs, fanIn: inputs, rng: &rng),
      bias: Matrix(rows: 1, columns: outputs))
  }

  /// A layer with the given weight (`outputs × inputs`) and bias (`1 × outputs`).
  public init(weight: Matrix<Scalar>, bias: Matrix<Scalar>) {
    precondition(
      bias.count == weight.rows,
      "Linear: bias has \(bias.count) values for \(weight.rows) outputs")
    inputs = weight.columns
    outputs = weight.rows
    var b = bias
    b.reshape(rows: 1, columns: bias.count)
    self.weight = Parameter(name: "weight", shape: [outputs, inputs], value: weight)
    self.bias = Parameter(name: "bias", shape: [outputs], value: b, decays: false)
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n == inputs, "Linear(\(inputs), \(outputs)) got \(n) input features")
    return outputs
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode
  ) {
    precondition(
      input.columns == inputs, "Linear(\(inputs), \(outputs)) got \(input.columns) input features")
    // The bias goes in first and GEMM accumulates onto it: one pass over the output, not two.
    output.resize(rows: input.rows, columns: outputs)
    bias.value.withUnsafeBufferPointer { output.fillRows(with: $0) }
    gemm(input, weight.value, transposeB: true, beta: 1, into: &output)
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool
  ) {
    gemm(outputGradient, transposeA: true, input, into: &weight.gradient)
    bias.gradient.withUnsafeMutableBufferPointer { outputGradient.columnSums(into: $0) }
    if propagate { gemm(outputGradient, weight.value, into: &inputGradient) }
  }

  @inlinable
  public mutating func visitParameters(_ visit: (inout Parameter<Scalar>) -> Void) {
    visit(&weight)
    visit(&bias)
  }
}
