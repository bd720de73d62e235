/// A network whose concrete type is erased, for networks chosen at run time (the registry, the
/// command line, a plugin).
///
/// As with `AnyEmbeddingLoss`, the closures are created where the concrete type is known, so the
/// forward and backward passes run code specialised there; a step pays a handful of indirect
/// calls (forward, backward, the parameter visits), where an existential (`any EmbeddingNetwork`)
/// would run every inner loop as unspecialised generic code.
///
/// It is a value, like the networks it wraps: a copy (for example the untrained baseline a run
/// keeps) is independent of the original; the first mutation of a shared copy copies the network.
public struct AnyEmbeddingNetwork<Scalar: DMLScalar>: EmbeddingNetwork {
  @usableFromInline var witness: Witness
  /// The number of features of one input row.
  public let inputFeatures: Int

  /// The closures over one boxed network.
  @usableFromInline
  struct Witness {
    /// The only strong reference to the box (the closures hold it unowned), so that
    /// `isKnownUniquelyReferenced` tells whether another copy shares it.
    @usableFromInline var owner: AnyObject
    @usableFromInline let forward: (Matrix<Scalar>, ForwardMode) -> Void
    @usableFromInline let backward: (Matrix<Scalar>) -> Void
    @usableFromInline let embeddings: () -> Matrix<Scalar>
    @usableFromInline let embeddingDimension: () -> Int
    @usableFromInline let visit: (inout ForwardingVisitor<Scalar>) -> Void
    @usableFromInline let visitRandom: ((inout RandomSource) -> Void) -> Void
    @usableFromInline let copy: () -> Witness
    @usableFromInline let unwrap: () -> Any

    @inlinable
    init<N: EmbeddingNetwork>(_ network: N) where N.Scalar == Scalar {
      let box = Box(network)
      owner = box
      forward = { [unowned(unsafe) box] in box.value.forward($0, mode: $1) }
      backward = { [unowned(unsafe) box] in box.value.backward($0) }
      embeddings = { [unowned(unsafe) box] in box.value.embeddings }
      embeddingDimension = { [unowned(unsafe) box] in box.value.embeddingDimension }
      visit = { [unowned(unsafe) box] in box.value.visitParameters(&$0) }
      visitRandom = { [unowned(unsafe) box] in box.value.visitRandomSources($0) }
      copy = { [unowned(unsafe) box] in Witness(box.value) }
      unwrap = { [unowned(unsafe) box] in box.value }
    }
  }

  /// Wraps `network`.
  @inlinable
  public init<N: EmbeddingNetwork>(_ network: N) where N.Scalar == Scalar {
    if let erased = network as? AnyEmbeddingNetwork<Scalar> {
      self = erased
      return
    }
    witness = Witness(network)
    inputFeatures = network.inputFeatures
  }

  /// The wrapped network as its concrete type, or `nil` when it has another type.
  public func unwrapped<N: EmbeddingNetwork>(as _: N.Type = N.self) -> N? { witness.unwrap() as? N }

  /// Gives this copy its own network before a mutation, if another copy shares it.
  @inlinable
  mutating func makeUnique() {
    if !isKnownUniquelyReferenced(&witness.owner) { witness = witness.copy() }
  }

  /// The wrapped network's embeddings of the last forward pass.
  @inlinable public var embeddings: Matrix<Scalar> { witness.embeddings() }
  /// The wrapped network's embedding dimension.
  public var embeddingDimension: Int { witness.embeddingDimension() }

  /// Runs the wrapped network's forward pass.
  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, mode: ForwardMode) {
    makeUnique()
    witness.forward(input, mode)
  }

  /// Runs the wrapped network's backward pass.
  @inlinable
  public mutating func backward(_ gradient: Matrix<Scalar>) {
    makeUnique()
    witness.backward(gradient)
  }

  /// Visits the wrapped network's parameters, through one forwarding visitor.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    makeUnique()
    let visit = witness.visit
    ForwardingVisitor.forwarding(to: &visitor) { visit(&$0) }
  }

  /// Visits the wrapped network's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    makeUnique()
    witness.visitRandom(visit)
  }
}
