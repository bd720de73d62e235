import DMLCore
import Foundation

/// Copies every parameter's gradient (trainable ones) or value (state a layer updates itself, such
/// as BatchNorm's running statistics) into one flat buffer, in visiting order, or back out of it.
@usableFromInline
struct PackingVisitor<Scalar: DMLScalar>: ParameterVisitor {
  @usableFromInline var buffer: [Scalar]
  @usableFromInline var unpacking: Bool
  @usableFromInline var offset = 0

  @usableFromInline
  init(buffer: [Scalar], unpacking: Bool) {
    self.buffer = buffer
    self.unpacking = unpacking
  }

  @usableFromInline mutating func enterScope(_ name: String) {}
  @usableFromInline mutating func leaveScope() {}
  @usableFromInline
  mutating func visit(_ parameter: inout Parameter<Scalar>) {
    let n = parameter.count
    if parameter.trainable {
      if parameter.gradient.count != n { parameter.gradient.resize(rows: parameter.value.rows, columns: parameter.value.columns, zeroed: true) }
      copy(&parameter.gradient, n)
    } else {
      copy(&parameter.value, n)
    }
  }

  @usableFromInline
  mutating func copy(_ m: inout Matrix<Scalar>, _ n: Int) {
    if unpacking {
      let start = offset
      m.withUnsafeMutableBufferPointer { p in
        buffer.withUnsafeBufferPointer { b in p.baseAddress!.update(from: b.baseAddress! + start, count: n) }
      }
    } else {
      m.withUnsafeBufferPointer { p in buffer.append(contentsOf: p) }
    }
    offset += n
  }
}

extension Trainer {
  /// One data-parallel optimisation step: this rank's `shard` of the global batch, whose labels
  /// (all of them, in the batch's order) are `labels`. Every rank of `group` calls it with the
  /// same labels and its own rows, `Shards.rows(batch: labels.count, rank:size:)`.
  ///
  /// In the `.global` mode the rank computes its rows' embeddings, all-gathers the embeddings, and
  /// runs the miner and the loss on the whole batch, exactly as `train(_:labels:)` does on one
  /// process. The loss's gradient with respect to the gathered embeddings is routed: each rank
  /// back-propagates its own rows' gradient only, so the network's parameter gradients, summed
  /// over ranks, are the one-process gradients (no scaling by the number of ranks). The loss's own
  /// parameters (proxies, class weights, centers) see the whole batch on every rank, so their
  /// gradients are already whole and are not summed; they stay identical on every rank, as does a
  /// cross-batch memory, which is filled with the gathered batch in rank order. State that layers
  /// update themselves (BatchNorm's running statistics, from each rank's own rows) is averaged
  /// over ranks every step.
  ///
  /// In the `.localAnchors` mode see `DistributedMode.localAnchors`.
  ///
  /// Throws before touching the parameters if the loss or a gradient is not finite (on every
  /// rank alike, as every rank computes the same loss), or if a collective fails.
  @inlinable
  public mutating func train(
    shard: Matrix<Scalar>, labels: [Int], over group: any Collective, mode: DistributedMode = .global
  ) throws -> StepResult<Scalar> {
    try train(shard: shard, labels: labels, over: group, mode: mode, mistake: nil)
  }

  /// The step, with a deliberate mistake for the tests of the equivalence check.
  @inlinable
  package mutating func train(
    shard: Matrix<Scalar>, labels: [Int], over group: any Collective, mode: DistributedMode, mistake: DistributedMistake?
  ) throws -> StepResult<Scalar> {
    let size = group.size
    let rows = Shards.rows(batch: labels.count, rank: group.rank, size: size)
    guard shard.rows == rows.count else {
      throw TrainingError("rank \(group.rank) of \(size): the shard has \(shard.rows) rows, its share of a \(labels.count)-row batch is \(rows.count)")
    }
    network.forward(shard, mode: .training, compute: compute)
    let d = network.embeddings.columns
    let counts = Shards.counts(batch: labels.count, size: size)
    let gathered = try group.allGather(network.embeddings.elements, counts: counts.map { $0 * d }, what: "the embeddings of step \(step + 1)")
    let all = Matrix(rows: labels.count, columns: d, elements: gathered)
    let localLabels = Array(labels[rows])
    var mined: Int?
    let value: LossValue<Scalar>
    switch mode {
    case .global:
      let usesMemory = memory?.isUsed(atStep: step) ?? false
      if usesMemory {
        precondition(loss.acceptsMemory && (!mines || sampler.acceptsMemory), "Trainer: the loss or the miner cannot use a cross-batch memory")
        memory!.makeReferences(batch: all, labels: labels)
      }
      var shared = false
      if mines {
        if usesMemory {
          sampler.distance.scores(all, memory!.references, into: &scores, workspace: &workspace)
          sampler.mine(scores: scores, labels: memory!.referenceLabels, into: &tuples)
        } else {
          sampler.distance.scores(all, all, sameSet: true, into: &scores, workspace: &workspace)
          sampler.mine(scores: scores, labels: labels, into: &tuples)
          shared = loss.sharedScoreDistance == sampler.distance
        }
        mined = tuples.count
        if let failure = sampler.failure { throw TrainingError("step \(step + 1): \(failure); parameters left as they were") }
      }
      value =
        shared
        ? loss.evaluate(all, labels: labels, tuples: tuples, sharedScores: &scores, workspace: &workspace)
        : loss.evaluate(all, labels: labels, memory: usesMemory ? memory : nil, tuples: mines ? tuples : nil)
    case .localAnchors:
      guard memory == nil else { throw TrainingError("the local-anchor mode cannot be combined with a cross-batch memory") }
      guard loss.acceptsMemory && (!mines || sampler.acceptsMemory) else {
        throw TrainingError("the local-anchor mode needs a loss and a miner that accept a reference set (as for a cross-batch memory)")
      }
      // The other ranks' rows, as constants after this rank's own (as a cross-batch memory holds them).
      var others = CrossBatchMemory<Scalar>(capacity: Swift.max(1, labels.count - rows.count))
      if labels.count > rows.count {
        var otherRows = Array(0..<rows.lowerBound)
        otherRows += Array(rows.upperBound..<labels.count)
        others.enqueue(all.rows(otherRows), labels: otherRows.map { labels[$0] })
      }
      others.makeReferences(batch: network.embeddings, labels: localLabels)
      if mines {
        sampler.distance.scores(network.embeddings, others.references, into: &scores, workspace: &workspace)
        sampler.mine(scores: scores, labels: others.referenceLabels, into: &tuples)
        mined = tuples.count
        if let failure = sampler.failure { throw TrainingError("step \(step + 1): \(failure); parameters left as they were") }
      }
      value = loss.evaluate(network.embeddings, labels: localLabels, memory: others, tuples: mines ? tuples : nil)
    }
    if let failure = loss.failure { throw TrainingError("step \(step + 1): \(failure); parameters left as they were") }
    guard value.total.isFinite else {
      throw TrainingError("step \(step + 1): the loss is \(value.total); parameters left as they were")
    }
    guard loss.embeddingGradient.isFinite, all.isFinite else {
      throw TrainingError(
        "step \(step + 1): the embeddings or the loss's gradient are not finite (loss \(value.total)); parameters left as they were")
    }
    if mode == .global, memory?.fills(atStep: step) ?? false { memory!.enqueue(all, labels: labels) }
    // Route: this rank back-propagates its own rows' gradient.
    var own: Matrix<Scalar>
    switch (mode, mistake) {
    case (.localAnchors, _): own = loss.embeddingGradient
    case (_, .detachedGather?): own = Matrix(rows: rows.count, columns: d)
    case (_, .summedGradients?):
      var g = loss.embeddingGradient.elements
      try group.allReduceSum(&g, what: "the embedding gradient")
      own = Matrix(rows: labels.count, columns: d, elements: g).rows(Array(rows))
    default: own = loss.embeddingGradient.rows(Array(rows))
    }
    routedGradient = own
    network.backward(routedGradient, compute: compute)
    // One all-reduce: the network's parameter gradients (summed) and its self-updated state
    // (averaged); in the local-anchor mode the loss's parameter gradients too, as each rank's loss
    // sees only its anchors.
    var packer = PackingVisitor<Scalar>(buffer: [], unpacking: false)
    network.visitParameters(&packer)
    let networkCount = packer.offset
    if mode == .localAnchors { loss.visitParameters(&packer) }
    if packer.offset > 0 {
      var buffer = packer.buffer
      try group.allReduceSum(&buffer, what: "the parameter gradients of step \(step + 1)")
      if size > 1 {
        // Self-updated state is averaged; the rest are gradients, summed (or averaged, by mistake).
        var stateMask = StateMask<Scalar>()
        network.visitParameters(&stateMask)
        if mode == .localAnchors { loss.visitParameters(&stateMask) }
        let scale = 1 / Scalar(size)
        for i in buffer.indices where stateMask.isState[i] || (mistake == .averagedGradients && i < networkCount) { buffer[i] *= scale }
      }
      var unpacker = PackingVisitor<Scalar>(buffer: buffer, unpacking: true)
      network.visitParameters(&unpacker)
      if mode == .localAnchors { loss.visitParameters(&unpacker) }
    }
    optimizer.scope("network") { network.visitParameters(&$0) }
    optimizer.scope("loss") { loss.visitParameters(&$0) }
    loss.updateReferences()
    step += 1
    var result = value
    if mode == .localAnchors {
      // The run's loss: the sum of the ranks' losses.
      var total = [value.total]
      try group.allReduceSum(&total, what: "the loss of step \(step)")
      result.total = total[0]
    }
    return StepResult(loss: result, mined: mined)
  }
}

/// Which packed elements are self-updated state (averaged) rather than gradients (summed).
@usableFromInline
struct StateMask<Scalar: DMLScalar>: ParameterVisitor {
  @usableFromInline var isState: [Bool] = []
  @usableFromInline init() {}
  @usableFromInline mutating func enterScope(_ name: String) {}
  @usableFromInline mutating func leaveScope() {}
  @usableFromInline mutating func visit(_ parameter: inout Parameter<Scalar>) {
    isState += [Bool](repeating: !parameter.trainable, count: parameter.count)
  }
}
