@_exported import DMLCore

/// Two layers applied one after the other. Nesting chains gives a network whose type spells
/// out every layer, so the compiler specialises and inlines the whole pass.
public struct Chain<First: Layer, Second: Layer>: Layer where First.Scalar == Second.Scalar {
  /// The scalar type that both layers share.
  public typealias Scalar = First.Scalar
  /// The layer applied first.
  public var first: First
  /// The layer applied to the first one's output.
  public var second: Second
  @usableFromInline var middle = Matrix<Scalar>()
  @usableFromInline var middleGradient = Matrix<Scalar>()

  /// A chain that applies `first`, then `second` to its output.
  public init(_ first: First, _ second: Second) {
    self.first = first
    self.second = second
  }

  public func outputFeatures(forInput n: Int) -> Int {
    second.outputFeatures(forInput: first.outputFeatures(forInput: n))
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    // A switched-off part is skipped: the other writes straight into `output`.
    if second.isIdentity {
      first.forward(input, into: &output, mode: mode, compute: compute)
    } else if first.isIdentity {
      second.forward(input, into: &output, mode: mode, compute: compute)
    } else {
      first.forward(input, into: &middle, mode: mode, compute: compute)
      second.forward(middle, into: &output, mode: mode, compute: compute)
    }
  }

  /// True when both parts are the identity.
  @inlinable public var isIdentity: Bool { first.isIdentity && second.isIdentity }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    if second.isIdentity {
      first.backward(
        input: input, output: output, outputGradient: outputGradient,
        inputGradient: &inputGradient, propagate: propagate, compute: compute)
    } else if first.isIdentity {
      second.backward(
        input: input, output: output, outputGradient: outputGradient,
        inputGradient: &inputGradient, propagate: propagate, compute: compute)
    } else {
      second.backward(
        input: middle, output: output, outputGradient: outputGradient,
        inputGradient: &middleGradient, propagate: true, compute: compute)
      first.backward(
        input: input, output: middle, outputGradient: middleGradient,
        inputGradient: &inputGradient, propagate: propagate, compute: compute)
    }
  }

  /// The parts' positions, added: nested chains form one flat sequence.
  @inlinable public static var sequenceLength: Int { First.sequenceLength + Second.sequenceLength }

  /// Visits the parts as elements `0, 1, …` of one flat sequence: `0.weight`, `1.running_mean`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitParameters(&visitor, asElement: 0)
  }

  /// Numbers the parts from `index` on, in the enclosing sequence's scope.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V, asElement index: Int) where V.Scalar == Scalar {
    first.visitParameters(&visitor, asElement: index)
    second.visitParameters(&visitor, asElement: index + First.sequenceLength)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    first.visitRandomSources(visit)
    second.visitRandomSources(visit)
  }
}

/// A run-time number of layers of one type (for example the hidden blocks of an MLP), applied
/// in order. An empty stack is the identity.
public struct Stack<Element: Layer>: Layer {
  /// The scalar type of the layers.
  public typealias Scalar = Element.Scalar
  /// The layers, applied first to last.
  public var layers: [Element]
  @usableFromInline var activations: [Matrix<Scalar>]
  @usableFromInline var gradients: [Matrix<Scalar>]

  /// A stack that applies `layers` first to last; an empty list gives the identity.
  public init(_ layers: [Element]) {
    self.layers = layers
    activations = Array(repeating: Matrix(), count: max(0, layers.count - 1))
    gradients = activations
  }

  public func outputFeatures(forInput n: Int) -> Int {
    layers.reduce(n) { $1.outputFeatures(forInput: $0) }
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    let last = layers.count - 1
    guard last >= 0 else {
      output.assign(input)
      return
    }
    for i in 0...last {
      let x = i == 0 ? input : activations[i - 1]
      if i == last {
        layers[i].forward(x, into: &output, mode: mode, compute: compute)
      } else {
        var y = Matrix<Scalar>()
        swap(&y, &activations[i])
        layers[i].forward(x, into: &y, mode: mode, compute: compute)
        swap(&y, &activations[i])
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let last = layers.count - 1
    guard last >= 0 else {
      if propagate { inputGradient.assign(outputGradient) }
      return
    }
    for i in stride(from: last, through: 0, by: -1) {
      let x = i == 0 ? input : activations[i - 1]
      let y = i == last ? output : activations[i]
      let g = i == last ? outputGradient : gradients[i]
      if i == 0 {
        layers[i].backward(
          input: x, output: y, outputGradient: g, inputGradient: &inputGradient,
          propagate: propagate, compute: compute)
      } else {
        var gx = Matrix<Scalar>()
        swap(&gx, &gradients[i - 1])
        layers[i].backward(
          input: x, output: y, outputGradient: g, inputGradient: &gx, propagate: true, compute: compute)
        swap(&gx, &gradients[i - 1])
      }
    }
  }

  /// Visits each layer in the scope of its index, `0.…`, `1.…`; a layer that is a `Chain` numbers
  /// its own parts inside that scope (`0.0.weight`, `0.1.running_mean`).
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    for i in layers.indices { visitor.scope(String(i)) { layers[i].visitParameters(&$0) } }
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    for i in layers.indices { layers[i].visitRandomSources(visit) }
  }
}

/// A layer that can be switched off, becoming the identity, without changing the network's
/// type (for example an optional BatchNorm or final L2 normalisation).
public struct Optionally<Wrapped: Layer>: Layer {
  /// The scalar type of the wrapped layer.
  public typealias Scalar = Wrapped.Scalar
  /// The layer applied when enabled.
  public var wrapped: Wrapped
  /// Whether the layer is applied.
  public var isEnabled: Bool

  /// Wraps `wrapped`, which is applied only if `enabled`; otherwise the layer is the identity.
  public init(_ wrapped: Wrapped, enabled: Bool) {
    self.wrapped = wrapped
    self.isEnabled = enabled
  }

  public func outputFeatures(forInput n: Int) -> Int {
    isEnabled ? wrapped.outputFeatures(forInput: n) : n
  }

  /// True when switched off (or when the wrapped layer is itself the identity).
  @inlinable public var isIdentity: Bool { !isEnabled || wrapped.isIdentity }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    if isEnabled {
      wrapped.forward(input, into: &output, mode: mode, compute: compute)
    } else {
      output.assign(input)
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    if isEnabled {
      wrapped.backward(
        input: input, output: output, outputGradient: outputGradient,
        inputGradient: &inputGradient, propagate: propagate, compute: compute)
    } else if propagate {
      inputGradient.assign(outputGradient)
    }
  }

  /// Visits the wrapped layer's parameters when enabled, under the names it gives them (no scope
  /// of its own, so switching it changes no other parameter's name).
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    if isEnabled { wrapped.visitParameters(&visitor) }
  }

  /// As element `index` of a sequence: the wrapped layer's own naming there (its index, or the
  /// name of a `Named` layer), when enabled.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V, asElement index: Int) where V.Scalar == Scalar {
    if isEnabled { wrapped.visitParameters(&visitor, asElement: index) }
  }

  /// The wrapped layer's positions in a sequence (a wrapped `Chain` of two takes two), so that
  /// the layers after it keep their numbers.
  @inlinable public static var sequenceLength: Int { Wrapped.sequenceLength }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    if isEnabled { wrapped.visitRandomSources(visit) }
  }
}

/// Builds nested `Chain`s from a list of layers: `Sequential { Linear(...); ReLU() }`.
@resultBuilder
public enum Sequential {
  /// The first layer of the block, as it is.
  public static func buildPartialBlock<L: Layer>(first: L) -> L { first }
  /// Appends `next` to the layers built so far: `Chain(accumulated, next)`.
  public static func buildPartialBlock<A: Layer, B: Layer>(accumulated: A, next: B) -> Chain<A, B>
  where A.Scalar == B.Scalar {
    Chain(accumulated, next)
  }
}

/// Composes layers with the `Sequential` builder into one statically typed layer.
public func sequential<L: Layer>(@Sequential _ body: () -> L) -> L { body() }

/// Turns image rows into feature rows. Batches are already one row per image (NHWC), so this
/// copies; it exists so that networks read like their PyTorch counterparts.
public struct Flatten<Scalar: DMLScalar>: Layer, ParameterFree {
  /// A flatten layer. It has no parameters.
  public init() {}
  public func outputFeatures(forInput n: Int) -> Int { n }
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    output.assign(input)
  }
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    if propagate { inputGradient.assign(outputGradient) }
  }
}
