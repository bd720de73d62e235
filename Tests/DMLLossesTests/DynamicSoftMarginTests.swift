import DMLLosses
import Foundation
import Testing

@Suite("Dynamic soft margin (Golden/dynamic_soft_margin.json)")
struct DynamicSoftMarginTests {
  static func matrix(_ rows: Any) -> Matrix<Double> {
    let values = (rows as! [[NSNumber]]).map { $0.map(\.doubleValue) }
    return Matrix(values)
  }

  @Test("a sequence of batches: each value, gradient and running histogram to rtol 1e-9", arguments: GoldenCase.dynamicSoftMargin)
  func golden(_ c: GoldenCase) {
    let h = c.hyper
    var e = LossEvaluator(
      DynamicSoftMarginLoss<Double>(
        minimum: GoldenCase.number(h["min_val"]!), bins: (h["num_bins"] as! NSNumber).intValue, momentum: GoldenCase.number(h["momentum"]!)))
    for (k, step) in (c.inputs["steps"] as! [[String: Any]]).enumerated() {
      var tuples: Tuples?
      if let given = step["indices_tuple"] as? [String: Any] {
        let p = (given["pos_pairs"] as! [[Int]]).map { SIMD2(Int32($0[0]), Int32($0[1])) }
        let n = (given["neg_pairs"] as! [[Int]]).map { SIMD2(Int32($0[0]), Int32($0[1])) }
        tuples = .pairs(positive: p, negative: n)
      }
      let value = e.evaluate(Self.matrix(step["embeddings"]!), labels: step["labels"] as! [Int], tuples: tuples)
      // Evaluating again before the step's end gives the same value: the histogram is committed after.
      let again = e.evaluate(Self.matrix(step["embeddings"]!), labels: step["labels"] as! [Int], tuples: tuples)
      #expect(again.total == value.total)
      expectClose(value.total, GoldenCase.number(step["loss"]!), "\(c.name) step \(k) loss")
      expectClose(e.embeddingGradient, Self.matrix(step["grad_embeddings"]!), "\(c.name) step \(k) gradient")
      if let pml = step["grad_embeddings_pml"] {
        // PML's gradient also flows through the histogram's bin fractions: it differs.
        let theirs = Self.matrix(pml)
        let gap = zip(e.embeddingGradient.elements, theirs.elements).map { abs($0 - $1) }.max()!
        #expect(gap > 1e-6, "\(c.name): PML's gradient equals the paper's")
      }
      e.updateReferences()
      let histogram = (step["histogram"] as! [NSNumber]).map(\.doubleValue)
      expectClose(e.loss.histogram.value, Matrix(rows: 1, columns: histogram.count, elements: histogram), "\(c.name) step \(k) histogram")
    }
  }

  @Test("one class: no triplet, zero loss, the histogram untouched")
  func noTriplets() {
    var x = Matrix<Double>(rows: 6, columns: 4)
    var rng = RandomSource(seed: 3)
    x.apply { _ in rng.normal() }
    var e = LossEvaluator(DynamicSoftMarginLoss<Double>())
    #expect(e.evaluate(x, labels: [Int](repeating: 1, count: 6), tuples: nil).total == 0)
    e.updateReferences()
    #expect(e.loss.histogram.value.elements.allSatisfy { $0 == 0 })
    #expect(e.embeddingGradient.elements.allSatisfy { $0 == 0 })
  }

  @Test("differences outside the bins count in the first or last one, and the histogram stays a distribution")
  func outsideTheBins() {
    // min_val −0.25: the bins span [−0.25, 0.25], narrower than the differences of random rows.
    var x = Matrix<Double>(rows: 12, columns: 5)
    var rng = RandomSource(seed: 5)
    x.apply { _ in rng.normal() }
    var e = LossEvaluator(DynamicSoftMarginLoss<Double>(minimum: -0.25, bins: 4, momentum: 0.5))
    let value = e.evaluate(x, labels: (0..<12).map { $0 % 3 }, tuples: nil)
    e.updateReferences()
    let h = e.loss.histogram.value.elements
    #expect(value.total.isFinite && e.embeddingGradient.isFinite)
    #expect(abs(h.reduce(0, +) - 1) < 1e-12 && h.allSatisfy { $0 >= 0 } && h.first! > 0 && h.last! > 0)
  }
}
