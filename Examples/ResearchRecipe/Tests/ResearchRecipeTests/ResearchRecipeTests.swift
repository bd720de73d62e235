import Foundation
import DMLTesting
import ResearchRecipe
import Testing

@Suite("Binomial deviance loss and the hardest-pairs miner, from outside the library")
struct ResearchRecipeTests {
  @Test("passes the library's conformance suite (gradients against finite differences, with and without a memory)")
  func conformance() {
    // C = 5 keeps Float within the suite's 1e-4 of Double; the default C = 25 is checked below.
    let failures = LossConformance.failures(
      BinomialDevianceLoss<Double>(negativeCost: 5), BinomialDevianceLoss<Float>(negativeCost: 5), usesTuples: true)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("the hardest-pairs miner passes the library's sampler conformance suite")
  func miner() {
    let failures = SamplerConformance.failures(HardestPairsMiner<Double>())
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("the defaults stay finite, and the loss trains apart what it should")
  func defaults() {
    let batch = LossConformance.Batch(rows: 16, dimension: 8, classes: 4, seed: 3)
    var evaluator = LossEvaluator(BinomialDevianceLoss<Double>())
    let v = evaluator.evaluate(batch.embeddings, labels: batch.labels, tuples: nil)
    #expect(v.total.isFinite && v.total > 1 && evaluator.embeddingGradient.isFinite)
    // A small step against the gradient lowers the loss.
    var moved = batch.embeddings
    moved.add(evaluator.embeddingGradient, scaledBy: -1e-3)
    var again = LossEvaluator(BinomialDevianceLoss<Double>())
    #expect(again.evaluate(moved, labels: batch.labels, tuples: nil).total < v.total)
  }

  @Test("the value is Yi et al.'s formula, computed directly for mined pairs")
  func value() {
    // Positive pair (0, 1) at s = 0.9; negative pairs (0, 2), (0, 3) at s = 0.3, −0.5.
    let s: [[Double]] = [[1, 0.9, 0.3, -0.5], [0.9, 1, 0.2, 0.1], [0.3, 0.2, 1, 0.4], [-0.5, 0.1, 0.4, 1]]
    var gradient = Matrix<Double>()
    var loss = BinomialDevianceLoss<Double>(alpha: 2, beta: 0.5, negativeCost: 25)
    let tuples = Tuples.pairs(positive: [SIMD2(0, 1)], negative: [SIMD2(0, 2), SIMD2(0, 3)])
    let v = loss.compute(scores: Matrix(s), labels: [0, 0, 1, 2], tuples: tuples, scoreGradient: &gradient)
    let positive = log(1 + exp(-2 * (0.9 - 0.5)))
    let negative = (log(1 + exp(50 * (0.3 - 0.5))) + log(1 + exp(50 * (-0.5 - 0.5)))) / 2
    #expect(abs(v.total - (positive + negative)) < 1e-12)
    #expect(v.first.count == 1 && v.term("neg_loss")?.count == 2)
    #expect(gradient[0, 1] < 0 && gradient[0, 2] > 0 && gradient[1, 0] == 0)
  }
}
