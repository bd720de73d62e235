/// Whether a pass trains (batch statistics, dropout on) or infers.
public enum ForwardMode: Sendable, Equatable {
  /// Training: batch statistics, dropout on.
  case training
  /// Inference: running statistics, dropout off.
  case inference
}

/// A differentiable map from a batch (one sample per row) to a batch, with a hand-written
/// backward pass.
///
/// Layers do not cache their input: the caller keeps the input and the output of the forward
/// pass and hands both back to `backward`. A composed network therefore owns every activation
/// buffer once, and reuses it from step to step without allocating.
public protocol Layer<Scalar>: ParameterContainer {
  /// The number of features of one output row, given that of an input row.
  func outputFeatures(forInput inputFeatures: Int) -> Int

  /// Computes the output for `input` into `output`, resizing it as needed, splitting the work
  /// and choosing the GEMM engine as `compute` says.
  mutating func forward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext)

  /// Given the pass's `input` and `output` and the gradient of the loss with respect to the
  /// output, overwrites the gradients of the parameters and, if `propagate`, writes the gradient
  /// with respect to the input into `inputGradient`, splitting the work as `compute` says.
  mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext)

  /// True when the layer is currently the identity (a switched-off `Optionally`): a `Chain`
  /// then skips it instead of copying the activations and their gradient through it.
  var isIdentity: Bool { get }

  /// How many positions the layer takes in the numbering of an enclosing sequence: 1, or for a
  /// `Chain`, the sum of its parts', so that nested chains number their layers as one flat
  /// sequence (as `torch.nn.Sequential` does).
  static var sequenceLength: Int { get }

  /// Visits the parameters as element `index` of an enclosing sequence: inside the scope
  /// `"index"`. A `Chain` numbers its own parts from `index` instead.
  mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V, asElement index: Int) where V.Scalar == Scalar
}

extension Layer {
  /// False: a layer computes something unless it says otherwise.
  @inlinable public var isIdentity: Bool { false }

  /// One position: a layer is one element of a sequence unless it is a sequence itself.
  @inlinable public static var sequenceLength: Int { 1 }

  /// Visits the parameters inside the scope `"index"`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V, asElement index: Int) where V.Scalar == Scalar {
    visitor.enterScope(String(index))
    visitParameters(&visitor)
    visitor.leaveScope()
  }

  /// The output for `input`, in a new matrix (inference mode and the automatic compute context
  /// unless told otherwise).
  public mutating func callAsFunction(
    _ input: Matrix<Scalar>, mode: ForwardMode = .inference, compute: ComputeContext = .automatic
  ) -> Matrix<Scalar> {
    var out = Matrix<Scalar>()
    forward(input, into: &out, mode: mode, compute: compute)
    return out
  }
}

/// A network that maps a batch of inputs to embeddings and, backwards, the gradient with respect
/// to the embeddings into parameter gradients.
///
/// It owns its output and gradient buffers; the embeddings of the last forward pass stay
/// readable in `embeddings` until the next one.
public protocol EmbeddingNetwork<Scalar>: ParameterContainer {
  /// The embeddings of the last forward pass, one row per input row.
  var embeddings: Matrix<Scalar> { get }
  /// The embedding dimension for the configured input size.
  var embeddingDimension: Int { get }
  /// The number of features of one input row.
  var inputFeatures: Int { get }
  /// Runs the forward pass on `input`, as `compute` says; the result is in `embeddings`.
  mutating func forward(_ input: Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext)
  /// Back-propagates `gradient` (d loss / d embeddings of the last forward pass) into the
  /// parameter gradients, as `compute` says.
  mutating func backward(_ gradient: Matrix<Scalar>, compute: ComputeContext)
}

/// An `EmbeddingNetwork` built from one layer (usually a composed chain), holding the buffers
/// that the forward and backward passes reuse.
public struct Network<Body: Layer>: EmbeddingNetwork {
  /// The element type, the body's.
  public typealias Scalar = Body.Scalar
  /// The composed layers.
  public var body: Body
  /// The number of features of one input row.
  public let inputFeatures: Int
  @usableFromInline var lastInput = Matrix<Scalar>()
  @usableFromInline var output = Matrix<Scalar>()
  @usableFromInline var inputGradient = Matrix<Scalar>()

  /// A network that runs `body` on rows of `inputFeatures` features.
  @inlinable
  public init(inputFeatures: Int, body: Body) {
    self.inputFeatures = inputFeatures
    self.body = body
  }

  /// The body's output of the last forward pass, one row per input row.
  @inlinable public var embeddings: Matrix<Scalar> { output }

  /// The body's output features for `inputFeatures` input features.
  public var embeddingDimension: Int { body.outputFeatures(forInput: inputFeatures) }

  /// Runs `body` on `input` (`inputFeatures` columns), keeping a copy of it for `backward`; the
  /// result is in `embeddings`.
  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    precondition(
      input.columns == inputFeatures,
      "Network expects \(inputFeatures) features per row, got \(input.columns)")
    lastInput.assign(input)  // a private copy: the caller may refill its batch buffer
    body.forward(input, into: &output, mode: mode, compute: compute)
  }

  /// Back-propagates `gradient` (shaped like `embeddings`) through `body` into its parameter
  /// gradients; the gradient with respect to the input is not computed.
  @inlinable
  public mutating func backward(_ gradient: Matrix<Scalar>, compute: ComputeContext) {
    precondition(
      gradient.rows == output.rows && gradient.columns == output.columns,
      "Embedding gradient is \(gradient.rows)x\(gradient.columns), embeddings are "
        + "\(output.rows)x\(output.columns)")
    body.backward(
      input: lastInput, output: output, outputGradient: gradient,
      inputGradient: &inputGradient, propagate: false, compute: compute)
  }

  /// Visits the body's parameters, named as the body names them (no scope of its own).
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    body.visitParameters(&visitor)
  }

  /// Visits the body's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    body.visitRandomSources(visit)
  }
}

extension EmbeddingNetwork {
  /// Rows per batch when embedding rows of `features` values: 1,024 rows of up to 2,048 values,
  /// fewer for wider rows, so that a batch holds about 2²¹ input values (55 images of 3×112×112).
  /// A network's activations are several times its input (a ResNet's first convolution gives
  /// 5 values per input value), and every layer keeps its own: 1,024 such images would take
  /// gigabytes.
  @inlinable
  public static func embeddingBatchSize(features: Int) -> Int {
    Swift.max(1, Swift.min(1024, (1 << 21) / Swift.max(1, features)))
  }

  /// Embeds every row of `input` in inference mode, in batches of `batchSize` rows (by default
  /// `embeddingBatchSize(features:)`), into a new matrix.
  @inlinable
  public mutating func embed(
    _ input: Matrix<Scalar>, batchSize: Int? = nil, compute: ComputeContext = .automatic
  ) -> Matrix<Scalar> {
    let batchSize = Swift.max(1, batchSize ?? Self.embeddingBatchSize(features: input.columns))
    var result = Matrix<Scalar>(rows: input.rows, columns: embeddingDimension)
    var batch = Matrix<Scalar>()
    let d = input.columns
    var start = 0
    while start < input.rows {
      let end = Swift.min(input.rows, start + batchSize)
      batch.resize(rows: end - start, columns: d)
      input.withUnsafeBufferPointer { src in
        batch.withUnsafeMutableBufferPointer { dst in
          dst.baseAddress!.update(from: src.baseAddress! + start * d, count: (end - start) * d)
        }
      }
      forward(batch, mode: .inference, compute: compute)
      let e = embeddings
      let k = e.columns
      e.withUnsafeBufferPointer { src in
        result.withUnsafeMutableBufferPointer { dst in
          dst.baseAddress!.advanced(by: start * k).update(from: src.baseAddress!, count: src.count)
        }
      }
      start = end
    }
    return result
  }
}
