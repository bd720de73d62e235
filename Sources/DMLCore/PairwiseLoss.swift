/// A loss written as a function of a score matrix: distances or similarities between a batch of
/// embeddings (rows) and a reference set (columns), which is the batch itself or learned vectors
/// (proxies, class weights, class centers).
///
/// A conforming type computes its named terms from the scores, reduces them, and writes
/// `∂loss/∂scores`; the distance and the `LossEvaluator` do the rest. Most losses are one small
/// file: the terms and their derivative with respect to each score.
public protocol PairwiseLoss<Scalar>: ParameterContainer {
  /// The distance that makes the score matrix.
  var distance: Distance { get }

  /// The learned reference vectors (one per row), or `nil` to compare the batch with itself.
  var references: Matrix<Scalar>? { get }

  /// Computes the loss from `scores` (`n × m`), `labels` and `tuples` (`nil`: every valid pair or
  /// triplet), and writes `∂loss/∂scores` into `scoreGradient`.
  ///
  /// With learned references, `labels` are the `n` rows' labels. Without, the columns are
  /// embeddings too: the batch itself (`m = n`), or the batch followed by a cross-batch memory
  /// (`m > n`, only when `supportsCrossBatchMemory`). `labels` then has one label per column, the
  /// first `n` being the rows' own, and column `j < n` is row `j`. Tuples index rows (anchors)
  /// and columns (partners).
  mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar>

  /// Receives `∂loss/∂references` after the backward pass through the distance. Losses with
  /// learned references store it as their parameters' gradient (for the optimizer) or apply their
  /// own update rule (center loss).
  mutating func receiveReferenceGradient(_ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int])

  /// Applies an update of learned references that is not the optimizer's (center loss's α rule),
  /// once per training step, after the optimizer.
  mutating func updateReferences()

  /// Whether the loss reads rectangular `n × m` score matrices of the batch against the batch plus
  /// a cross-batch memory (see `compute`). A loss written with `m = scores.columns` for its
  /// column loops and `labels[j]` for column labels supports it.
  static var supportsCrossBatchMemory: Bool { get }

  /// Whether the loss reads only `scores[i, labels[i]]`, each row's score against its own
  /// class's reference (center loss). `LossEvaluator` then computes only those scores, in
  /// O(n·d) instead of a GEMM against every reference, and leaves the others 0.
  static var readsOwnClassScoresOnly: Bool { get }

  /// Whether this loss reads score matrices against a cross-batch memory. By default
  /// `supportsCrossBatchMemory` without learned references; a loss whose support is known only
  /// when it is made (a plugin's) answers per value.
  var acceptsCrossBatchMemory: Bool { get }

  /// What went wrong in the last `compute`, for a loss computed by foreign code (a plugin) that
  /// can fail: the value is then NaN, and the trainer stops with this message. `nil` by default.
  var failure: String? { get }

  /// How the loss's terms reduce, when its value over a batch adds up over blocks of anchors
  /// (rows) each compared with the whole batch (`AnchorBlockedLoss`): every term is one anchor's,
  /// or one pair's or triplet's led by an anchor, and is reduced by a sum or a mean. `nil` (the
  /// default) when a term couples the batch's rows, or the reduction does not split.
  var anchorBlockReductions: AnchorBlockReductions? { get }

  /// The rows among which the loss reads scores, when that is a part of the batch (N-pairs reads
  /// each label's first pair): `LossEvaluator` then scores only these rows, in this order, among
  /// themselves, and calls `compute` with their scores, their labels and no tuples, which must give
  /// the loss of the whole batch. `nil` (the default): the whole batch is scored.
  func scoredRows(labels: [Int], tuples: Tuples?) -> [Int]?
}

extension PairwiseLoss {
  /// `nil` by default: the loss is not declared to split over blocks of anchors.
  public var anchorBlockReductions: AnchorBlockReductions? { nil }
  /// `nil` by default: the loss reads the whole batch's scores.
  @inlinable public func scoredRows(labels: [Int], tuples: Tuples?) -> [Int]? { nil }
  /// `false` by default: a loss opts in once its column loops handle rectangular score matrices.
  public static var supportsCrossBatchMemory: Bool { false }
  /// `false` by default: the loss reads the whole score matrix.
  public static var readsOwnClassScoresOnly: Bool { false }
  /// `nil` by default: the batch is compared with itself.
  public var references: Matrix<Scalar>? { nil }
  /// Ignores the gradient by default (no learned references).
  public mutating func receiveReferenceGradient(
    _ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]
  ) {}
  /// Does nothing by default.
  public mutating func updateReferences() {}
  /// `supportsCrossBatchMemory`, when the loss has no learned references.
  public var acceptsCrossBatchMemory: Bool { Self.supportsCrossBatchMemory && references == nil }
  /// `nil`: a loss written in Swift does not fail.
  public var failure: String? { nil }
}

/// Anything that turns a batch of embeddings and labels into a loss value and `∂loss/∂embeddings`:
/// a `LossEvaluator` around one `PairwiseLoss`, or a weighted sum of several.
public protocol EmbeddingLoss<Scalar>: ParameterContainer {
  /// Evaluates the loss; the gradient with respect to `embeddings` is then in `embeddingGradient`.
  /// With a `memory`, the batch is compared with `memory.references` (the batch, then the held
  /// embeddings, built by `makeReferences`) and `tuples` index those columns.
  mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar>
  /// Whether `evaluate` accepts a cross-batch memory: every part compares embeddings with
  /// embeddings (no learned references) and supports rectangular score matrices.
  var acceptsMemory: Bool { get }
  /// `∂loss/∂embeddings` of the last evaluation.
  var embeddingGradient: Matrix<Scalar> { get }
  /// Applies reference updates that are not the optimizer's, once per step, after it.
  mutating func updateReferences()
  /// The distance under which `evaluate(_:labels:tuples:sharedScores:)` reuses a score matrix of
  /// the batch against itself computed before (by the trainer, for its miner), or `nil` when the
  /// loss computes its own scores (learned references, several parts).
  var sharedScoreDistance: Distance? { get }
  /// Evaluates the loss on the batch alone, reusing `sharedScores`: the batch against itself
  /// under `sharedScoreDistance`, computed with `workspace` (which the backward pass reads). The
  /// buffers may be exchanged with the loss's own (no copy); their content afterwards is
  /// unspecified.
  mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?, sharedScores: inout Matrix<Scalar>,
    workspace: inout DistanceWorkspace<Scalar>
  ) -> LossValue<Scalar>
  /// The threads the loss's products may use. A loss that computes products stores it; the
  /// default ignores it.
  var compute: ComputeContext { get set }
  /// What went wrong in the last evaluation, when a part computed by foreign code (a plugin)
  /// failed; the trainer stops with it. `nil` by default.
  var failure: String? { get }
}

extension EmbeddingLoss {
  /// `.automatic`, and setting it does nothing: for losses that compute no products of their own.
  @inlinable public var compute: ComputeContext {
    get { .automatic }
    set {}
  }

  /// Evaluates the loss on the batch alone.
  @inlinable
  public mutating func evaluate(_ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?) -> LossValue<Scalar> {
    evaluate(embeddings, labels: labels, memory: nil, tuples: tuples)
  }

  /// `nil` by default: the loss computes its own scores.
  @inlinable public var sharedScoreDistance: Distance? { nil }

  /// `nil` by default: the loss does not fail.
  @inlinable public var failure: String? { nil }

  /// Evaluates without the shared scores by default.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?, sharedScores: inout Matrix<Scalar>,
    workspace: inout DistanceWorkspace<Scalar>
  ) -> LossValue<Scalar> {
    evaluate(embeddings, labels: labels, memory: nil, tuples: tuples)
  }
}

/// Runs a `PairwiseLoss`: scores from its distance, the loss on the scores, and the backward pass
/// to the embeddings and to the loss's learned references. It owns every buffer, so evaluating
/// allocates nothing once the batch size is steady.
public struct LossEvaluator<Loss: PairwiseLoss>: EmbeddingLoss {
  /// The element type, the loss's.
  public typealias Scalar = Loss.Scalar
  /// The loss.
  public var loss: Loss
  /// The score matrix of the last evaluation.
  public var scores = Matrix<Scalar>()
  /// `∂loss/∂scores` of the last evaluation.
  public var scoreGradient = Matrix<Scalar>()
  /// `∂loss/∂embeddings` of the last evaluation.
  public var embeddingGradient = Matrix<Scalar>()
  /// `∂loss/∂references` of the last evaluation (empty without learned references).
  public var referenceGradient = Matrix<Scalar>()
  @usableFromInline var workspace = DistanceWorkspace<Scalar>()
  @usableFromInline var samplerScores = Matrix<Scalar>()
  @usableFromInline var samplerWorkspace = DistanceWorkspace<Scalar>()
  @usableFromInline var rowSubset = Matrix<Scalar>()
  @usableFromInline var rowSubsetGradient = Matrix<Scalar>()

  /// An evaluator for `loss`, with empty buffers.
  public init(_ loss: Loss) { self.loss = loss }

  /// The threads the score products and their gradients may use.
  @inlinable public var compute: ComputeContext {
    get { workspace.compute }
    set {
      workspace.compute = newValue
      samplerWorkspace.compute = newValue
    }
  }

  /// Compares `embeddings` with themselves or with the loss's learned references (or, with a
  /// `memory`, with `memory.references`, which must start with this batch), computes the loss, and
  /// leaves `∂loss/∂embeddings` in `embeddingGradient`; learned references receive their gradient.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    guard let memory else {
      if loss.references == nil, let rows = loss.scoredRows(labels: labels, tuples: tuples), rows.count < embeddings.rows {
        return evaluate(embeddings, labels: labels, rows: rows)
      }
      computeScores(embeddings, labels: labels)
      return finish(embeddings, labels: labels, tuples: tuples)
    }
    precondition(acceptsMemory, "\(Loss.self) cannot use a cross-batch memory")
    let references = memory.references
    let n = embeddings.rows, d = embeddings.columns
    precondition(
      labels.count == n && references.rows == n + memory.count && memory.referenceLabels.count == references.rows,
      "Loss: the memory's reference set does not start with this batch (makeReferences first)")
    loss.distance.scores(embeddings, references, into: &scores, workspace: &workspace)
    let value = loss.compute(scores: scores, labels: memory.referenceLabels, tuples: tuples, scoreGradient: &scoreGradient)
    loss.distance.backward(
      embeddings, references, scores: scores, scoreGradient: scoreGradient, workspace: &workspace,
      queryGradient: &embeddingGradient, referenceGradient: &referenceGradient)
    // The batch's own columns carry gradient too; the memory's are constants.
    embeddingGradient.withUnsafeMutableBufferPointer { g in
      referenceGradient.withUnsafeBufferPointer { r in
        for k in 0..<(n * d) { g[k] += r[k] }
      }
    }
    return value
  }

  /// Evaluates the loss on the scores among `rows` only (`PairwiseLoss.scoredRows`), and spreads
  /// their gradient back to the batch's rows; the others get none.
  @inlinable
  mutating func evaluate(_ embeddings: Matrix<Scalar>, labels: [Int], rows: [Int]) -> LossValue<Scalar> {
    let n = embeddings.rows, d = embeddings.columns
    precondition(labels.count == n, "Loss: \(n) embeddings but \(labels.count) labels")
    rowSubset.resize(rows: rows.count, columns: d)
    embeddings.withUnsafeBufferPointer { x in
      rowSubset.withUnsafeMutableBufferPointer { sub in
        for (k, row) in rows.enumerated() {
          precondition(row >= 0 && row < n, "Loss: scored row \(row) is outside 0..<\(n)")
          for c in 0..<d { sub[k * d + c] = x[row * d + c] }
        }
      }
    }
    loss.distance.scores(rowSubset, rowSubset, sameSet: true, into: &scores, workspace: &workspace)
    let value = loss.compute(scores: scores, labels: rows.map { labels[$0] }, tuples: nil, scoreGradient: &scoreGradient)
    loss.distance.backwardSameSet(
      rowSubset, scores: scores, scoreGradient: scoreGradient, workspace: &workspace, gradient: &rowSubsetGradient)
    embeddingGradient.resize(rows: n, columns: d, zeroed: true)
    embeddingGradient.withUnsafeMutableBufferPointer { g in
      rowSubsetGradient.withUnsafeBufferPointer { sub in
        for (k, row) in rows.enumerated() {
          for c in 0..<d { g[row * d + c] += sub[k * d + c] }
        }
      }
    }
    return value
  }

  /// True when the loss has no learned references and supports a cross-batch memory.
  @inlinable public var acceptsMemory: Bool { loss.acceptsCrossBatchMemory }

  /// The loss's failure in the last evaluation, if any.
  @inlinable public var failure: String? { loss.failure }

  /// The loss's distance when it compares the batch with itself (no learned references).
  @inlinable public var sharedScoreDistance: Distance? { loss.references == nil ? loss.distance : nil }

  /// Evaluates on `sharedScores` (the batch against itself under the loss's distance) and the
  /// workspace that computed them, taken in exchange for the evaluator's own buffers: the scores
  /// are computed once per step.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?, sharedScores: inout Matrix<Scalar>,
    workspace shared: inout DistanceWorkspace<Scalar>
  ) -> LossValue<Scalar> {
    guard loss.references == nil else { return evaluate(embeddings, labels: labels, memory: nil, tuples: tuples) }
    precondition(
      labels.count == embeddings.rows && sharedScores.rows == embeddings.rows && sharedScores.columns == embeddings.rows,
      "Loss: the shared scores are \(sharedScores.rows)x\(sharedScores.columns) for \(embeddings.rows) embeddings")
    swap(&scores, &sharedScores)
    swap(&workspace, &shared)
    return finish(embeddings, labels: labels, tuples: tuples)
  }

  /// Mines with `sampler`, then evaluates the loss on what it found. When the sampler and the
  /// loss compare the batch with itself under the same distance, the score matrix is computed
  /// once and serves both.
  @inlinable
  public mutating func evaluate<S: TupleSampler>(
    _ embeddings: Matrix<Scalar>, labels: [Int], sampler: inout S, tuples: inout Tuples
  ) -> LossValue<Scalar> where S.Scalar == Scalar {
    computeScores(embeddings, labels: labels)
    if loss.references == nil && sampler.distance == loss.distance {
      sampler.mine(scores: scores, labels: labels, into: &tuples)
    } else {
      sampler.distance.scores(
        embeddings, embeddings, sameSet: true, into: &samplerScores, workspace: &samplerWorkspace)
      sampler.mine(scores: samplerScores, labels: labels, into: &tuples)
    }
    return finish(embeddings, labels: labels, tuples: tuples)
  }

  @inlinable
  mutating func computeScores(_ embeddings: Matrix<Scalar>, labels: [Int]) {
    precondition(
      labels.count == embeddings.rows,
      "Loss: \(embeddings.rows) embeddings but \(labels.count) labels")
    if let references = loss.references {
      if Loss.readsOwnClassScoresOnly {
        loss.distance.scores(embeddings, references, onlyColumns: labels, into: &scores, workspace: &workspace)
      } else {
        loss.distance.scores(embeddings, references, into: &scores, workspace: &workspace)
      }
    } else {
      loss.distance.scores(embeddings, embeddings, sameSet: true, into: &scores, workspace: &workspace)
    }
  }

  @inlinable
  mutating func finish(_ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?) -> LossValue<Scalar> {
    let value = loss.compute(scores: scores, labels: labels, tuples: tuples, scoreGradient: &scoreGradient)
    if let references = loss.references {
      loss.distance.backward(
        embeddings, references, scores: scores, scoreGradient: scoreGradient,
        workspace: &workspace, queryGradient: &embeddingGradient,
        referenceGradient: &referenceGradient)
      loss.receiveReferenceGradient(referenceGradient, embeddings: embeddings, labels: labels)
    } else {
      // The batch is on both sides of its own score matrix.
      loss.distance.backwardSameSet(
        embeddings, scores: scores, scoreGradient: scoreGradient, workspace: &workspace,
        gradient: &embeddingGradient)
    }
    return value
  }

  /// Visits the loss's parameters, named as the loss names them.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    loss.visitParameters(&visitor)
  }

  /// Visits the loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { loss.visitRandomSources(visit) }

  /// Calls the loss's `updateReferences()`.
  @inlinable
  public mutating func updateReferences() { loss.updateReferences() }
}

/// `a + weight · b`, for example softmax plus 0.01 × center loss. Statically typed: each part
/// is specialised in the training step.
public struct WeightedSum<A: EmbeddingLoss, B: EmbeddingLoss>: EmbeddingLoss
where A.Scalar == B.Scalar {
  /// The element type of both parts.
  public typealias Scalar = A.Scalar
  /// The first loss, with weight `firstWeight`.
  public var first: A
  /// The second loss, with weight `secondWeight`.
  public var second: B
  /// The weights of `first` and `second`.
  public var firstWeight: Scalar, secondWeight: Scalar
  /// `∂loss/∂embeddings` of the last evaluation: the parts' gradients, weighted and summed.
  public var embeddingGradient = Matrix<Scalar>()

  /// `firstWeight · first + secondWeight · second`; `firstWeight` is 1 by default.
  public init(_ first: A, _ second: B, firstWeight: Scalar = 1, secondWeight: Scalar) {
    self.first = first
    self.second = second
    self.firstWeight = firstWeight
    self.secondWeight = secondWeight
  }

  /// Evaluates both parts on the same batch, memory and tuples; the value's two terms, `first` and
  /// `second`, are the parts' weighted totals.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    let a = first.evaluate(embeddings, labels: labels, memory: memory, tuples: tuples)
    let b = second.evaluate(embeddings, labels: labels, memory: memory, tuples: tuples)
    embeddingGradient.resize(rows: embeddings.rows, columns: embeddings.columns, zeroed: true)
    embeddingGradient.add(first.embeddingGradient, scaledBy: firstWeight)
    embeddingGradient.add(second.embeddingGradient, scaledBy: secondWeight)
    let sa = a.scaled(by: firstWeight), sb = b.scaled(by: secondWeight)
    var value = LossValue(
      LossTerm(name: "first", value: sa.total, count: sa.first.count, nonZero: sa.first.nonZero),
      LossTerm(name: "second", value: sb.total, count: sb.first.count, nonZero: sb.first.nonZero))
    value.total = sa.total + sb.total
    return value
  }

  /// The parts' compute context, set on both.
  @inlinable public var compute: ComputeContext {
    get { first.compute }
    set {
      first.compute = newValue
      second.compute = newValue
    }
  }

  /// True when both parts accept a cross-batch memory.
  @inlinable public var acceptsMemory: Bool { first.acceptsMemory && second.acceptsMemory }

  /// The first part's failure in the last evaluation, else the second's.
  @inlinable public var failure: String? { first.failure ?? second.failure }

  /// Visits `first`'s parameters in the scope `0`, then `second`'s in the scope `1`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.scope("0") { first.visitParameters(&$0) }
    visitor.scope("1") { second.visitParameters(&$0) }
  }

  /// Visits the first part's random generators, then the second's.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    first.visitRandomSources(visit)
    second.visitRandomSources(visit)
  }

  /// Updates `first`'s references, then `second`'s.
  @inlinable
  public mutating func updateReferences() {
    first.updateReferences()
    second.updateReferences()
  }
}

/// A weighted sum of any number of type-erased losses, as PML's `MultipleLosses`: the command
/// line's repeated `--loss`. With more than one part, part `k`'s parameters are in the scope
/// `"k"` (`loss.0.class_weights`, `loss.1.centers`); a single part keeps its own names. Its
/// methods are inlinable so that they specialise for the caller's `Scalar`, as `WeightedSum`'s
/// do: unspecialised, its weighted gradient sums made a softmax + center step 7% slower.
public struct MultipleLosses<Scalar: DMLScalar>: EmbeddingLoss {
  /// The parts.
  public var parts: [AnyEmbeddingLoss<Scalar>]
  /// The weight of each part.
  public var weights: [Scalar]
  /// `∂loss/∂embeddings` of the last evaluation: the parts' gradients, weighted and summed.
  public var embeddingGradient = Matrix<Scalar>()

  /// `Σ weights[k] · parts[k]`; there must be one weight per part, and at least one part.
  @inlinable
  public init(_ parts: [AnyEmbeddingLoss<Scalar>], weights: [Scalar]) {
    precondition(!parts.isEmpty && parts.count == weights.count, "MultipleLosses: one weight per part, at least one part")
    self.parts = parts
    self.weights = weights
  }

  /// Evaluates every part on the same batch, memory and tuples; the value's terms are the first
  /// part's weighted total (`first`) and the rest's (`second`), and its total their sum.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    embeddingGradient.resize(rows: embeddings.rows, columns: embeddings.columns, zeroed: true)
    var first: LossTerm<Scalar>?, rest: LossTerm<Scalar>?
    var total: Scalar = 0
    for k in parts.indices {
      let v = parts[k].evaluate(embeddings, labels: labels, memory: memory, tuples: tuples).scaled(by: weights[k])
      embeddingGradient.add(parts[k].embeddingGradient, scaledBy: weights[k])
      if k == 0 {
        first = LossTerm(name: "first", value: v.total, count: v.first.count, nonZero: v.first.nonZero)
        total = v.total
      } else {
        total += v.total
        rest = LossTerm(name: "second", value: (rest?.value ?? 0) + v.total, count: (rest?.count ?? 0) + v.first.count, nonZero: (rest?.nonZero ?? 0) + v.first.nonZero)
      }
    }
    var value = LossValue(first!, rest)
    value.total = total
    return value
  }

  /// The parts' compute context, set on every part.
  @inlinable public var compute: ComputeContext {
    get { parts.first?.compute ?? .automatic }
    set { for k in parts.indices { parts[k].compute = newValue } }
  }

  /// True when every part accepts a cross-batch memory.
  @inlinable public var acceptsMemory: Bool { parts.allSatisfy(\.acceptsMemory) }

  /// The first failing part's failure in the last evaluation, if any.
  @inlinable public var failure: String? { parts.lazy.compactMap(\.failure).first }

  /// Visits each part's parameters, in the scope of its index when there are several parts.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    if parts.count == 1 { return parts[0].visitParameters(&visitor) }
    for k in parts.indices { visitor.scope(String(k)) { parts[k].visitParameters(&$0) } }
  }

  /// Visits each part's random generators, in order.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    for k in parts.indices { parts[k].visitRandomSources(visit) }
  }

  /// Updates each part's references, in order.
  @inlinable
  public mutating func updateReferences() {
    for k in parts.indices { parts[k].updateReferences() }
  }
}

/// A loss whose concrete type is erased, for components chosen at run time (the registry, the
/// command line). The closures are created where the concrete type is known, so the work they do
/// is specialised there; a call through the wrapper costs one indirect call per step, where an
/// existential (`any EmbeddingLoss`) would run every inner loop as unspecialised generic code.
public struct AnyEmbeddingLoss<Scalar: DMLScalar>: EmbeddingLoss {
  @usableFromInline let _evaluate: (Matrix<Scalar>, [Int], CrossBatchMemory<Scalar>?, Tuples?) -> LossValue<Scalar>
  @usableFromInline let _gradient: () -> Matrix<Scalar>
  @usableFromInline let _visit: (inout ForwardingVisitor<Scalar>) -> Void
  @usableFromInline let _visitRandom: ((inout RandomSource) -> Void) -> Void
  @usableFromInline let _update: () -> Void
  @usableFromInline let _compute: () -> ComputeContext
  @usableFromInline let _setCompute: (ComputeContext) -> Void
  @usableFromInline let _failure: () -> String?
  @usableFromInline let _evaluateShared:
    (Matrix<Scalar>, [Int], Tuples?, inout Matrix<Scalar>, inout DistanceWorkspace<Scalar>) -> LossValue<Scalar>
  /// Whether the wrapped loss accepts a cross-batch memory.
  public let acceptsMemory: Bool
  /// The wrapped loss's `sharedScoreDistance`.
  public let sharedScoreDistance: Distance?

  /// Wraps `loss`; its state lives in a box that copies of this wrapper share.
  @inlinable
  public init<L: EmbeddingLoss>(_ loss: L) where L.Scalar == Scalar {
    let box = Box(loss)
    _evaluate = { box.value.evaluate($0, labels: $1, memory: $2, tuples: $3) }
    acceptsMemory = loss.acceptsMemory
    _gradient = { box.value.embeddingGradient }
    _visit = { box.value.visitParameters(&$0) }
    _visitRandom = { box.value.visitRandomSources($0) }
    _update = { box.value.updateReferences() }
    _compute = { box.value.compute }
    _setCompute = { box.value.compute = $0 }
    _failure = { box.value.failure }
    _evaluateShared = { box.value.evaluate($0, labels: $1, tuples: $2, sharedScores: &$3, workspace: &$4) }
    sharedScoreDistance = loss.sharedScoreDistance
  }

  /// Evaluates the wrapped loss on shared scores.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], tuples: Tuples?, sharedScores: inout Matrix<Scalar>,
    workspace: inout DistanceWorkspace<Scalar>
  ) -> LossValue<Scalar> {
    _evaluateShared(embeddings, labels, tuples, &sharedScores, &workspace)
  }

  /// Evaluates the wrapped loss.
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    _evaluate(embeddings, labels, memory, tuples)
  }
  /// The wrapped loss's `∂loss/∂embeddings` of its last evaluation.
  @inlinable public var embeddingGradient: Matrix<Scalar> { _gradient() }
  /// Visits the wrapped loss's parameters, through one forwarding visitor.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    ForwardingVisitor.forwarding(to: &visitor) { _visit(&$0) }
  }
  /// The wrapped loss's compute context.
  @inlinable public var compute: ComputeContext {
    get { _compute() }
    set { _setCompute(newValue) }
  }
  /// Applies the wrapped loss's reference updates.
  @inlinable public mutating func updateReferences() { _update() }
  /// Visits the wrapped loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { _visitRandom(visit) }
  /// The wrapped loss's failure in its last evaluation, if any.
  @inlinable public var failure: String? { _failure() }
}

/// A marker object held only by the copies of one type-erased value (never by its closures), so
/// that `isKnownUniquelyReferenced` tells whether a copy shares the value's box with another.
@usableFromInline
package final class UniquenessToken {
  @usableFromInline package init() {}
}

/// A mutable box for the state of a type-erased component.
@usableFromInline
package final class Box<Value> {
  @usableFromInline package var value: Value
  @usableFromInline package init(_ value: Value) { self.value = value }
}
