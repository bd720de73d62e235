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

/// Anything that owns parameters: layers, networks, losses with proxies or class weights.
public protocol ParameterContainer<Scalar>: RandomSourceContainer {
  /// The element type of the parameters: `Float` for training, `Double` for exact tests.
  associatedtype Scalar: DMLScalar
  /// Calls `visit` on every parameter, always in the same order.
  mutating func visitParameters(_ visit: (inout Parameter<Scalar>) -> Void)
}

extension ParameterContainer {
  /// The number of learned scalars.
  public var parameterCount: Int {
    var copy = self
    var n = 0
    copy.visitParameters { n += $0.count }
    return n
  }

  /// A copy of every parameter, in visiting order.
  public var parameters: [Parameter<Scalar>] {
    var copy = self
    var list: [Parameter<Scalar>] = []
    copy.visitParameters { list.append($0) }
    return list
  }

  /// Moves every parameter into `group` (for an optimizer parameter group).
  public mutating func assignParameterGroup(_ group: Int) {
    visitParameters { $0.group = group }
  }
}
