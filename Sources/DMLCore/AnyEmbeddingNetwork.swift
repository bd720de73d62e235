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
    /// Held by the copies of this witness only (the closures hold the box): unique when no
    /// other copy shares the box.
    @usableFromInline var token = UniquenessToken()
    @usableFromInline let forward: (Matrix<Scalar>, ForwardMode, ComputeContext) -> Void
    @usableFromInline let backward: (Matrix<Scalar>, ComputeContext) -> Void
    @usableFromInline let embeddings: () -> Matrix<Scalar>
    @usableFromInline let embeddingDimension: () -> Int
    @usableFromInline let visit: (inout ForwardingVisitor<Scalar>) -> Void
    @usableFromInline let visitRandom: ((inout RandomSource) -> Void) -> Void
    @usableFromInline let copy: () -> Witness
    @usableFromInline let unwrap: () -> Any

    @inlinable
    init<N: EmbeddingNetwork>(_ network: N) where N.Scalar == Scalar {
      let box = Box(network)
      forward = { box.value.forward($0, mode: $1, compute: $2) }
      backward = { box.value.backward($0, compute: $1) }
      embeddings = { box.value.embeddings }
      embeddingDimension = { box.value.embeddingDimension }
      visit = { box.value.visitParameters(&$0) }
      visitRandom = { box.value.visitRandomSources($0) }
      copy = { Witness(box.value) }
      unwrap = { box.value }
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
    if !isKnownUniquelyReferenced(&witness.token) { witness = witness.copy() }
  }

  /// The wrapped network's embeddings of the last forward pass.
  @inlinable public var embeddings: Matrix<Scalar> { witness.embeddings() }
  /// The wrapped network's embedding dimension.
  public var embeddingDimension: Int { witness.embeddingDimension() }

  /// Runs the wrapped network's forward pass.
  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    makeUnique()
    witness.forward(input, mode, compute)
  }

  /// Runs the wrapped network's backward pass.
  @inlinable
  public mutating func backward(_ gradient: Matrix<Scalar>, compute: ComputeContext) {
    makeUnique()
    witness.backward(gradient, compute)
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
