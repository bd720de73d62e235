import DMLLosses
import Testing

@Suite("Losses evaluated in blocks of anchors (AnchorBlockedLoss)")
struct AnchorBlockTests {
  static func batch(rows: Int = 23, columns: Int = 6, classes: Int = 5, seed: UInt64 = 11) -> (Matrix<Double>, [Int]) {
    (BeyondPMLTests.batch(rows: rows, dimension: columns, seed: seed), (0..<rows).map { ($0 * 7 + $0 / 3) % classes })
  }

  /// The loss over the whole batch, then block by block at several sizes: the same value, terms and
  /// gradient (to rounding), with and without a cross-batch memory.
  static func check<L: PairwiseLoss>(_ loss: L, _ name: String, memoryRows: Int = 0) where L.Scalar == Double {
    let (x, y) = batch()
    var memory: CrossBatchMemory<Double>?
    if memoryRows > 0 {
      var m = CrossBatchMemory<Double>(capacity: memoryRows)
      let (held, heldLabels) = batch(rows: memoryRows, seed: 5)
      m.enqueue(held, labels: heldLabels)
      m.makeReferences(batch: x, labels: y)
      memory = m
    }
    var whole = LossEvaluator(loss)
    let expected = whole.evaluate(x, labels: y, memory: memory, tuples: nil)
    #expect(expected.total != 0, "\(name): a zero loss checks nothing")
    for rows in [1, 4, 7, 23, 40] {
      guard var blocked = AnchorBlockedLoss(loss, blockRows: rows) else {
        Issue.record("\(name): refused anchor blocks")
        return
      }
      let value = blocked.evaluate(x, labels: y, memory: memory, tuples: nil)
      #expect(blocked.failure == nil)
      expectClose(value.total, expected.total, "\(name), blocks of \(rows): value")
      for (a, e) in zip(value.terms, expected.terms) {
        expectClose(a.value, e.value, "\(name), blocks of \(rows): \(e.name)")
        #expect(a.count == e.count && a.nonZero == e.nonZero, "\(name), blocks of \(rows): \(e.name) counts \(a) vs \(e)")
      }
      expectClose(blocked.embeddingGradient, whole.embeddingGradient, "\(name), blocks of \(rows): gradient")
      // The last block's scores: its rows (at most `rows`) against every column.
      #expect(blocked.scores.rows == (x.rows % rows == 0 ? min(rows, x.rows) : x.rows % rows))
      #expect(blocked.scores.columns == x.rows + memoryRows)
    }
  }

  @Test("one-term losses: the whole batch's value and gradient at blocks of 1, 4, 7, 23 and 40 rows")
  func oneTerm() {
    Self.check(SupConLoss<Double>(temperature: 0.2), "supcon")
    Self.check(NTXentLoss<Double>(temperature: 0.3), "ntxent")
    Self.check(DecoupledContrastiveLoss<Double>(temperature: 0.3), "decoupled-contrastive")
    Self.check(NCALoss<Double>(), "nca")
    Self.check(TupletMarginLoss<Double>(scale: 8), "tuplet-margin")
    Self.check(CircleLoss<Double>(margin: 0.4, gamma: 4), "circle")
    Self.check(CircleLoss<Double>(margin: 0.4, gamma: 4, reduction: .mean), "circle, mean")
    Self.check(TripletMarginLoss<Double>(margin: 0.3), "triplet")
    Self.check(TripletMarginLoss<Double>(margin: 0.3, reduction: .sum), "triplet, sum")
    Self.check(TripletMarginLoss<Double>(margin: 0.3, distance: .cosine, reduction: .mean), "triplet, cosine, mean")
    Self.check(SelectivelyContrastiveTripletLoss<Double>(margin: 0.3), "selectively-contrastive-triplet")
  }

  @Test("two-term losses: each term's blocks divided by its own count (positive pairs, negative pairs)")
  func twoTerms() {
    Self.check(ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.2), "contrastive")
    Self.check(
      ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.2, reduction: .mean, negativeReduction: .sum), "contrastive, mean and sum")
    Self.check(
      ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.2, reduction: .classWeighted, classWeights: [1, 2, 0.5, 3, 1]),
      "contrastive, class-weighted")
    Self.check(SNRContrastiveLoss<Double>(positiveMargin: 0.1, negativeMargin: 0.8), "snr-contrastive")
    Self.check(MultiSimilarityLoss<Double>(alpha: 2, beta: 10, base: 0.3), "multi-similarity")
  }

  @Test("with a cross-batch memory: the blocks' columns run over the batch and the memory; the memory gets no gradient")
  func memory() {
    Self.check(SupConLoss<Double>(temperature: 0.2), "supcon + memory", memoryRows: 9)
    Self.check(ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.2), "contrastive + memory", memoryRows: 9)
    Self.check(TripletMarginLoss<Double>(margin: 0.3), "triplet + memory", memoryRows: 9)
  }

  @Test("central differences of the blocked loss itself")
  func finiteDifferences() {
    let (x, y) = Self.batch(rows: 9, columns: 4, classes: 3)
    var blocked = AnchorBlockedLoss(ContrastiveLoss<Double>(positiveMargin: 0.1, negativeMargin: 1.5, reduction: .mean), blockRows: 2)!
    _ = blocked.evaluate(x, labels: y, tuples: nil)
    let analytic = blocked.embeddingGradient
    let (worst, largest) = centralDifferences(at: x, analytic: analytic) { blocked.evaluate($0, labels: y, tuples: nil).total }
    #expect(largest > 1e-3, "the check saw no gradient")
    #expect(worst < 1e-7 * max(1, largest), "central differences off by \(worst)")
  }

  @Test("refused where the terms do not split: rows coupled by the batch, swap, windows and per-anchor means, learned references")
  func refused() {
    #expect(AnchorBlockedLoss(TripletMarginLoss<Double>(swap: true), blockRows: 4) == nil)
    #expect(AnchorBlockedLoss(ContrastiveLoss<Double>(reduction: .threshold), blockRows: 4) == nil)
    #expect(AnchorBlockedLoss(ContrastiveLoss<Double>(reduction: .perAnchor), blockRows: 4) == nil)
    #expect(AnchorBlockedLoss(LiftedStructureLoss<Double>(), blockRows: 4) == nil)
    #expect(AnchorBlockedLoss(UniformityLoss<Double>(), blockRows: 4) == nil)
    #expect(AnchorBlockedLoss(SupConLoss<Double>(), blockRows: 0) == nil)
    #expect(AnchorBlockedLoss(ProxyAnchorLoss<Double>(proxies: Proxies(classes: 3, dimension: 4, seed: 1, group: 1)), blockRows: 4) == nil)
  }

  @Test("mined tuples are refused with a reason, not used")
  func tuples() {
    let (x, y) = Self.batch()
    var blocked = AnchorBlockedLoss(SupConLoss<Double>(), blockRows: 4)!
    let value = blocked.evaluate(x, labels: y, tuples: .pairs(positive: [SIMD2(0, 1)], negative: [SIMD2(0, 2)]))
    #expect(value.total.isNaN)
    #expect(blocked.failure?.contains("mined tuples") == true)
  }

  @Test("by name: anchor_block=N on a loss over pairs; refused on proxies, on coupled terms, and beside self_supervised")
  func registry() throws {
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    let (x, y) = Self.batch(columns: 8, classes: 4)
    let xf = Matrix<Float>(rows: x.rows, columns: x.columns, elements: x.elements.map { Float($0) })
    var whole = try LossRegistry.standard.make("supcon:temperature=0.2", context: context).loss
    var blocked = try LossRegistry.standard.make("supcon:temperature=0.2,anchor_block=5", context: context).loss
    let a = whole.evaluate(xf, labels: y, tuples: nil).total, b = blocked.evaluate(xf, labels: y, tuples: nil).total
    #expect(abs(a - b) <= 1e-5 * abs(a), "\(a) vs \(b)")
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("proxy-anchor:anchor_block=5", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("lifted-structure:anchor_block=5", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("triplet:swap=true,anchor_block=5", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("ntxent:anchor_block=5,self_supervised=symmetric", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("supcon:anchor_block=-1", context: context) }
  }
}
