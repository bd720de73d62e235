@_exported import DMLKernels

/// A learned tensor with its gradient, as the optimizer and checkpoints see it.
///
/// Layers own their parameters. `backward` overwrites `gradient` (it does not accumulate), so
/// there is no separate zeroing step.
public struct Parameter<Scalar: DMLScalar>: Sendable {
  /// The name within its layer, for example `"weight"` or `"bias"`.
  public let name: String
  /// The logical shape, for saving (for example `[out, in]` for a linear weight).
  public let shape: [Int]
  /// The values, as a matrix (a bias or a vector is one row).
  public var value: Matrix<Scalar>
  /// The gradient of the loss with respect to `value`, written by the last backward pass.
  public var gradient: Matrix<Scalar>
  /// The optimizer parameter group: settings are looked up by this index (0 is the default
  /// group). Proxies, for example, go in a group with their own learning rate.
  public var group: Int
  /// Whether weight decay applies. Off for biases and normalisation parameters by default.
  public var decays: Bool
  /// Whether the optimizer updates it. State that a layer updates itself (BatchNorm's running
  /// statistics) is a non-trainable parameter, so that checkpoints save it with the weights.
  public var trainable: Bool
  /// Held still for now (a fine-tuning warm-up): still a trainable parameter, which checkpoints
  /// save as one with its optimizer state, but the optimizer skips it and a distributed step
  /// neither sums its gradient nor averages it as state. Not saved: the run sets it.
  public var frozen = false

  /// A parameter with the given logical `shape`, stored as a matrix of the same element count.
  public init(
    name: String, shape: [Int], value: Matrix<Scalar>, group: Int = 0, decays: Bool = true,
    trainable: Bool = true
  ) {
    precondition(
      shape.reduce(1, *) == value.count,
      "Parameter \(name): shape \(shape) does not hold \(value.count) values")
    self.name = name
    self.shape = shape
    self.value = value
    self.gradient = Matrix(rows: value.rows, columns: value.columns)
    self.group = group
    self.decays = decays
    self.trainable = trainable
  }

  /// The number of scalars.
  @inlinable public var count: Int { value.count }
}

/// Anything that draws from random generators while training (Dropout, seeded miners), so that
/// checkpoints can save and restore them.
public protocol RandomSourceContainer {
  /// Calls `visit` on every random generator that advances while training, always in the same
  /// order. The default visits none.
  mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void)
}

extension RandomSourceContainer {
  /// Visits nothing: the default for types without random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {}

  /// The state of every random generator, in visiting order.
  public var randomStates: [[UInt64]] {
    var copy = self
    var states: [[UInt64]] = []
    copy.visitRandomSources { states.append($0.state) }
    return states
  }

  /// Restores the generators from `randomStates`; false if the saved list does not fit.
  public mutating func restoreRandomStates(_ states: [[UInt64]]) -> Bool {
    guard states.count == randomStates.count, states.allSatisfy({ RandomSource(state: $0) != nil }) else { return false }
    var index = 0
    visitRandomSources { rng in
      rng = RandomSource(state: states[index])!
      index += 1
    }
    return true
  }
}

/// Walks the learned tensors of a component tree, with the path of scopes that leads to each.
///
/// A parameter's full name is the scopes entered so far, then its own `name`, joined by dots:
/// `network.0.1.weight`, `loss.class_weights`. These are the keys of checkpoints and of the
/// optimizer's state, in the manner of PyTorch's `state_dict`. Containers enter a scope for each
/// child that has one (a layer's position in a sequence, a loss's position in a sum) with
/// `scope(_:_:)`, and call `visit` on each tensor they hold.
public protocol ParameterVisitor<Scalar> {
  /// The element type of the parameters.
  associatedtype Scalar: DMLScalar
  /// Enters the child scope `name` (one path component, without dots).
  mutating func enterScope(_ name: String)
  /// Leaves the scope entered last.
  mutating func leaveScope()
  /// Visits one learned tensor of the current scope.
  mutating func visit(_ parameter: inout Parameter<Scalar>)
}

extension ParameterVisitor {
  /// Runs `body` inside the child scope `name`.
  @inlinable
  public mutating func scope(_ name: String, _ body: (inout Self) -> Void) {
    enterScope(name)
    body(&self)
    leaveScope()
  }
}

/// A visitor that keeps the current path and hands each parameter with its full name to a
/// closure. It builds a string per parameter: for checkpoints, tests and tools, not for the
/// training step.
public struct NamingVisitor<Scalar: DMLScalar>: ParameterVisitor {
  /// The scopes entered so far, outermost first.
  public private(set) var scopes: [String]
  @usableFromInline let body: (String, inout Parameter<Scalar>) -> Void

  /// A visitor that starts in the scopes `prefix` and calls `body` with each full name.
  public init(prefix: [String] = [], _ body: @escaping (String, inout Parameter<Scalar>) -> Void) {
    scopes = prefix
    self.body = body
  }

  /// The full name of a parameter called `name` in the current scope.
  public func fullName(_ name: String) -> String { (scopes + [name]).joined(separator: ".") }
  public mutating func enterScope(_ name: String) { scopes.append(name) }
  public mutating func leaveScope() { scopes.removeLast() }
  public mutating func visit(_ parameter: inout Parameter<Scalar>) { body(fullName(parameter.name), &parameter) }
}

/// Forwards a visit to another visitor through closures, for type-erased components
/// (`AnyEmbeddingLoss`), which cannot take a generic visitor through a stored closure.
public struct ForwardingVisitor<Scalar: DMLScalar>: ParameterVisitor {
  @usableFromInline let enter: (String) -> Void
  @usableFromInline let leave: () -> Void
  @usableFromInline let visitBody: (inout Parameter<Scalar>) -> Void

  @usableFromInline
  init(enter: @escaping (String) -> Void, leave: @escaping () -> Void, visitBody: @escaping (inout Parameter<Scalar>) -> Void) {
    self.enter = enter
    self.leave = leave
    self.visitBody = visitBody
  }

  /// Runs `body` with a visitor that forwards every call to `visitor`.
  @inlinable
  public static func forwarding<V: ParameterVisitor>(
    to visitor: inout V, _ body: (inout ForwardingVisitor) -> Void
  ) where V.Scalar == Scalar {
    withoutActuallyEscaping({ (name: String) in visitor.enterScope(name) }) { enter in
      withoutActuallyEscaping({ () in visitor.leaveScope() }) { leave in
        withoutActuallyEscaping({ (p: inout Parameter<Scalar>) in visitor.visit(&p) }) { visit in
          var forwarding = ForwardingVisitor(enter: enter, leave: leave, visitBody: visit)
          body(&forwarding)
        }
      }
    }
  }

  @inlinable public mutating func enterScope(_ name: String) { enter(name) }
  @inlinable public mutating func leaveScope() { leave() }
  @inlinable public mutating func visit(_ parameter: inout Parameter<Scalar>) { visitBody(&parameter) }
}

/// Anything that owns learned state: layers, networks, losses with proxies, class weights or
/// centers.
///
/// `visitParameters` has no default: a component that holds a learned tensor declares it, and a
/// component without one says so by conforming to `ParameterFree`. Every tensor that training
/// changes is a parameter, including those the optimizer does not step (`trainable == false`:
/// BatchNorm's running statistics, center loss's centers), so that checkpoints hold all of them.
public protocol ParameterContainer<Scalar>: RandomSourceContainer {
  /// The element type of the parameters: `Float` for training, `Double` for exact tests.
  associatedtype Scalar: DMLScalar
  /// Calls `visitor.visit` on every learned tensor, always in the same order, inside the scopes
  /// that name the children that hold them.
  mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar
}

/// A component that holds no learned state, said explicitly: its `visitParameters` visits nothing.
public protocol ParameterFree: ParameterContainer {}

extension ParameterFree {
  /// Visits nothing: the component declares that it holds no learned state.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {}
}

extension ParameterContainer {
  /// Calls `body` on every parameter with its full name (under the scopes `prefix`), in visiting
  /// order.
  public mutating func forEachParameter(prefix: [String] = [], _ body: (String, inout Parameter<Scalar>) -> Void) {
    withoutActuallyEscaping(body) { body in
      var visitor = NamingVisitor(prefix: prefix, body)
      visitParameters(&visitor)
    }
  }

  /// The number of learned scalars.
  public var parameterCount: Int {
    parameters.reduce(0) { $0 + $1.count }
  }

  /// A copy of every parameter, in visiting order.
  public var parameters: [Parameter<Scalar>] { namedParameters().map(\.parameter) }

  /// A copy of every parameter with its full name (under the scopes `prefix`), in visiting order.
  public func namedParameters(prefix: [String] = []) -> [(name: String, parameter: Parameter<Scalar>)] {
    var copy = self
    var list: [(name: String, parameter: Parameter<Scalar>)] = []
    copy.forEachParameter(prefix: prefix) { list.append(($0, $1)) }
    return list
  }

  /// Moves every parameter into `group` (for an optimizer parameter group).
  public mutating func assignParameterGroup(_ group: Int) {
    forEachParameter { $1.group = group }
  }
}
