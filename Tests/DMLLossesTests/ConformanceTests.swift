import DMLLosses
import DMLTesting
import Testing

/// One loss for the conformance suite: its name and a check that builds it in both precisions.
struct ConformanceCase: CustomStringConvertible, Sendable {
  let description: String
  let failures: @Sendable () -> [String]
}

func proxies<T: DMLScalar>(_: T.Type) -> Proxies<T> { Proxies(classes: 4, dimension: 6, seed: 5, group: 1) }
func weights<T: DMLScalar>(_: T.Type) -> ClassWeights<T> { ClassWeights(classes: 4, dimension: 6, seed: 6) }

@Suite("Every loss passes the conformance suite")
struct ConformanceTests {
  static let cases: [ConformanceCase] = [
    ConformanceCase(description: "contrastive") {
      LossConformance.failures(ContrastiveLoss<Double>(), ContrastiveLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "contrastive (cosine, margins 0.8/0.3)") {
      LossConformance.failures(
        ContrastiveLoss<Double>(positiveMargin: 0.8, negativeMargin: 0.3, distance: .cosine),
        ContrastiveLoss<Float>(positiveMargin: 0.8, negativeMargin: 0.3, distance: .cosine), usesTuples: true)
    },
    ConformanceCase(description: "triplet") {
      LossConformance.failures(TripletMarginLoss<Double>(margin: 0.2), TripletMarginLoss<Float>(margin: 0.2), usesTuples: true)
    },
    ConformanceCase(description: "triplet (swap, soft margin)") {
      LossConformance.failures(
        TripletMarginLoss<Double>(margin: 0.2, swap: true, smoothLoss: true),
        TripletMarginLoss<Float>(margin: 0.2, swap: true, smoothLoss: true), usesTuples: true)
    },
    ConformanceCase(description: "triplet (cosine similarity, mean)") {
      LossConformance.failures(
        TripletMarginLoss<Double>(margin: 0.1, distance: .cosine, reduction: .mean),
        TripletMarginLoss<Float>(margin: 0.1, distance: .cosine, reduction: .mean), usesTuples: true)
    },
    ConformanceCase(description: "uniformity") {
      LossConformance.failures(UniformityLoss<Double>(t: 2), UniformityLoss<Float>(t: 2), usesTuples: false)
    },
    ConformanceCase(description: "multi-similarity") {
      LossConformance.failures(MultiSimilarityLoss<Double>(), MultiSimilarityLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "supcon") {
      LossConformance.failures(SupConLoss<Double>(), SupConLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "supcon (Euclidean, temperature 0.5)") {
      LossConformance.failures(
        SupConLoss<Double>(temperature: 0.5, distance: .euclidean), SupConLoss<Float>(temperature: 0.5, distance: .euclidean),
        usesTuples: true)
    },
    ConformanceCase(description: "center") {
      var c = Matrix<Double>(rows: 4, columns: 6)
      var rng = RandomSource(seed: 8)
      c.apply { _ in rng.normal() }
      return LossConformance.failures(
        CenterLoss<Double>(centers: c), CenterLoss<Float>(centers: c.converted()), usesTuples: false)
    },
    ConformanceCase(description: "proxy-nca") {
      LossConformance.failures(
        ProxyNCALoss(proxies: proxies(Double.self)), ProxyNCALoss(proxies: proxies(Float.self)), usesTuples: false)
    },
    ConformanceCase(description: "proxy-anchor") {
      LossConformance.failures(
        ProxyAnchorLoss(proxies: proxies(Double.self)), ProxyAnchorLoss(proxies: proxies(Float.self)), usesTuples: false)
    },
    ConformanceCase(description: "softmax") {
      LossConformance.failures(
        SoftmaxLoss(weights: weights(Double.self)), SoftmaxLoss(weights: weights(Float.self)), usesTuples: false)
    },
    ConformanceCase(description: "normalized-softmax") {
      LossConformance.failures(
        NormalizedSoftmaxLoss(weights: weights(Double.self), temperature: 0.5),
        NormalizedSoftmaxLoss(weights: weights(Float.self), temperature: 0.5), usesTuples: false)
    },
    ConformanceCase(description: "arcface") {
      LossConformance.failures(
        ArcFaceLoss(weights: weights(Double.self), scale: 4), ArcFaceLoss(weights: weights(Float.self), scale: 4),
        usesTuples: false)
    },
    ConformanceCase(description: "cosface") {
      LossConformance.failures(
        CosFaceLoss(weights: weights(Double.self), scale: 4), CosFaceLoss(weights: weights(Float.self), scale: 4),
        usesTuples: false)
    },
  ]

  /// One test per loss, so that the test output names each.
  static func check(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let c = cases.first { $0.description == name }!
    let failures = c.failures()
    #expect(failures.isEmpty, "\(name): \(failures.joined(separator: "; "))", sourceLocation: sourceLocation)
  }

  @Test("conformance: contrastive") func c0() { Self.check("contrastive") }
  @Test("conformance: contrastive (cosine, margins 0.8/0.3)") func c1() { Self.check("contrastive (cosine, margins 0.8/0.3)") }
  @Test("conformance: triplet") func c2() { Self.check("triplet") }
  @Test("conformance: triplet (swap, soft margin)") func c3() { Self.check("triplet (swap, soft margin)") }
  @Test("conformance: triplet (cosine similarity, mean)") func c4() { Self.check("triplet (cosine similarity, mean)") }
  @Test("conformance: multi-similarity") func c5() { Self.check("multi-similarity") }
  @Test("conformance: center") func c6() { Self.check("center") }
  @Test("conformance: proxy-nca") func c7() { Self.check("proxy-nca") }
  @Test("conformance: proxy-anchor") func c8() { Self.check("proxy-anchor") }
  @Test("conformance: softmax") func c9() { Self.check("softmax") }
  @Test("conformance: normalized-softmax") func c10() { Self.check("normalized-softmax") }
  @Test("conformance: arcface") func c11() { Self.check("arcface") }
  @Test("conformance: cosface") func c12() { Self.check("cosface") }

  @Test("a loss that ignores its input fails the suite")
  func suiteCanFail() {
    struct Zero<Scalar: DMLScalar>: PairwiseLoss, ParameterFree {
      var distance: Distance { .euclidean }
      mutating func compute(
        scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
      ) -> LossValue<Scalar> {
        scoreGradient.resize(rows: scores.rows, columns: scores.columns, zeroed: true)
        return .zero
      }
    }
    #expect(!LossConformance.failures(Zero<Double>(), Zero<Float>(), usesTuples: true).isEmpty)
  }
}
