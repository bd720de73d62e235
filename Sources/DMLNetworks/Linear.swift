/// A fully connected layer, `y = x Wᵀ + b`, computed per chunk of the batch: one chunk per core,
/// in parallel (see `BatchParallelism`).
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

  /// How many chunks of the batch run in parallel (`BatchParallelism`): one per thread of
  /// `compute` when each gets at least 2²⁰ multiply-adds.
  @inlinable
  func chunkCount(rows: Int, compute: ComputeContext) -> Int {
    compute.chunkCount(rows: rows, workPerRow: inputs * outputs, minimumWork: 1 << 20)
  }

  /// One GEMM per chunk of rows, the chunks in parallel (`BatchParallelism`).
  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(
      input.columns == inputs, "Linear(\(inputs), \(outputs)) got \(input.columns) input features")
    let (n, nIn, nOut) = (input.rows, inputs, outputs)
    output.resize(rows: n, columns: nOut)
    guard n > 0 else { return }
    let chunks = chunkCount(rows: n, compute: compute)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        bias.value.withUnsafeBufferPointer { b in
          weight.value.withUnsafeBufferPointer { w in
            BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, r in
              ChunkedAffine.forward(
                x.baseAddress! + r.lowerBound * nIn, rows: r.count, inputs: nIn, weight: w.baseAddress!,
                bias: b.baseAddress!, outputs: nOut, into: y.baseAddress! + r.lowerBound * nOut, engine: compute.engine)
            }
          }
        }
      }
    }
  }

  /// Per chunk, in parallel: the weight and bias gradients of the chunk's share of the
  /// *outputs*, over the whole batch, then the input gradient of its share of the rows. No chunk
  /// writes what another writes, so there are no partial gradients to add, and every gradient
  /// value is the same sum over the batch, in the same order, whatever the chunk count.
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let (n, nIn, nOut) = (input.rows, inputs, outputs)
    precondition(
      outputGradient.rows == n && outputGradient.columns == nOut,
      "Linear(\(nIn), \(nOut)).backward: the output gradient is \(outputGradient.rows)x\(outputGradient.columns), expected \(n)x\(nOut)")
    // The GEMMs overwrite the gradients; only an empty batch needs them zeroed.
    weight.gradient.resize(rows: nOut, columns: nIn, zeroed: n == 0)
    bias.gradient.resize(rows: 1, columns: nOut, zeroed: n == 0)
    if propagate { inputGradient.resize(rows: n, columns: nIn) }
    guard n > 0 else { return }
    let chunks = chunkCount(rows: n, compute: compute)
    input.withUnsafeBufferPointer { xBuffer in
      outputGradient.withUnsafeBufferPointer { dyBuffer in
        weight.value.withUnsafeBufferPointer { wBuffer in
          weight.gradient.withUnsafeMutableBufferPointer { dwBuffer in
            bias.gradient.withUnsafeMutableBufferPointer { dbBuffer in
              inputGradient.withUnsafeMutableBufferPointer { dxBuffer in
                let (x, dy, w) = (xBuffer.baseAddress!, dyBuffer.baseAddress!, wBuffer.baseAddress!)
                let (dw, db, dx) = (dwBuffer.baseAddress!, dbBuffer.baseAddress!, dxBuffer.baseAddress)
                BatchParallelism.forEachChunk(rows: n, chunks: chunks) { chunk, rows in
                  let outs = BatchParallelism.rows(ofChunk: chunk, chunks: chunks, rows: nOut)
                  if !outs.isEmpty {
                    ChunkedAffine.outputGradients(
                      x, dy, rows: n, inputs: nIn, outputs: nOut, of: outs, weightGradient: dw, biasGradient: db,
                      engine: compute.engine)
                  }
                  if propagate {
                    ChunkedAffine.inputGradient(
                      dy + rows.lowerBound * nOut, rows: rows.count, inputs: nIn, outputs: nOut, weight: w,
                      into: dx! + rows.lowerBound * nIn, engine: compute.engine)
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&weight)
    visitor.visit(&bias)
  }
}
