import DMLCore

/// An optimizer whose concrete type is erased, for optimizers chosen at run time (the registry,
/// the command line). The update is the wrapped optimizer's, specialised where it was wrapped;
/// the names of the slots are kept here, so a visit costs one indirect call per parameter.
/// Copies are independent values, like the optimizers they wrap.
public struct AnyOptimizer<Scalar: DMLScalar>: Optimizer {
  @usableFromInline var witness: Witness
  /// The slot of each parameter name, and the path being visited.
  public var slots: ParameterSlots

  /// The closures over one boxed optimizer.
  @usableFromInline
  struct Witness {
    /// Held by the copies of this witness only (the closures hold the box): unique when no
    /// other copy shares the box.
    @usableFromInline var token = UniquenessToken()
    @usableFromInline let update: (inout Parameter<Scalar>, Int) -> Void
    @usableFromInline let learningRate: () -> Double
    @usableFromInline let setLearningRate: (Double) -> Void
    @usableFromInline let scale: () -> Double
    @usableFromInline let setScale: (Double) -> Void
    @usableFromInline let groups: () -> [ParameterGroup]
    @usableFromInline let setGroups: ([ParameterGroup]) -> Void
    @usableFromInline let state: () -> SlotState<Scalar>
    @usableFromInline let setState: (SlotState<Scalar>) -> Void
    @usableFromInline let compute: () -> ComputeContext
    @usableFromInline let setCompute: (ComputeContext) -> Void
    @usableFromInline let copy: () -> Witness
    @usableFromInline let unwrap: () -> Any

    @inlinable
    init<O: Optimizer>(_ optimizer: O) where O.Scalar == Scalar {
      let box = Box(optimizer)
      update = { box.value.update(&$0, slot: $1) }
      learningRate = { box.value.learningRate }
      setLearningRate = { box.value.learningRate = $0 }
      scale = { box.value.learningRateScale }
      setScale = { box.value.learningRateScale = $0 }
      groups = { box.value.groups }
      setGroups = { box.value.groups = $0 }
      state = { box.value.slotState }
      setState = { box.value.slotState = $0 }
      compute = { box.value.compute }
      setCompute = { box.value.compute = $0 }
      copy = { Witness(box.value) }
      unwrap = { box.value }
    }
  }

  /// Wraps `optimizer`, with its slots.
  @inlinable
  public init<O: Optimizer>(_ optimizer: O) where O.Scalar == Scalar {
    if let erased = optimizer as? AnyOptimizer<Scalar> {
      self = erased
      return
    }
    witness = Witness(optimizer)
    slots = optimizer.slots
  }

  /// The wrapped optimizer as its concrete type, or `nil` when it has another type. Its
  /// per-slot state follows this wrapper's slot numbering (`slots`), not its own `slots`, which
  /// stay as they were when it was wrapped.
  public func unwrapped<O: Optimizer>(as _: O.Type = O.self) -> O? { witness.unwrap() as? O }

  @inlinable
  mutating func makeUnique() {
    if !isKnownUniquelyReferenced(&witness.token) { witness = witness.copy() }
  }

  /// The wrapped optimizer's base learning rate.
  public var learningRate: Double {
    get { witness.learningRate() }
    set {
      makeUnique()
      witness.setLearningRate(newValue)
    }
  }

  /// The wrapped optimizer's schedule factor.
  public var learningRateScale: Double {
    get { witness.scale() }
    set {
      makeUnique()
      witness.setScale(newValue)
    }
  }

  /// The wrapped optimizer's parameter groups.
  public var groups: [ParameterGroup] {
    get { witness.groups() }
    set {
      makeUnique()
      witness.setGroups(newValue)
    }
  }

  /// The wrapped optimizer's per-slot buffers and step counts.
  public var slotState: SlotState<Scalar> {
    get { witness.state() }
    set {
      makeUnique()
      witness.setState(newValue)
    }
  }

  /// The wrapped optimizer's compute context.
  public var compute: ComputeContext {
    get { witness.compute() }
    set {
      makeUnique()
      witness.setCompute(newValue)
    }
  }

  /// Updates `parameter` with the wrapped optimizer's rule.
  @inlinable
  public mutating func update(_ parameter: inout Parameter<Scalar>, slot: Int) {
    makeUnique()
    witness.update(&parameter, slot)
  }
}
