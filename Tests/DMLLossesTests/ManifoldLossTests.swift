import DMLLosses
import Foundation
import Testing

@Suite("Manifold loss (Golden/manifold.json)")
struct ManifoldLossTests {
  static func loss(_ c: GoldenCase) -> ManifoldLoss<Double> {
    let h = c.hyper
    return ManifoldLoss(
      proxies: Proxies(c.matrix("proxies"), group: 1), contextWeight: (h["lambdaC"] as? NSNumber)?.doubleValue ?? 1,
      alpha: (h["alpha"] as? NSNumber)?.doubleValue ?? 0.8, margin: (h["margin"] as? NSNumber)?.doubleValue ?? 5e-4)
  }

  @Test("value, the embeddings' and the proxies' gradients to rtol 1e-9 (the inverse in float64 on both sides)", arguments: GoldenCase.manifold)
  func golden(_ c: GoldenCase) {
    var loss = Self.loss(c)
    let value = loss.evaluate(c.matrix("embeddings"), metaClasses: c.inputs["meta_classes"] as! [Int])
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) grad_embeddings")
    expectClose(loss.proxies.parameter.gradient, c.output("grad_proxies"), "\(c.name) grad_proxies")
  }

  @Test("the gradients are the value's, by central differences, embeddings and proxies")
  func finiteDifferences() {
    var rng = RandomSource(seed: 12)
    var x = Matrix<Double>(rows: 9, columns: 4)
    x.apply { _ in rng.normal() }
    let meta = [0, 1, 2, 0, 1, 2, 2, 0, 1]
    var loss = ManifoldLoss<Double>(proxies: Proxies(classes: 3, dimension: 4, seed: 3, group: 1), contextWeight: 0.7, alpha: 0.6, margin: 0.02)
    _ = loss.evaluate(x, metaClasses: meta)
    let (gx, gp) = (loss.embeddingGradient, loss.proxies.parameter.gradient)
    let p = loss.proxies.parameter.value
    func value(_ x: Matrix<Double>, _ p: Matrix<Double>) -> Double {
      var l = loss
      l.proxies.parameter.value = p
      return l.evaluate(x, metaClasses: meta).total
    }
    let onX = centralDifferences(at: x, analytic: gx) { value($0, p) }
    let onW = centralDifferences(at: p, analytic: gp) { value(x, $0) }
    let (worst, largest) = (max(onX.worst, onW.worst), max(onX.largest, onW.largest))
    #expect(worst <= 1e-7 * max(1, largest), "worst difference \(worst)")
    #expect(largest > 1e-3)
  }

  @Test("random meta-classes: every proxy once per batch, seeded; a batch smaller than K stops the step by name; labels as meta-classes")
  func metaClasses() throws {
    var loss = ManifoldLoss<Double>(proxies: Proxies(classes: 4, dimension: 3, seed: 1, group: 1), seed: 7)
    let meta = loss.randomMetaClasses(rows: 10)
    #expect(meta.count == 10 && Set(meta) == Set(0..<4))
    var again = ManifoldLoss<Double>(proxies: Proxies(classes: 4, dimension: 3, seed: 1, group: 1), seed: 7)
    #expect(again.randomMetaClasses(rows: 10) == meta)
    var x = Matrix<Double>(rows: 3, columns: 3)
    x.apply { _ in 0.5 }
    #expect(loss.evaluate(x, labels: [0, 1, 2], tuples: nil).total == 0)
    #expect(loss.failure?.contains("K=4") == true)
    var byLabel = ManifoldLoss<Double>(proxies: Proxies(classes: 4, dimension: 3, seed: 1, group: 1), metaClasses: .labels)
    var rng = RandomSource(seed: 2)
    var y = Matrix<Double>(rows: 6, columns: 3)
    y.apply { _ in rng.normal() }
    let fromLabels = byLabel.evaluate(y, labels: [0, 1, 2, 3, 0, 1], tuples: nil).total
    #expect(byLabel.failure == nil && abs(fromLabels - byLabel.evaluate(y, metaClasses: [0, 1, 2, 3, 0, 1]).total) == 0)
    _ = byLabel.evaluate(y, labels: [0, 1, 2, 3, 4, 1], tuples: nil)
    #expect(byLabel.failure?.contains("label 4 of row 4") == true)
    let context = LossContext(classes: 6, embeddingDimension: 8, seed: 1)
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("manifold:K=4,meta_classes=labels", context: context) }
    let built = try LossRegistry.standard.make("manifold:K=5", context: context).loss
    #expect(built.namedParameters().map(\.name) == ["proxies"])
  }
}
