import DMLLosses
import Foundation
import Testing

/// P2SGradLoss against PML 2.9.0 (Golden/p2s_grad.json, from Benchmarks/Scripts/golden_p2s_grad.py).
@Suite("P2SGrad: class cosines against one-hot labels")
struct P2SGradTests {
  static let cases = GoldenCase.load("p2s_grad")

  @Test(
    "value and embeddings' gradient to rtol 1e-9; the weights' gradient is PML's without its component along each weight",
    arguments: cases)
  func golden(_ c: GoldenCase) {
    let w = c.matrix("weights")  // PML's layout: dimension × classes, unit columns
    var loss = LossEvaluator(P2SGradLoss(weights: ClassWeights(w.transposed)))
    let v = loss.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil)
    expectClose(v.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) embeddings' gradient")
    // PML differentiates x·w with w held at unit length and renormalises it outside the gradient;
    // the cosine here normalises w inside it: PML's gradient projected orthogonally to each w.
    let pml = c.output("grad_weights")
    var projected = pml.transposed  // classes × dimension, as ours
    let unit = w.transposed
    for j in 0..<projected.rows {
      let along = (0..<projected.columns).reduce(0.0) { $0 + projected[j, $1] * unit[j, $1] }
      for k in 0..<projected.columns { projected[j, k] -= along * unit[j, k] }
    }
    expectClose(loss.loss.weights.parameter.gradient, projected, "\(c.name) weights' gradient")
    // Not vacuous: PML's gradient has a component along the weights that ours lacks.
    let radial = (0..<pml.columns).map { j in (0..<pml.rows).reduce(0.0) { $0 + pml[$1, j] * w[$1, j] } }
    #expect(radial.contains { abs($0) > 1e-6 })
  }
}
