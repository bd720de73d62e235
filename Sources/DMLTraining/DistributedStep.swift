import DMLCore
import Foundation

/// Copies the gradients of trainable parameters (`.gradients`), or the values of the state that
/// layers update themselves, such as BatchNorm's running statistics (`.state`), into one flat
/// buffer in visiting order; after `rewind()`, visiting again copies the buffer back.
@usableFromInline
struct PackingVisitor<Scalar: DMLScalar>: ParameterVisitor {
  @usableFromInline enum Packing { case gradients, state }
  @usableFromInline let packing: Packing
  @usableFromInline var buffer: [Scalar] = []
  @usableFromInline var unpacking = false
  @usableFromInline var offset = 0

  @usableFromInline
  init(packing: Packing) { self.packing = packing }

  /// Turns to copying the buffer back, from its start.
  @usableFromInline
  mutating func rewind() {
    unpacking = true
    offset = 0
  }

  @usableFromInline mutating func enterScope(_ name: String) {}
  @usableFromInline mutating func leaveScope() {}
  @usableFromInline
  mutating func visit(_ parameter: inout Parameter<Scalar>) {
    let n = parameter.count
    // A frozen parameter (a warm-up's backbone) is neither: its value agrees on every rank.
    guard !parameter.frozen else { return }
    switch (packing, parameter.trainable) {
    case (.gradients, true):
      if parameter.gradient.count != n { parameter.gradient.resize(rows: parameter.value.rows, columns: parameter.value.columns, zeroed: true) }
      copy(&parameter.gradient, n)
    case (.state, false): copy(&parameter.value, n)
    default: break
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
  /// over ranks every step; values that agree on every rank are kept as they are.
  ///
  /// In the `.localAnchors` mode see `DistributedMode.localAnchors`; the returned loss and counts
  /// are then the sums over ranks.
  ///
  /// Throws before touching the parameters if the miner or the loss fails or is not finite: in
  /// the global mode every rank computes the same loss and fails alike; in the local-anchor mode
  /// the ranks learn whether any failed before any goes on. Throws if a collective fails.
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
      var problem: String?
      if mines {
        sampler.distance.scores(network.embeddings, others.references, into: &scores, workspace: &workspace)
        sampler.mine(scores: scores, labels: others.referenceLabels, into: &tuples)
        problem = sampler.failure
      }
      var local = LossValue<Scalar>.zero
      if problem == nil {
        local = loss.evaluate(network.embeddings, labels: localLabels, memory: others, tuples: mines ? tuples : nil)
        problem = stepProblem(local, all)
      }
      // Each rank's loss differs here, and so may its failures: every rank learns whether any
      // failed before any goes on, and the run's loss and counts are the sums over ranks.
      let failed = problem != nil
      let second = local.second ?? LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)
      var sums: [Scalar] = [
        failed ? 1 : 0, failed ? 0 : local.total, Scalar(mines ? tuples.count : 0), local.first.value, Scalar(local.first.count),
        Scalar(local.first.nonZero), second.value, Scalar(second.count), Scalar(second.nonZero),
      ]
      try group.allReduceSum(&sums, what: "the losses of step \(step + 1)")
      guard sums[0] == 0 else {
        throw TrainingError(
          "step \(step + 1): \(problem ?? "another rank's miner or loss failed (its error says why)"); parameters left as they were")
      }
      var summed = local
      summed.total = sums[1]
      summed.first = LossTerm(name: local.first.name, value: sums[3], count: Int(sums[4]), nonZero: Int(sums[5]))
      if let s = local.second { summed.second = LossTerm(name: s.name, value: sums[6], count: Int(sums[7]), nonZero: Int(sums[8])) }
      value = summed
      if mines { mined = Int(sums[2]) }
    }
    if mode == .global, let problem = stepProblem(value, all) {
      // Every rank computed the same loss, so every rank fails alike here.
      throw TrainingError("step \(step + 1): \(problem); parameters left as they were")
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
    // One all-reduce of the network's parameter gradients, summed (in the local-anchor mode the
    // loss's too, as each rank's loss sees only its anchors).
    var gradients = PackingVisitor<Scalar>(packing: .gradients)
    network.visitParameters(&gradients)
    if mode == .localAnchors { loss.visitParameters(&gradients) }
    if size > 1 && !gradients.buffer.isEmpty {
      try group.allReduceSum(&gradients.buffer, what: "the parameter gradients of step \(step + 1)")
      if mistake == .averagedGradients {
        let scale = 1 / Scalar(size)
        for i in gradients.buffer.indices { gradients.buffer[i] *= scale }
      }
      gradients.rewind()
      network.visitParameters(&gradients)
      if mode == .localAnchors { loss.visitParameters(&gradients) }
    }
    // State that layers update themselves from their rows (BatchNorm's running statistics) is
    // averaged over ranks; values that agree on every rank are kept exactly.
    var state = PackingVisitor<Scalar>(packing: .state)
    network.visitParameters(&state)
    if mode == .localAnchors { loss.visitParameters(&state) }
    if size > 1 && !state.buffer.isEmpty {
      let n = state.buffer.count
      let every = try group.allGather(state.buffer, counts: [Int](repeating: n, count: size), what: "the layers' statistics of step \(step + 1)")
      for i in 0..<n {
        var sum = every[i], same = true
        for r in 1..<size {
          sum += every[r * n + i]
          if every[r * n + i] != every[i] { same = false }
        }
        state.buffer[i] = same ? every[i] : sum / Scalar(size)
      }
      state.rewind()
      network.visitParameters(&state)
      if mode == .localAnchors { loss.visitParameters(&state) }
    }
    optimizer.scope("network") { network.visitParameters(&$0) }
    optimizer.scope("loss") { loss.visitParameters(&$0) }
    loss.updateReferences()
    step += 1
    return StepResult(loss: value, mined: mined)
  }

  /// What stops a step: the loss's own failure, a non-finite loss, embeddings or gradient.
  @inlinable
  func stepProblem(_ value: LossValue<Scalar>, _ embeddings: Matrix<Scalar>) -> String? {
    if let failure = loss.failure { return failure }
    guard value.total.isFinite else { return "the loss is \(value.total)" }
    guard loss.embeddingGradient.isFinite, embeddings.isFinite else {
      return "the embeddings or the loss's gradient are not finite (loss \(value.total))"
    }
    return nil
  }
}
