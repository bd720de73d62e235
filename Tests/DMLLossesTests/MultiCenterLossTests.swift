import DMLLosses
import DMLTesting
import Foundation
import Testing

@Suite("Multi-center losses: sub-center ArcFace and SoftTriple")
struct MultiCenterLossTests {
  /// The loss a case names, in Double, with the case's centers; regularized as the case says.
  static func loss(_ c: GoldenCase) -> AnyEmbeddingLoss<Double> {
    let centers = c.matrix("centers")
    if c.name.hasPrefix("subcenter") {
      return AnyEmbeddingLoss(LossEvaluator(SubCenterArcFaceLoss<Double>(
        weights: ClassWeights(centers), subCenters: Int(c.hyper("sub_centers")), marginDegrees: c.hyper("margin"), scale: c.hyper("scale"))))
    }
    let k = Int(c.hyper("centers_per_class"))
    let soft = LossEvaluator(SoftTripleLoss<Double>(centers: centers, centersPerClass: k, la: c.hyper("la"), gamma: c.hyper("gamma"), margin: c.hyper("margin")))
    guard c.hyper["weight_regularizer"] != nil else { return AnyEmbeddingLoss(soft) }
    return AnyEmbeddingLoss(RegularizedLoss(soft, weights: (.sparseCenters(centersPerClass: k), c.hyper("weight_reg_weight"), "class_centers")))
  }

  @Test("value, embedding gradient and center gradient equal PML 2.9.0's to rtol 1e-9", arguments: GoldenCase.multiCenter)
  func golden(_ c: GoldenCase) {
    var loss = Self.loss(c)
    let value = loss.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil)
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) embedding gradient")
    expectClose(loss.namedParameters()[0].parameter.gradient, c.output("grad_centers"), "\(c.name) center gradient")
  }

  @Test("both pass the conformance suite, learned centers included")
  func conformance() throws {
    var rng = RandomSource(seed: 4)
    var centers = Matrix<Double>(rows: 12, columns: 6)
    centers.apply { _ in rng.normal() }
    let sub = LossConformance.failures(
      SubCenterArcFaceLoss<Double>(weights: ClassWeights(centers), subCenters: 3, scale: 8),
      SubCenterArcFaceLoss<Float>(weights: ClassWeights(centers.converted()), subCenters: 3, scale: 8), usesTuples: false)
    #expect(sub.isEmpty, "\(sub)")
    let soft = LossConformance.failures(
      SoftTripleLoss<Double>(centers: centers, centersPerClass: 3, la: 5), SoftTripleLoss<Float>(centers: centers.converted(), centersPerClass: 3, la: 5),
      usesTuples: false)
    #expect(soft.isEmpty, "\(soft)")
  }

  @Test("registered with PML's defaults; sparse-centers applies to SoftTriple's centers from the command line")
  func registry() throws {
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    let sub = try LossRegistry.standard.make("subcenter-arcface", context: context).loss
    #expect(sub.namedParameters().map { $0.parameter.shape } == [[12, 8]])
    var soft = try LossRegistry.standard.make("soft-triple:weight_regularizer=sparse-centers,weight_reg_weight=0.2", context: context).loss
    let p = soft.namedParameters()[0]
    #expect(p.name == "class_centers" && p.parameter.shape == [40, 8])
    #expect(p.parameter.value.elements.allSatisfy { abs($0) <= 1 / Float(40).squareRoot() })
    let batch = LossConformance.Batch(rows: 12, dimension: 8, classes: 4)
    let v = soft.evaluate(batch.embeddings.converted(), labels: batch.labels, tuples: nil)
    #expect(v.total.isFinite && v.total > 0)
  }
}

@Suite("Instance loss")
struct InstanceLossTests {
  @Test("value and embedding gradient equal PML 2.9.0's to rtol 1e-9 (instance labels, class labels, one class)", arguments: GoldenCase.instance)
  func golden(_ c: GoldenCase) {
    var loss = LossEvaluator(InstanceLoss<Double>(gamma: c.hyper("gamma")))
    let value = loss.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil)
    expectClose(value.total, c.scalar("loss"), "\(c.name) loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "\(c.name) embedding gradient")
  }

  @Test("passes the conformance suite (order-dependent by definition: its targets are columns)")
  func conformance() {
    let failures = LossConformance.failures(InstanceLoss<Double>(gamma: 4), InstanceLoss<Float>(gamma: 4), usesTuples: false, orderDependent: true)
    #expect(failures.isEmpty, "\(failures)")
  }
}
