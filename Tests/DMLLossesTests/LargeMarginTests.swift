import DMLLosses
import Testing

@Suite("Large-margin softmax and SphereFace (Golden/large_margin.json)")
struct LargeMarginTests {
  static func loss(_ c: GoldenCase) -> LargeMarginSoftmaxLoss<Double> {
    LargeMarginSoftmaxLoss(
      weights: ClassWeights(c.matrix("weights").transposed), margin: Int(c.hyper("margin")), scale: c.hyper("scale"),
      variant: c.name.hasPrefix("sphereface") ? .sphereFace : .largeMargin)
  }

  @Test("value, the embeddings' and the class weights' gradients to rtol 1e-9, and the papers' formula", arguments: GoldenCase.largeMargin)
  func golden(_ c: GoldenCase) {
    var loss = Self.loss(c)
    let value = loss.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil)
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(value.total, c.scalar("naive_loss"), "\(c.name) naive loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) grad_embeddings")
    expectClose(loss.weights.parameter.gradient, c.output("grad_weights").transposed, "\(c.name) grad_weights")
    #expect(value.first.count == c.labels.count)
  }

  @Test(
    "the gradients are the value's, by central differences (embeddings and class weights), for both variants and odd and even margins",
    arguments: [(LargeMarginSoftmaxLoss<Double>.Variant.largeMargin, 4), (.largeMargin, 3), (.sphereFace, 4), (.sphereFace, 2)])
  func finiteDifferences(_ variant: LargeMarginSoftmaxLoss<Double>.Variant, _ margin: Int) {
    var rng = RandomSource(seed: 31)
    var x = Matrix<Double>(rows: 9, columns: 5)
    x.apply { _ in rng.normal() }
    let labels = [0, 2, 1, 3, 2, 0, 1, 3, 3]
    var loss = LargeMarginSoftmaxLoss<Double>(weights: ClassWeights(classes: 4, dimension: 5, seed: 8), margin: margin, scale: 1.5, variant: variant)
    _ = loss.evaluate(x, labels: labels, tuples: nil)
    let (analyticX, analyticW) = (loss.embeddingGradient, loss.weights.parameter.gradient)
    let w = loss.weights.parameter.value
    func value(_ x: Matrix<Double>, _ w: Matrix<Double>) -> Double {
      var l = loss
      l.weights.parameter.value = w
      return l.evaluate(x, labels: labels, tuples: nil).total
    }
    let onX = centralDifferences(at: x, analytic: analyticX) { value($0, w) }
    let onW = centralDifferences(at: w, analytic: analyticW) { value(x, $0) }
    let (worst, largest) = (max(onX.worst, onW.worst), max(onX.largest, onW.largest))
    #expect(worst <= 1e-6 * max(1, largest), "\(variant) m \(margin): worst difference \(worst)")
    #expect(largest > 0.01)
  }

  @Test("built by name with its class weights; margin and scale are checked")
  func registry() throws {
    let context = LossContext(classes: 5, embeddingDimension: 8, seed: 1)
    for name in ["large-margin-softmax", "sphereface"] {
      let loss = try LossRegistry.standard.make("\(name):margin=3,scale=2", context: context).loss
      #expect(loss.namedParameters().map(\.name) == ["class_weights"])
      #expect(loss.namedParameters()[0].parameter.value.rows == 5)
    }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("sphereface:margin=0", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("large-margin-softmax:scale=-1", context: context) }
  }
}
