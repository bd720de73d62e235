import DMLLosses
import Testing

@Suite("Self-supervised pair losses over two views (Golden/self_supervised.json)")
struct SelfSupervisedTests {
  /// The two views as one batch, rows `a_0, b_0, a_1, b_1, …`, label `i` for both views of `i`.
  static func batch(_ c: GoldenCase) -> (Matrix<Double>, [Int]) {
    let (a, b) = (c.matrix("embeddings"), c.matrix("ref_emb"))
    var x = Matrix<Double>(rows: 2 * a.rows, columns: a.columns)
    for i in 0..<a.rows {
      for k in 0..<a.columns {
        x[2 * i, k] = a[i, k]
        x[2 * i + 1, k] = b[i, k]
      }
    }
    return (x, (0..<a.rows).flatMap { [$0, $0] })
  }

  static func evaluate(_ c: GoldenCase) -> (LossValue<Double>, Matrix<Double>) {
    let symmetric = c.inputs["symmetric"] as! Bool
    func run<L: PairwiseLoss>(_ inner: L) -> (LossValue<Double>, Matrix<Double>) where L.Scalar == Double {
      var loss = SelfSupervisedLoss(inner, symmetric: symmetric)
      let (x, y) = batch(c)
      let value = loss.evaluate(x, labels: y, tuples: nil)
      #expect(loss.failure == nil)
      return (value, loss.embeddingGradient)
    }
    let name = c.name
    if name.hasPrefix("ntxent") { return run(NTXentLoss<Double>(temperature: c.hyper("temperature"))) }
    if name.hasPrefix("contrastive") { return run(ContrastiveLoss<Double>(positiveMargin: c.hyper("pos_margin"), negativeMargin: c.hyper("neg_margin"))) }
    if name.hasPrefix("triplet") { return run(TripletMarginLoss<Double>(margin: c.hyper("margin"))) }
    if name.hasPrefix("supcon") { return run(SupConLoss<Double>(temperature: c.hyper("temperature"))) }
    if name.hasPrefix("multi_similarity") { return run(MultiSimilarityLoss<Double>(alpha: c.hyper("alpha"), beta: c.hyper("beta"), base: c.hyper("base"))) }
    return run(CircleLoss<Double>(margin: c.hyper("m"), gamma: c.hyper("gamma")))
  }

  @Test("value and both views' gradients to rtol 1e-9, symmetric and one-way", arguments: GoldenCase.selfSupervised)
  func golden(_ c: GoldenCase) {
    let (value, gradient) = Self.evaluate(c)
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    let (a, b) = (c.output("grad_embeddings"), c.output("grad_ref_emb"))
    var expected = Matrix<Double>(rows: 2 * a.rows, columns: a.columns)
    for i in 0..<a.rows {
      for k in 0..<a.columns {
        expected[2 * i, k] = a[i, k]
        expected[2 * i + 1, k] = b[i, k]
      }
    }
    expectClose(gradient, expected, "\(c.name) gradients")
  }

  @Test("one way differs from the whole batch: the same views, another loss")
  func oneWayIsNotSymmetric() {
    let c = GoldenCase.selfSupervised.first { $0.name == "ntxent_one_way" }!
    let (x, y) = Self.batch(c)
    var both = SelfSupervisedLoss(NTXentLoss<Double>(temperature: 0.1), symmetric: true)
    var one = SelfSupervisedLoss(NTXentLoss<Double>(temperature: 0.1), symmetric: false)
    #expect(abs(both.evaluate(x, labels: y, tuples: nil).total - one.evaluate(x, labels: y, tuples: nil).total) > 1e-3)
  }

  @Test("labels that do not pair the rows give no loss and say which label")
  func unpaired() {
    var x = Matrix<Double>(rows: 5, columns: 3)
    var rng = RandomSource(seed: 4)
    x.apply { _ in rng.normal() }
    var loss = SelfSupervisedLoss(ContrastiveLoss<Double>(), symmetric: false)
    #expect(loss.evaluate(x, labels: [0, 0, 1, 1, 1], tuples: nil).total == 0)
    #expect(loss.failure?.contains("label 1 has more than two rows") == true)
    #expect(loss.evaluate(x, labels: [0, 0, 1, 1, 2], tuples: nil).total == 0)
    #expect(loss.failure?.contains("label 2 has one row") == true)
    #expect(loss.embeddingGradient.elements.allSatisfy { $0 == 0 })
  }

  @Test("by name: self_supervised=symmetric or one-way on a pair loss; refused on proxies and, one way, on losses that read no pairs")
  func registry() throws {
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    _ = try LossRegistry.standard.make("ntxent:self_supervised=one-way,temperature=0.2", context: context)
    _ = try LossRegistry.standard.make("nca:self_supervised=symmetric", context: context)
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("nca:self_supervised=one-way", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("proxy-anchor:self_supervised=symmetric", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("ntxent:self_supervised=both", context: context) }
  }
}
