import DMLDistributed
import DMLLosses
import DMLNetworks
import DMLSamplers
import DMLTraining
import Foundation
import Testing

/// Runs the equivalence check of `name` on an in-process group of `ranks` threads; every rank must
/// return the same comparison.
func check<S: DMLScalar>(
  _ name: String, _: S.Type, ranks: Int = 2, batch: Int = 128, mistake: DistributedMistake? = nil
) throws -> DistributedCheck.Comparison {
  let results = ThreadGroup.run(size: ranks) { group in
    try DistributedCheck.run(name, as: S.self, group: group, steps: 5, batch: batch, mistake: mistake)
  }
  let comparisons = try results.map { try $0.get() }
  for c in comparisons.dropFirst() {
    #expect(c.quantities.map(\.relativeDifference) == comparisons[0].quantities.map(\.relativeDifference), "ranks disagree on \(name)")
  }
  return comparisons[0]
}

@Suite("Data-parallel training: the same as one process")
struct EquivalenceTests {
  @Test("2 ranks × 64 rows against 1 process × 128, 5 steps, in Double to 1e-12", arguments: DistributedCheck.cases)
  func double(name: String) throws {
    let c = try check(name, Double.self)
    #expect(c.passed, "\(name) f64: \(c.quantities)")
    #expect(c.quantities.contains { $0.name == "embedding gradient" } && c.quantities.contains { $0.name.hasPrefix("network after") })
  }

  @Test("2 ranks × 64 rows against 1 process × 128, 5 steps, in Float to 1e-5", arguments: DistributedCheck.cases)
  func float(name: String) throws {
    let c = try check(name, Float.self)
    #expect(c.passed, "\(name) f32: \(c.quantities)")
  }

  @Test("3 ranks of unequal shards (43, 43, 42 rows) in Double", arguments: ["triplet+semihard", "proxy-anchor", "contrastive+memory"])
  func unequalShards(name: String) throws {
    let c = try check(name, Double.self, ranks: 3)
    #expect(c.passed, "\(name): \(c.quantities)")
  }

  @Test("every deliberate mistake fails the check, for every case", arguments: DistributedMistake.allCases)
  func mistakesFail(mistake: DistributedMistake) throws {
    for name in DistributedCheck.cases {
      let c = try check(name, Double.self, mistake: mistake)
      #expect(!c.passed, "\(mistake.rawValue) passed the check of \(name): \(c.quantities)")
      // The gradients are what a mistake breaks (the loss of the first step is computed before).
      #expect(c.quantities.first { $0.name == "network gradients" }!.relativeDifference > 1e-3, "\(name) \(mistake.rawValue)")
    }
  }

  @Test("one process through the data-parallel step is bitwise the plain step")
  func singleProcessIsThePlainStep() throws {
    let c = try check("triplet+semihard", Double.self, ranks: 1)
    #expect(c.quantities.allSatisfy { $0.relativeDifference == 0 }, "\(c.quantities)")
  }

  @Test("a rank that fails stops the others' collectives with an error naming the operation")
  func failingRank() {
    let results = ThreadGroup.run(size: 2, timeout: 10) { group -> Int in
      if group.rank == 1 { throw TrainingError("rank 1 broke") }
      var x: [Float] = [1]
      try group.allReduceSum(&x, what: "a test buffer")
      return 0
    }
    guard case .failure(let e) = results[0] else { Issue.record("rank 0 went on"); return }
    #expect("\(e)".contains("the all-reduce of a test buffer") && "\(e)".contains("rank 1 failed"), "\(e)")
  }

  @Test("a rank that never arrives is reported after the time-out")
  func hungRank() {
    let start = Date()
    let results = ThreadGroup.run(size: 2, timeout: 0.5) { group -> Int in
      if group.rank == 1 { Thread.sleep(forTimeInterval: 2); return 1 }
      var x: [Double] = [1]
      try group.allReduceSum(&x, what: "the parameter gradients")
      return 0
    }
    guard case .failure(let e) = results[0] else { Issue.record("rank 0 did not time out"); return }
    #expect("\(e)".contains("waited 0.5 s for the other ranks"), "\(e)")
    #expect(Date().timeIntervalSince(start) < 10)
  }

  @Test("shards: contiguous, in rank order, covering the batch, sizes differing by at most one")
  func shards() {
    for batch in [1, 7, 128, 129] {
      for size in 1...5 where size <= batch {
        let parts = (0..<size).map { Shards.rows(batch: batch, rank: $0, size: size) }
        #expect(parts.first!.lowerBound == 0 && parts.last!.upperBound == batch)
        for (a, b) in zip(parts, parts.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
        #expect(Shards.counts(batch: batch, size: size) == parts.map(\.count))
      }
    }
  }
}

@Suite("The local-anchor mode")
struct LocalAnchorTests {
  static func trainer() -> Trainer<MLP<Double>, LossEvaluator<ContrastiveLoss<Double>>, PairMarginMiner<Double>, SGD<Double>> {
    Trainer(
      network: .mlp(inputFeatures: 32, hidden: [64], embeddingDimension: 16, seed: 3), loss: ContrastiveLoss<Double>(),
      sampler: PairMarginMiner<Double>(), optimizer: SGD(learningRate: 0.05, momentum: 0.9))
  }

  @Test("one rank: the same as the global mode")
  func oneRank() throws {
    let (x, labels, batches) = DistributedCheck.data(Double.self, steps: 3, batch: 128)
    var a = Self.trainer(), b = Self.trainer()
    for indices in batches {
      let xb = x.rows(indices), yb = indices.map { labels[$0] }
      let u = try a.train(xb, labels: yb)
      let v = try b.train(shard: xb, labels: yb, over: SingleProcess(), mode: .localAnchors)
      #expect(u.loss.total == v.loss.total)
    }
    #expect(a.network.namedParameters().map(\.parameter.value) == b.network.namedParameters().map(\.parameter.value))
  }

  @Test("two ranks: the loss is the sum of each rank's loss on its anchors against the whole batch, and the ranks stay identical")
  func twoRanks() throws {
    let (x, labels, batches) = DistributedCheck.data(Double.self, steps: 3, batch: 128)
    let results = ThreadGroup.run(size: 2) { group -> [Double] in
      var t = Self.trainer()
      var out: [Double] = []
      for indices in batches {
        let xb = x.rows(indices), yb = indices.map { labels[$0] }
        let rows = Shards.rows(batch: 128, rank: group.rank, size: 2)
        // The rank's own loss, by hand: its anchors against the batch (its rows first), before the step.
        var probe = Self.trainer()
        probe.network = t.network
        probe.network.forward(xb, mode: .training, compute: t.compute)
        let all = probe.network.embeddings
        let others = Array(0..<rows.lowerBound) + Array(rows.upperBound..<128)
        var memory = CrossBatchMemory<Double>(capacity: others.count)
        memory.enqueue(all.rows(others), labels: others.map { yb[$0] })
        let local = all.rows(Array(rows))
        memory.makeReferences(batch: local, labels: Array(yb[rows]))
        var scores = Matrix<Double>(), workspace = DistanceWorkspace<Double>(), tuples = Tuples.none
        probe.sampler.distance.scores(local, memory.references, into: &scores, workspace: &workspace)
        probe.sampler.mine(scores: scores, labels: memory.referenceLabels, into: &tuples)
        let own = probe.loss.evaluate(local, labels: Array(yb[rows]), memory: memory, tuples: tuples).total
        var sum = [own]
        try group.allReduceSum(&sum, what: "the check's loss")
        let step = try t.train(shard: xb.rows(Array(rows)), labels: yb, over: group, mode: .localAnchors)
        out.append(abs(step.loss.total - sum[0]) / abs(sum[0]))
      }
      out += t.network.namedParameters().flatMap { $0.parameter.value.elements }
      return out
    }
    let a = try results[0].get(), b = try results[1].get()
    let lossDifferences = Array(a.prefix(3))
    #expect(lossDifferences.allSatisfy { $0 < 1e-12 }, "\(lossDifferences)")
    #expect(a == b, "the ranks' parameters differ")
  }

  @Test("refused with a cross-batch memory or a loss without reference sets")
  func refusals() {
    let (x, labels, batches) = DistributedCheck.data(Double.self, steps: 1, batch: 16)
    let xb = x.rows(batches[0]), yb = batches[0].map { labels[$0] }
    var t = Self.trainer()
    t.memory = CrossBatchMemory(capacity: 32)
    #expect(throws: TrainingError.self) { try t.train(shard: xb, labels: yb, over: SingleProcess(), mode: .localAnchors) }
    var p = Trainer(
      network: MLP<Double>.mlp(inputFeatures: 32, hidden: [8], embeddingDimension: 16, seed: 3),
      loss: ProxyAnchorLoss<Double>(proxies: Proxies(classes: 16, dimension: 16, seed: 1, group: 0)), optimizer: SGD<Double>())
    #expect(throws: TrainingError.self) { try p.train(shard: xb, labels: yb, over: SingleProcess(), mode: .localAnchors) }
  }
}
