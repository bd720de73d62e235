import DMLLosses
import DMLNetworks
import DMLSamplers
import DMLTesting
import DMLTraining
import Testing

/// Cross-batch memory (Wang et al. 2020): a step against the memory is one big batch made of the
/// memory plus the current batch, with anchors restricted to the current batch.
@Suite("Cross-batch memory")
struct CrossBatchMemoryTests {
  static let (n, d, batches) = (8, 6, 4)

  /// Four batches of embeddings from a frozen model, and their labels (3 classes).
  static func data(seed: UInt64 = 3) -> [(Matrix<Double>, [Int])] {
    var rng = RandomSource(seed: seed)
    return (0..<batches).map { _ in
      var e = Matrix<Double>(rows: n, columns: d)
      e.apply { _ in rng.normal() }
      return (e, (0..<n).map { _ in rng.index(below: 3) })
    }
  }

  /// Every pair `(i, j)`, `j ≠ i`, or every triplet, whose anchor is one of the first `n` rows.
  static func restrictedTuples(labels: [Int], anchors n: Int, triplets: Bool) -> Tuples {
    var pos: [SIMD2<Int32>] = [], neg: [SIMD2<Int32>] = [], tri: [SIMD3<Int32>] = []
    let m = labels.count
    for a in 0..<n {
      for p in 0..<m where p != a {
        if labels[p] == labels[a] {
          pos.append(SIMD2(Int32(a), Int32(p)))
          if triplets { for q in 0..<m where labels[q] != labels[a] { tri.append(SIMD3(Int32(a), Int32(p), Int32(q))) } }
        } else {
          neg.append(SIMD2(Int32(a), Int32(p)))
        }
      }
    }
    return triplets ? .triplets(tri) : .pairs(positive: pos, negative: neg)
  }

  /// Keeps the tuples whose anchor is one of the first `n` rows.
  static func restrict(_ t: Tuples, anchors n: Int) -> Tuples {
    t.arePairs
      ? .pairs(positive: t.positivePairs.filter { Int($0.x) < n }, negative: t.negativePairs.filter { Int($0.x) < n })
      : .triplets(t.triplets.filter { Int($0.x) < n })
  }

  struct Outcome {
    var valueError: Double
    var gradientError: Double
    var tuplesEqual: Bool
    var value: Double
  }

  /// Runs the memory step and the big batch, and compares them. `rowMean`: the loss averages over
  /// anchors (rows), so the big batch's value is rescaled by its rows over the batch's.
  static func compare<L: PairwiseLoss, S: TupleSampler>(
    _ loss: L, sampler: S?, triplets: Bool, rowMean: Bool = false
  ) -> Outcome where L.Scalar == Double, S.Scalar == Double {
    let all = data()
    var memory = CrossBatchMemory<Double>(capacity: n * (batches - 1))
    for (e, y) in all.dropLast() { memory.enqueue(e, labels: y) }
    let (current, labels) = all.last!
    memory.makeReferences(batch: current, labels: labels)
    let big = memory.references, bigLabels = memory.referenceLabels
    #expect(big.rows == n * batches)

    var smallTuples: Tuples?, bigTuples: Tuples
    var workspace = DistanceWorkspace<Double>(), scores = Matrix<Double>()
    if var s = sampler {
      var mined = Tuples.none
      s.distance.scores(current, big, into: &scores, workspace: &workspace)
      s.mine(scores: scores, labels: bigLabels, into: &mined)
      smallTuples = mined
      var t = sampler!
      var bigMined = Tuples.none
      s.distance.scores(big, big, sameSet: true, into: &scores, workspace: &workspace)
      t.mine(scores: scores, labels: bigLabels, into: &bigMined)
      bigTuples = restrict(bigMined, anchors: n)
    } else {
      bigTuples = restrictedTuples(labels: bigLabels, anchors: n, triplets: triplets)
    }
    var withMemory = LossEvaluator(loss)
    let mv = withMemory.evaluate(current, labels: labels, memory: memory, tuples: smallTuples)
    var oneBatch = LossEvaluator(loss)
    let bv = oneBatch.evaluate(big, labels: bigLabels, tuples: bigTuples)
    let scale = rowMean ? Double(big.rows) / Double(n) : 1
    var gradientError = 0.0
    for i in 0..<n {
      for j in 0..<d {
        gradientError = max(gradientError, abs(withMemory.embeddingGradient[i, j] - scale * oneBatch.embeddingGradient[i, j]))
      }
    }
    return Outcome(
      valueError: abs(mv.total - scale * bv.total), gradientError: gradientError,
      tuplesEqual: smallTuples.map { $0 == bigTuples } ?? true, value: mv.total)
  }

  @Test("contrastive, every pair")
  func contrastive() {
    let o = Self.compare(ContrastiveLoss<Double>(positiveMargin: 0.5, negativeMargin: 2), sampler: NoMining<Double>?.none, triplets: false)
    #expect(o.value > 0.01)
    #expect(o.valueError < 1e-12 && o.gradientError < 1e-12)
  }

  @Test("contrastive with the pair-margin and batch-all miners")
  func contrastiveMined() {
    for o in [
      Self.compare(
        ContrastiveLoss<Double>(positiveMargin: 0.5, negativeMargin: 2),
        sampler: PairMarginMiner<Double>(positiveMargin: 1, negativeMargin: 2.5), triplets: false),
      Self.compare(ContrastiveLoss<Double>(positiveMargin: 0.5, negativeMargin: 2), sampler: BatchAllMiner<Double>(triplets: false), triplets: false),
    ] {
      #expect(o.value > 0.01 && o.tuplesEqual)
      #expect(o.valueError < 1e-12 && o.gradientError < 1e-12)
    }
  }

  @Test("triplet, every triplet; and with the semi-hard, batch-hard, batch-all and distance-weighted miners")
  func triplet() {
    let loss = TripletMarginLoss<Double>(margin: 0.5)
    for o in [
      Self.compare(loss, sampler: NoMining<Double>?.none, triplets: true),
      Self.compare(loss, sampler: FaceNetSemiHardMiner<Double>(), triplets: true),
      Self.compare(loss, sampler: BatchHardMiner<Double>(), triplets: true),
      Self.compare(loss, sampler: TripletMarginMiner<Double>(margin: 0.5, type: .semihard), triplets: true),
      Self.compare(loss, sampler: BatchAllMiner<Double>(triplets: true), triplets: true),
      // Seeded sampling: the first n anchors draw the same numbers in both.
      Self.compare(loss, sampler: DistanceWeightedMiner<Double>(dimension: Self.d, cutoff: 0.1, nonzeroLossCutoff: 10, seed: 2), triplets: true),
    ] {
      #expect(o.value > 0.01 && o.tuplesEqual)
      #expect(o.valueError < 1e-12 && o.gradientError < 1e-12)
    }
  }

  @Test("multi-similarity, with and without its miner (a mean over anchors)")
  func multiSimilarity() {
    for o in [
      Self.compare(MultiSimilarityLoss<Double>(), sampler: NoMining<Double>?.none, triplets: false, rowMean: true),
      Self.compare(MultiSimilarityLoss<Double>(), sampler: MultiSimilarityMiner<Double>(epsilon: 0.5), triplets: false, rowMean: true),
    ] {
      #expect(o.value > 0.01 && o.tuplesEqual)
      #expect(o.valueError < 1e-12 && o.gradientError < 1e-12)
    }
  }

  @Test("the trainer fills the memory after its warm-up and uses it; a frozen model's step equals the big batch")
  func trainer() throws {
    let all = Self.data(seed: 9)
    let net: MLP<Double> = .mlp(inputFeatures: Self.d, hidden: [10], embeddingDimension: 5, seed: 2)
    var t = Trainer(
      network: net, loss: LossEvaluator(TripletMarginLoss<Double>(margin: 0.3)), sampler: FaceNetSemiHardMiner<Double>(),
      optimizer: SGD<Double>(learningRate: 0))
    t.memory = CrossBatchMemory(capacity: 2 * Self.n, warmUp: 1)
    var embeddings: [Matrix<Double>] = []
    var last: StepResult<Double>?
    for (step, (x, y)) in all.enumerated() {
      last = try t.train(x, labels: y)
      embeddings.append(t.network.embeddings)
      // Step 0 is the warm-up; steps 1 and 2 fill it; step 3 compares with the two batches before.
      #expect(t.memory!.count == min(step, 2) * Self.n)
    }
    // The last step's reference set: its batch, then the two batches before it (slot order).
    let big = Matrix(
      rows: 3 * Self.n, columns: 5, elements: embeddings[3].elements + embeddings[1].elements + embeddings[2].elements)
    let bigLabels = all[3].1 + all[1].1 + all[2].1
    var scores = Matrix<Double>(), w = DistanceWorkspace<Double>()
    var miner = FaceNetSemiHardMiner<Double>()
    var mined = Tuples.none
    miner.distance.scores(big, big, sameSet: true, into: &scores, workspace: &w)
    miner.mine(scores: scores, labels: bigLabels, into: &mined)
    var reference = LossEvaluator(TripletMarginLoss<Double>(margin: 0.3))
    let value = reference.evaluate(big, labels: bigLabels, tuples: Self.restrict(mined, anchors: Self.n))
    #expect(value.total > 0.01)
    #expect(abs(last!.loss.total - value.total) < 1e-12)
    #expect(last!.mined == Self.restrict(mined, anchors: Self.n).count)
    var error = 0.0
    for i in 0..<Self.n { for j in 0..<5 { error = max(error, abs(t.loss.embeddingGradient[i, j] - reference.embeddingGradient[i, j])) } }
    #expect(error < 1e-12)
  }

  @Test("the queue overwrites its oldest rows and restores from a saved state")
  func queue() throws {
    var m = CrossBatchMemory<Double>(capacity: 5)
    let e = Matrix<Double>(rows: 3, columns: 2, elements: [1, 1, 2, 2, 3, 3])
    m.enqueue(e, labels: [1, 2, 3])
    m.enqueue(e, labels: [4, 5, 6])
    #expect(m.count == 5 && m.next == 1)
    #expect(m.slotLabels == [6, 2, 3, 4, 5])
    #expect(m.heldEmbeddings.elements == [3, 3, 2, 2, 3, 3, 1, 1, 2, 2])
    var r = CrossBatchMemory<Double>(capacity: 5)
    try r.restore(embeddings: m.heldEmbeddings, labels: Array(m.slotLabels[0..<5]), next: m.next)
    #expect(r.heldEmbeddings == m.heldEmbeddings && r.next == 1)
    #expect(throws: SpecificationError.self) { try r.restore(embeddings: e, labels: [1, 2], next: 0) }
    // A batch larger than the memory keeps its last rows.
    var small = CrossBatchMemory<Double>(capacity: 2)
    small.enqueue(e, labels: [7, 8, 9])
    #expect(small.heldEmbeddings.elements == [2, 2, 3, 3] && small.slotLabels == [8, 9])
  }

  @Test("losses with learned references refuse a memory")
  func refuses() {
    #expect(!LossEvaluator(ProxyAnchorLoss(proxies: Proxies<Double>(classes: 3, dimension: 4, seed: 1, group: 1))).acceptsMemory)
    #expect(LossEvaluator(ContrastiveLoss<Double>()).acceptsMemory)
    #expect(AnyEmbeddingLoss(LossEvaluator(UniformityLoss<Double>())).acceptsMemory)
  }
}
