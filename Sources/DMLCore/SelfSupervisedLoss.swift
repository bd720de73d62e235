/// The two rows of each label, in the order of their first rows (a batch of two views per sample,
/// `--batch views:labels=instance`), or why the labels do not pair the rows, naming `loss` and
/// the label at fault.
public func viewPairs(_ labels: [Int], loss: String) -> (pairs: [(Int, Int)], failure: String?) {
  var firstRow: [Int: Int] = [:], pairs: [(Int, Int)] = []
  for (i, y) in labels.enumerated() {
    if let f = firstRow[y] {
      guard f >= 0 else {
        return ([], "\(loss) pairs two views per label, but label \(y) has more than two rows (use --batch views:views=2)")
      }
      pairs.append((f, i))
      firstRow[y] = -1
    } else {
      firstRow[y] = i
    }
  }
  if let (y, _) = firstRow.first(where: { $0.value >= 0 }) {
    return ([], "\(loss) pairs two views per label, but label \(y) has one row (use --batch views:views=2)")
  }
  return (pairs, nil)
}

/// PML's `SelfSupervisedLoss`: a pair loss over two views of each sample. The rows that share a
/// label are the two views `a_i` and `b_i` of sample `i` (`--batch views:labels=instance`):
///
/// - symmetric (PML's default): the inner loss over the whole batch, each sample's two views a
///   positive pair, every other row a negative (PML concatenates the views with `arange` labels);
/// - one-way (PML's `symmetric=False`): the first views against the second ones only, positives
///   `(a_i, b_i)`, negatives `(a_i, b_j)` for `j ≠ i` (PML's `ref_emb`), so a view is never
///   compared with the other samples' same view. The inner loss must then read pairs
///   (`usesTuples`).
///
/// The inner loss compares embeddings with embeddings (`supportsCrossBatchMemory`: no learned
/// references). On the command line it is the key `self_supervised=symmetric` (or `one-way`) of
/// such a loss.
///
/// - Terms: the inner loss's. No miner, no cross-batch memory.
/// - A batch whose labels do not pair its rows gives a zero loss and sets `failure`.
public struct SelfSupervisedLoss<Inner: PairwiseLoss>: EmbeddingLoss {
  /// The element type, the inner loss's.
  public typealias Scalar = Inner.Scalar
  /// Whether the loss is the inner loss over the whole batch (PML's default) or the first views
  /// against the second ones only.
  public let symmetric: Bool
  /// `∂loss/∂embeddings` of the last evaluation.
  public private(set) var embeddingGradient = Matrix<Scalar>()
  /// Why the last batch could not be evaluated, if it could not.
  public private(set) var failure: String?
  @usableFromInline var evaluator: LossEvaluator<Inner>
  @usableFromInline var workspace = DistanceWorkspace<Scalar>()
  @usableFromInline var views = [Matrix<Scalar>(), Matrix<Scalar>()]
  @usableFromInline var scores = Matrix<Scalar>(), scoreGradient = Matrix<Scalar>()
  @usableFromInline var queryGradient = Matrix<Scalar>(), referenceGradient = Matrix<Scalar>()
  @usableFromInline var tuples = Tuples.none, tupleRows = -1

  /// `inner` over the two views of each sample: over the whole batch when `symmetric`, else the
  /// first views against the second (which needs a loss that reads pairs).
  public init(_ inner: Inner, symmetric: Bool = true) {
    precondition(inner.references == nil, "SelfSupervisedLoss compares embeddings with embeddings: the inner loss has learned references")
    evaluator = LossEvaluator(inner)
    self.symmetric = symmetric
  }

  /// The pair loss between the views.
  public var inner: Inner {
    get { evaluator.loss }
    set { evaluator.loss = newValue }
  }

  /// The threads the distance's products use.
  public var compute: ComputeContext {
    get { workspace.compute }
    set {
      workspace.compute = newValue
      evaluator.compute = newValue
    }
  }

  /// No cross-batch memory.
  public var acceptsMemory: Bool { false }
  /// Calls the inner loss's `updateReferences()`.
  public mutating func updateReferences() { evaluator.updateReferences() }

  /// Visits the inner loss's parameters.
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    evaluator.visitParameters(&visitor)
  }

  /// Visits the inner loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    evaluator.visitRandomSources(visit)
  }

  /// The loss of the views the labels pair, and its gradient into `embeddingGradient`.
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples _: Tuples?
  ) -> LossValue<Scalar> {
    precondition(memory == nil, "SelfSupervisedLoss takes no cross-batch memory")
    precondition(labels.count == embeddings.rows, "SelfSupervisedLoss: \(embeddings.rows) rows but \(labels.count) labels")
    let (pairs, problem) = viewPairs(labels, loss: "self_supervised")
    failure = problem
    guard problem == nil, !pairs.isEmpty else {
      embeddingGradient.resize(rows: embeddings.rows, columns: embeddings.columns, zeroed: true)
      return .zero
    }
    if symmetric {
      let value = evaluator.evaluate(embeddings, labels: labels, tuples: nil)
      embeddingGradient.assign(evaluator.embeddingGradient)
      return value
    }
    // One way: the first views against the second, pair (i, i) positive and (i, j ≠ i) negative.
    let n = pairs.count
    if tupleRows != n {
      var positive: [SIMD2<Int32>] = [], negative: [SIMD2<Int32>] = []
      for i in 0..<n {
        for j in 0..<n { if i == j { positive.append(SIMD2(Int32(i), Int32(j))) } else { negative.append(SIMD2(Int32(i), Int32(j))) } }
      }
      tuples = .pairs(positive: positive, negative: negative)
      tupleRows = n
    }
    views[0] = embeddings.rows(pairs.map(\.0))
    views[1] = embeddings.rows(pairs.map(\.1))
    let distance = evaluator.loss.distance
    distance.scores(views[0], views[1], into: &scores, workspace: &workspace)
    let value = evaluator.loss.compute(scores: scores, labels: Array(0..<n), tuples: tuples, scoreGradient: &scoreGradient)
    distance.backward(
      views[0], views[1], scores: scores, scoreGradient: scoreGradient, workspace: &workspace, queryGradient: &queryGradient,
      referenceGradient: &referenceGradient)
    embeddingGradient.resize(rows: embeddings.rows, columns: embeddings.columns, zeroed: true)
    for (i, rows) in pairs.enumerated() {
      for k in 0..<embeddings.columns {
        embeddingGradient[rows.0, k] = queryGradient[i, k]
        embeddingGradient[rows.1, k] = referenceGradient[i, k]
      }
    }
    return value
  }
}
