extension Tuples {
  /// The pairs of a batch whose rows carry label sets (multi-label data): `(i, j)`, `i ≠ j`, is
  /// positive when the two rows share at least one label and negative when they share none (PML
  /// 3's multi-label pairs). A row with an empty set is in no pair.
  public static func multiLabel(_ labelSets: [[Int]]) -> Tuples {
    let sets = labelSets.map(Set.init)
    var positive: [SIMD2<Int32>] = [], negative: [SIMD2<Int32>] = []
    for i in sets.indices where !sets[i].isEmpty {
      for j in sets.indices where j != i && !sets[j].isEmpty {
        if sets[i].isDisjoint(with: sets[j]) {
          negative.append(SIMD2(Int32(i), Int32(j)))
        } else {
          positive.append(SIMD2(Int32(i), Int32(j)))
        }
      }
    }
    return .pairs(positive: positive, negative: negative)
  }
}

extension LossEvaluator {
  /// Evaluates the loss on rows that each carry a set of labels: the pairs are
  /// `Tuples.multiLabel(labelSets)`, positives sharing a label, negatives sharing none. With
  /// `SupConLoss` this is PML 3's `MultiSupConLoss`; any loss that reads pairs (contrastive,
  /// NT-Xent, multi-similarity, circle, triplet) takes multi-label rows the same way. Losses that
  /// read no tuples (NCA, FastAP, the class-weight losses) cannot.
  public mutating func evaluate(_ embeddings: Matrix<Scalar>, labelSets: [[Int]]) -> LossValue<Scalar> {
    precondition(labelSets.count == embeddings.rows, "multi-label evaluation: \(embeddings.rows) rows but \(labelSets.count) label sets")
    // Each row its own label: only the tuples say which rows go together.
    return evaluate(embeddings, labels: Array(0..<embeddings.rows), tuples: .multiLabel(labelSets))
  }
}

/// A loss over multi-label rows, for a training loop that passes one label per row: each row's
/// label is the index of its label set in `labelSets` (as `Dataset.labels` numbers the distinct
/// sets of multi-label data), and the inner loss is evaluated on the pairs of
/// `Tuples.multiLabel` (positives share a label, negatives share none), each row its own label.
/// The inner loss must read tuples (a pair or triplet loss). No cross-batch memory; a miner's
/// tuples are replaced by the label sets' pairs.
public struct MultiLabelLoss<Inner: EmbeddingLoss>: EmbeddingLoss {
  /// The element type, the inner loss's.
  public typealias Scalar = Inner.Scalar
  /// The inner loss.
  public var inner: Inner
  /// The label sets, indexed by the labels the loop passes.
  public let labelSets: [[Int]]
  @usableFromInline var rowLabels: [Int] = []

  /// `inner` over the pairs of the label sets that `labelSets` holds, indexed by label.
  public init(_ inner: Inner, labelSets: [[Int]]) {
    self.inner = inner
    self.labelSets = labelSets
  }

  /// `∂loss/∂embeddings` of the last evaluation.
  public var embeddingGradient: Matrix<Scalar> { inner.embeddingGradient }
  /// False: a memory's rows carry single labels.
  public var acceptsMemory: Bool { false }
  /// The inner loss's failure, if any.
  public var failure: String? { inner.failure }
  /// The inner loss's compute context.
  public var compute: ComputeContext {
    get { inner.compute }
    set { inner.compute = newValue }
  }

  /// The inner loss on the pairs of the rows' label sets (`labels` index `labelSets`).
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples _: Tuples?
  ) -> LossValue<Scalar> {
    precondition(memory == nil, "MultiLabelLoss takes no cross-batch memory")
    precondition(labels.allSatisfy { $0 >= 0 && $0 < labelSets.count }, "MultiLabelLoss: a label indexes no label set")
    if rowLabels.count != labels.count { rowLabels = Array(0..<labels.count) }
    return inner.evaluate(embeddings, labels: rowLabels, memory: nil, tuples: .multiLabel(labels.map { labelSets[$0] }))
  }

  /// Applies the inner loss's reference updates.
  public mutating func updateReferences() { inner.updateReferences() }

  /// Visits the inner loss's parameters.
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    inner.visitParameters(&visitor)
  }

  /// Visits the inner loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { inner.visitRandomSources(visit) }
}
