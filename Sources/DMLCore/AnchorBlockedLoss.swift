/// How a loss's terms reduce when its anchors are evaluated in blocks: the reduction of its first
/// term and, for a loss of two terms, of the second, whose gradient sits on the negative pairs
/// (the first's on the positive pairs). Only reductions that are a sum over terms divided by a
/// count the blocks add up are accepted: the mean, the mean of the non-zero terms, the sum and the
/// class-weighted mean.
public struct AnchorBlockReductions: Sendable, Equatable {
  /// The first term's reduction (the only term's, for a loss of one term).
  public let first: Reduction
  /// The second term's reduction (a loss of a positive and a negative term), or `nil`.
  public let second: Reduction?

  /// The reductions of a loss's terms, or `nil` when one of them does not split over blocks of
  /// anchors (`threshold`, `divisor` and `per-anchor` depend on counts or windows that a block does
  /// not report).
  public init?(_ first: Reduction, _ second: Reduction? = nil) {
    guard Self.splits(first), second.map(Self.splits) ?? true else { return nil }
    self.first = first
    self.second = second
  }

  /// Whether `reduction` is a sum over terms divided by a count that adds up over blocks.
  public static func splits(_ reduction: Reduction) -> Bool {
    [.mean, .nonZeroMean, .sum, .classWeighted].contains(reduction)
  }

  /// The count that divides the sum of `term`'s elements under `reduction`: 1 for a sum.
  @inlinable
  static func denominator<T: DMLScalar>(_ reduction: Reduction, _ term: LossTerm<T>) -> T {
    switch reduction {
    case .nonZeroMean: return T(term.nonZero)
    case .sum: return 1
    default: return T(term.count)
    }
  }
}

/// A loss over a batch too large for one score matrix (PML 3's `anchor_batched_backward`): the
/// batch's rows are taken `blockRows` anchors at a time, each block compared with the whole batch
/// (and a cross-batch memory, if any), so the score matrix and its gradient hold `blockRows × n`
/// entries instead of `n × n`. The value and the gradient are those of the loss over the whole
/// batch, not an average of block losses: each term's block sums are added up and divided by the
/// whole batch's count (its pairs, triplets or anchors, or its non-zero ones), so a mean over the
/// non-zero terms stays one mean.
///
/// The loss must compare embeddings with embeddings on rectangular score matrices
/// (`supportsCrossBatchMemory`) and declare how its terms reduce (`anchorBlockReductions`): a term
/// that couples the rows of the batch (a histogram, a batch mean, a swap that reads distances
/// between partners) cannot be split and is refused. Every pair of the batch is used: a miner's
/// tuples would need the whole score matrix.
///
/// - Terms: the loss's, over the whole batch.
/// - Memory: `blockRows × (n + memory)` scores, `(n + memory) × d` reference rows.
public struct AnchorBlockedLoss<Loss: PairwiseLoss>: EmbeddingLoss {
  /// The element type, the loss's.
  public typealias Scalar = Loss.Scalar
  /// The loss.
  public var loss: Loss
  /// The most anchors (rows) per block.
  public let blockRows: Int
  /// The reductions of the loss's terms.
  public let reductions: AnchorBlockReductions
  /// `∂loss/∂embeddings` of the last evaluation.
  public var embeddingGradient = Matrix<Scalar>()
  /// Why the last evaluation could not be done (mined tuples given), if it could not.
  public var failure: String?
  @usableFromInline var workspace = DistanceWorkspace<Scalar>()
  @usableFromInline var block = Matrix<Scalar>(), references = Matrix<Scalar>()
  @usableFromInline var referenceLabels: [Int] = []
  /// The last block's score matrix: `blockRows` (or fewer) rows against the batch and the memory.
  public var scores = Matrix<Scalar>()
  @usableFromInline var scoreGradient = Matrix<Scalar>(), termGradient = Matrix<Scalar>()
  @usableFromInline var queryGradient = Matrix<Scalar>(), referenceGradient = Matrix<Scalar>()
  @usableFromInline var sums = [Matrix<Scalar>(), Matrix<Scalar>()]

  /// `loss` evaluated `blockRows` anchors at a time; `nil` when the loss compares embeddings with
  /// learned references, does not read rectangular score matrices, or does not declare how its
  /// terms split over blocks (`anchorBlockReductions`).
  @inlinable
  public init?(_ loss: Loss, blockRows: Int) {
    guard blockRows > 0, loss.references == nil, loss.acceptsCrossBatchMemory, let reductions = loss.anchorBlockReductions else {
      return nil
    }
    self.loss = loss
    self.blockRows = blockRows
    self.reductions = reductions
  }

  /// The threads the score products may use.
  @inlinable public var compute: ComputeContext {
    get { workspace.compute }
    set { workspace.compute = newValue }
  }

  /// True: the blocks' columns extend over a memory as over the batch.
  public var acceptsMemory: Bool { true }

  /// Calls the loss's `updateReferences()`.
  @inlinable public mutating func updateReferences() { loss.updateReferences() }

  /// Visits the loss's parameters.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    loss.visitParameters(&visitor)
  }

  /// Visits the loss's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { loss.visitRandomSources(visit) }

  /// The loss over the whole batch (against `memory.references` with a memory), computed block by
  /// block; its gradient is left in `embeddingGradient`. Mined `tuples` are refused (`failure`).
  @inlinable
  public mutating func evaluate(
    _ embeddings: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?
  ) -> LossValue<Scalar> {
    let n = embeddings.rows, d = embeddings.columns
    precondition(labels.count == n, "AnchorBlockedLoss: \(n) embeddings but \(labels.count) labels")
    embeddingGradient.resize(rows: n, columns: d, zeroed: true)
    guard tuples == nil else {
      failure = "anchor blocks compare every anchor with every row; mined tuples need the whole score matrix (use no miner)"
      return LossValue(LossTerm(name: "loss", value: .nan, count: 0, nonZero: 0))
    }
    failure = nil
    // The columns: the batch, then the memory's rows (constants).
    let all: Matrix<Scalar>, allLabels: [Int]
    if let memory {
      precondition(
        memory.references.rows >= n && memory.referenceLabels.count == memory.references.rows,
        "AnchorBlockedLoss: the memory's reference set does not start with this batch (makeReferences first)")
      all = memory.references
      allLabels = memory.referenceLabels
    } else {
      all = embeddings
      allLabels = labels
    }
    let m = all.rows
    let terms = reductions.second == nil ? 1 : 2
    for t in 0..<terms { sums[t].resize(rows: n, columns: d, zeroed: true) }
    var totals: [Scalar] = [0, 0], denominators: [Scalar] = [0, 0], counts = [0, 0], nonZeros = [0, 0]
    var names: [StaticString] = ["loss", "loss"]
    references.resize(rows: m, columns: d)
    referenceLabels = [Int](repeating: 0, count: m)
    var start = 0
    while start < n {
      let end = Swift.min(n, start + blockRows), b = end - start
      // Columns in the order the loss expects: the block's own rows first (column j < b is
      // anchor j), then the rows before the block, then those after it and the memory.
      let order = Array(start..<end) + Array(0..<start) + Array(end..<m)
      all.withUnsafeBufferPointer { source in
        references.withUnsafeMutableBufferPointer { target in
          for (k, row) in order.enumerated() {
            (target.baseAddress! + k * d).update(from: source.baseAddress! + row * d, count: d)
          }
        }
      }
      for (k, row) in order.enumerated() { referenceLabels[k] = allLabels[row] }
      block = embeddings.rows(Array(start..<end))
      loss.distance.scores(block, references, into: &scores, workspace: &workspace)
      let value = loss.compute(scores: scores, labels: referenceLabels, tuples: nil, scoreGradient: &scoreGradient)
      if let failure = loss.failure {
        self.failure = failure
        return value
      }
      let parts = [value.first] + (terms == 2 ? [value.second ?? LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)] : [])
      for t in 0..<terms {
        let reduction = t == 0 ? reductions.first : reductions.second!
        let weight = AnchorBlockReductions.denominator(reduction, parts[t])
        names[t] = parts[t].name
        counts[t] += parts[t].count
        nonZeros[t] += parts[t].nonZero
        denominators[t] += weight
        totals[t] += parts[t].value * weight
        guard weight > 0 else { continue }
        // The term's share of the score gradient, as a sum over the block's elements: all of it
        // for a loss of one term; else the positive pairs' (first term) or the negative pairs'.
        if terms == 1 {
          scoreGradient.scale(by: weight)
        } else {
          termGradient.resize(rows: b, columns: m)
          scoreGradient.withUnsafeBufferPointer { g in
            termGradient.withUnsafeMutableBufferPointer { out in
              referenceLabels.withUnsafeBufferPointer { y in
                let positive = t == 0
                for i in 0..<b {
                  for j in 0..<m { out[i * m + j] = (y[i] == y[j]) == positive ? g[i * m + j] * weight : 0 }
                }
              }
            }
          }
        }
        loss.distance.backward(
          block, references, scores: scores, scoreGradient: terms == 1 ? scoreGradient : termGradient, workspace: &workspace,
          queryGradient: &queryGradient, referenceGradient: &referenceGradient)
        sums[t].withUnsafeMutableBufferPointer { g in
          queryGradient.withUnsafeBufferPointer { q in
            referenceGradient.withUnsafeBufferPointer { r in
              for (k, row) in order.enumerated() where row < n {
                for c in 0..<d { g[row * d + c] += r[k * d + c] }
              }
              for i in 0..<b {
                for c in 0..<d { g[(start + i) * d + c] += q[i * d + c] }
              }
            }
          }
        }
      }
      start = end
    }
    // Each term's sum over the whole batch, divided by the whole batch's count.
    for t in 0..<terms where denominators[t] > 0 {
      let scale = reductions.first == .sum && t == 0 || reductions.second == .sum && t == 1 ? 1 : 1 / denominators[t]
      totals[t] *= scale
      embeddingGradient.add(sums[t], scaledBy: scale)
    }
    let first = LossTerm(name: names[0], value: totals[0], count: counts[0], nonZero: nonZeros[0])
    let second = terms == 2 ? LossTerm(name: names[1], value: totals[1], count: counts[1], nonZero: nonZeros[1]) : nil
    return LossValue(first, second)
  }
}
