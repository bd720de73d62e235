import DMLLosses
import DMLTesting
import Foundation
import Testing

@Suite("Regularizers: PML's five, alone and as loss mixins")
struct RegularizerTests {
  static let regularizerCases = GoldenCase.regularizers.filter { $0.inputs["x"] != nil }
  static let lossCases = GoldenCase.regularizers.filter { $0.inputs["x"] == nil }

  static func regularizer(_ c: GoldenCase) -> Regularizer {
    switch c.name {
    case "lp_default": .lp()
    case "lp_p1_power2": .lp(p: 1, power: 2)
    case "lp_p3": .lp(p: 3, power: 0.5)
    case "zero_mean": .zeroMean
    case "center_invariant": .centerInvariant
    case "regular_face": .regularFace
    default: .sparseCenters(centersPerClass: 2)
    }
  }

  @Test("each regularizer's value and gradient equal PML's to rtol 1e-9, and its gradient equals finite differences", arguments: regularizerCases)
  func golden(_ c: GoldenCase) {
    let r = Self.regularizer(c)
    let x = c.matrix("x")
    var g = Matrix<Double>()
    expectClose(r.evaluate(x, gradient: &g), c.scalar("loss"), "\(c.name) value")
    expectClose(g, c.output("grad_x"), "\(c.name) gradient")
    // Central differences away from kinks (the zero row of lp_p1_power2 is one: skipped there).
    var e = x, worst = 0.0
    for i in 0..<x.rows where !(c.name == "lp_p1_power2" && i == 3) {
      for j in 0..<x.columns {
        var scratch = Matrix<Double>()
        let v = e[i, j]
        e[i, j] = v + 1e-6
        let plus = r.evaluate(e, gradient: &scratch)
        e[i, j] = v - 1e-6
        let minus = r.evaluate(e, gradient: &scratch)
        e[i, j] = v
        worst = max(worst, abs((plus - minus) / 2e-6 - g[i, j]))
      }
    }
    #expect(worst < 1e-6, "\(c.name): finite differences off by \(worst)")
  }

  /// The loss a case names, in Double, regularized as the case says.
  static func loss(_ c: GoldenCase) -> RegularizedLoss<AnyEmbeddingLoss<Double>> {
    let h = c.hyper
    let base: AnyEmbeddingLoss<Double>
    switch h["loss"] as! String {
    case "contrastive": base = AnyEmbeddingLoss(LossEvaluator(ContrastiveLoss<Double>()))
    case "arcface": base = AnyEmbeddingLoss(LossEvaluator(ArcFaceLoss<Double>(weights: ClassWeights(c.matrix("weights")))))
    default: base = AnyEmbeddingLoss(LossEvaluator(ProxyAnchorLoss<Double>(proxies: Proxies(c.matrix("weights"), group: 1))))
    }
    func regularizer(_ key: String) -> Regularizer? { (h[key] as? String).map { try! Regularizer.named($0) } }
    let weightName = (h["loss"] as! String) == "arcface" ? "class_weights" : "proxies"
    return RegularizedLoss(
      base, embedding: regularizer("embedding_regularizer").map { ($0, c.hyper("embedding_reg_weight")) },
      weights: regularizer("weight_regularizer").map { ($0, c.hyper("weight_reg_weight"), weightName) })
  }

  @Test("a loss with an embedding or weight regularizer equals PML's: value, embedding gradient, weight gradient", arguments: lossCases)
  func regularizedLoss(_ c: GoldenCase) {
    var loss = Self.loss(c)
    let value = loss.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil)
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) embedding gradient")
    if c.outputs["grad_weights"] != nil {
      let weights = loss.namedParameters().first!.parameter
      expectClose(weights.gradient, c.output("grad_weights"), "\(c.name) weight gradient")
    }
  }

  @Test("non-finite weights give a NaN value, never a trap")
  func nonFinite() {
    var w = Matrix<Double>(rows: 3, columns: 2, repeating: .nan)
    var g = Matrix<Double>()
    #expect(Regularizer.regularFace.evaluate(w, gradient: &g).isNaN)
    w[0, 0] = 1
    #expect(!Regularizer.centerInvariant.evaluate(w, gradient: &g).isFinite)
  }

  @Test("the registry wraps a loss given regularizer keys, and refuses what cannot apply, by name")
  func registry() throws {
    let registry = LossRegistry.standard
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    let batch = LossConformance.Batch(rows: 12, dimension: 8, classes: 4)
    let x: Matrix<Float> = batch.embeddings.converted()
    var plain = try registry.make("contrastive", context: context).loss
    var regularized = try registry.make("contrastive:embedding_regularizer=lp,embedding_reg_weight=0.5", context: context).loss
    let a = plain.evaluate(x, labels: batch.labels, tuples: nil).total, b = regularized.evaluate(x, labels: batch.labels, tuples: nil).total
    var g = Matrix<Float>()
    let lp = Regularizer.lp().evaluate(x, gradient: &g)
    #expect(abs(b - (a + 0.5 * lp)) < 1e-5)
    var arcface = try registry.make("arcface:weight_regularizer=center-invariant,weight_reg_weight=2", context: context).loss
    _ = arcface.evaluate(x, labels: batch.labels, tuples: nil)
    #expect(arcface.namedParameters().map(\.name) == ["class_weights"])
    func refused(_ text: String, _ message: String) -> Bool {
      do {
        _ = try registry.make(text, context: context)
        return false
      } catch { return "\(error)".contains(message) }
    }
    #expect(refused("contrastive:weight_regularizer=regular-face", "contrastive: weight_regularizer needs class weights, centers or proxies, and this loss has no learned tensor"))
    #expect(refused("arcface:weight_regularizer=sparse-centers", "weight_regularizer=sparse-centers: sparse-centers needs several centers per class"))
    #expect(refused("contrastive:embedding_regularizer=sparse-centers", "regularizes class centers, not embeddings"))
    #expect(refused("contrastive:embedding_regularizer=l3", "embedding_regularizer=l3 is not one of none, lp, zero-mean"))
    #expect(refused("contrastive:embedding_reg_weight=-1", "embedding_reg_weight=-1 must be ≥ 0"))
    #expect(refused("contrastive:weight=-2", "contrastive: weight=-2 must be ≥ 0"))
  }
}

@Suite("Reducers: PML's threshold, per-anchor, class-weighted and multiple reducers (Golden/reducers.json)")
struct ReducerTests {
  @Test("value and gradient to rtol 1e-9", arguments: GoldenCase.reducers)
  func golden(_ c: GoldenCase) {
    let h = c.hyper
    let reduction = Reduction(rawValue: h["reduction"] as! String)!
    let low = (h["low"] as? NSNumber)?.doubleValue ?? 0, high = (h["high"] as? NSNumber)?.doubleValue ?? .infinity
    let weights = (h["class_weights"] as? [NSNumber])?.map(\.doubleValue) ?? []
    func run<L: PairwiseLoss>(_ loss: L) -> (Double, Matrix<Double>) where L.Scalar == Double {
      var e = LossEvaluator(loss)
      return (e.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: GoldenLoss.tuples(c)).total, e.embeddingGradient)
    }
    let (value, gradient): (Double, Matrix<Double>)
    switch c.inputs["loss"] as? String ?? String(c.name.prefix { $0 != "_" }) {
    case "contrastive":
      (value, gradient) = run(
        ContrastiveLoss<Double>(
          positiveMargin: c.hyper("pos_margin"), negativeMargin: c.hyper("neg_margin"), reduction: reduction, low: low, high: high,
          positiveReduction: (h["pos_reduction"] as? String).flatMap(Reduction.init(rawValue:)), classWeights: weights))
    case "triplet":
      (value, gradient) = run(TripletMarginLoss<Double>(margin: c.hyper("margin"), reduction: reduction, low: low, high: high, classWeights: weights))
    default:
      (value, gradient) = run(
        CircleLoss<Double>(margin: c.hyper("m"), gamma: c.hyper("gamma"), reduction: reduction, low: low, high: high, classWeights: weights))
    }
    expectClose(value, c.scalar("loss"), "\(c.name) loss")
    expectClose(gradient, c.output("grad_embeddings"), "\(c.name) grad_embeddings")
    if c.outputs["loss_pml"] != nil {
      // PML broadcasts the circle loss's N × 1 losses against the N weights: mean × mean.
      #expect(abs(c.scalar("loss_pml") - value) > 0.1, "\(c.name): PML's broadcast value equals the weighted mean")
    }
  }

  @Test("by name: reduction=threshold with low and high, per-anchor, a sub-loss's own; triplets refuse per-anchor")
  func registry() throws {
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    _ = try LossRegistry.standard.make("contrastive:reduction=threshold,low=0.1,high=0.6", context: context)
    _ = try LossRegistry.standard.make("contrastive:reduction=per-anchor", context: context)
    _ = try LossRegistry.standard.make("circle:reduction=per-anchor", context: context)
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("triplet:reduction=per-anchor", context: context) }
    _ = try LossRegistry.standard.make("contrastive:pos_reduction=mean,neg_reduction=threshold,low=0.1", context: context)
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("contrastive:reduction=per-anchor,pos_reduction=mean", context: context) }
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("contrastive:pos_reduction=per-anchor", context: context) }
    _ = try LossRegistry.standard.make("triplet:reduction=class-weighted,class_weights=1/2/0.5/1", context: context)
    for bad in ["class_weights=1/2", "class_weights=1/x/1/1", "class_weights=1/-1/1/1", ""] {
      #expect(throws: SpecificationError.self, "\(bad)") {
        try LossRegistry.standard.make("contrastive:reduction=class-weighted" + (bad.isEmpty ? "" : "," + bad), context: context)
      }
    }
  }
}
