import CircleLoss
import Foundation
import DMLTesting
import Testing

@Suite("Circle loss, from outside the library")
struct CircleLossTests {
  @Test("passes the library's conformance suite (gradients against finite differences, with and without a memory)")
  func conformance() {
    // γ = 8 keeps Float within the suite's 1e-4 of Double; the default γ = 80 is checked below.
    let failures = LossConformance.failures(CircleLoss<Double>(margin: 0.4, gamma: 8), CircleLoss<Float>(margin: 0.4, gamma: 8), usesTuples: true)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("the hardest-pairs miner passes the library's sampler conformance suite")
  func miner() {
    let failures = SamplerConformance.failures(HardestPairsMiner<Double>())
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("the default γ = 80 stays finite, and the loss trains apart what it should")
  func defaults() {
    let batch = LossConformance.Batch(rows: 16, dimension: 8, classes: 4, seed: 3)
    var evaluator = LossEvaluator(CircleLoss<Double>())
    let v = evaluator.evaluate(batch.embeddings, labels: batch.labels, tuples: nil)
    #expect(v.total.isFinite && v.total > 1 && evaluator.embeddingGradient.isFinite)
    // A small step against the gradient lowers the loss.
    var moved = batch.embeddings
    moved.add(evaluator.embeddingGradient, scaledBy: -1e-3)
    var again = LossEvaluator(CircleLoss<Double>())
    #expect(again.evaluate(moved, labels: batch.labels, tuples: nil).total < v.total)
  }

  @Test("the value is Sun et al.'s formula, computed directly for one anchor")
  func value() {
    // Anchor 0 has positive 1 (s = 0.9) and negatives 2, 3 (s = 0.3, −0.5).
    let s: [[Double]] = [[1, 0.9, 0.3, -0.5], [0.9, 1, 0.2, 0.1], [0.3, 0.2, 1, 0.4], [-0.5, 0.1, 0.4, 1]]
    let scores = Matrix<Double>(s)
    var gradient = Matrix<Double>()
    var loss = CircleLoss<Double>(margin: 0.25, gamma: 64)
    let tuples = Tuples.pairs(positive: [SIMD2(0, 1)], negative: [SIMD2(0, 2), SIMD2(0, 3)])
    let v = loss.compute(scores: scores, labels: [0, 0, 1, 2], tuples: tuples, scoreGradient: &gradient)
    let (m, g) = (0.25, 64.0)
    let lp = -g * (1 + m - 0.9) * (0.9 - (1 - m))
    let ln = log(exp(g * (0.3 + m) * (0.3 - m)) + exp(0))  // α_n = 0 for s = −0.5 < −m
    let expected = log(1 + exp(lp + ln))
    #expect(abs(v.total - expected) < 1e-12)
    #expect(v.first.count == 1)
    #expect(gradient[0, 3] == 0 && gradient[0, 1] < 0 && gradient[0, 2] > 0)
  }
}
