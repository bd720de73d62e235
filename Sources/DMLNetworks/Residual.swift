/// A residual connection: `output = input + body(input)` (He et al. 2016). The body must keep the
/// width of its input. Its parameters are named in the scope `body`, as in a PyTorch module whose
/// `forward` returns `x + self.body(x)`: `3.body.0.weight` when the block is element 3 of a
/// sequence.
///
/// It follows the `Layer` contract like every layer: it does not keep its input (the caller
/// hands it back to `backward`), but it keeps the body's own output, which the body's backward
/// pass needs and which differs from the block's output by the skip.
///
/// ```swift
/// let block = Residual<Float> {
///   Linear<Float>(64, 64, rng: &rng)
///   ReLU<Float>()
///   Linear<Float>(64, 64, rng: &rng)
/// }
/// ```
public struct Residual<Body: Layer>: Layer {
  /// The element type, the body's.
  public typealias Scalar = Body.Scalar
  /// The layers on the residual path.
  public var body: Body
  @usableFromInline var bodyOutput = Matrix<Scalar>()

  /// A residual block around `body`.
  public init(_ body: Body) { self.body = body }

  /// A residual block around the layers of `body`, applied in order.
  public init(@Sequential _ body: () -> Body) { self.body = body() }

  /// The input's width: the body must keep it.
  public func outputFeatures(forInput n: Int) -> Int {
    precondition(body.outputFeatures(forInput: n) == n, "Residual: the body maps \(n) features to \(body.outputFeatures(forInput: n))")
    return n
  }

  /// `input + body(input)` (`add` checks that the body kept the width).
  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    body.forward(input, into: &bodyOutput, mode: mode, compute: compute)
    output.assign(bodyOutput)
    output.add(input)
  }

  /// The body's parameter gradients and, if `propagate`, `outputGradient` (the skip) plus the
  /// body's input gradient.
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    body.backward(input: input, output: bodyOutput, outputGradient: outputGradient, inputGradient: &inputGradient, propagate: propagate, compute: compute)
    if propagate { inputGradient.add(outputGradient) }
  }

  /// Visits the body's parameters in the scope `body`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.enterScope("body")
    body.visitParameters(&visitor)
    visitor.leaveScope()
  }

  /// Visits the body's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { body.visitRandomSources(visit) }
}
