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
    ConformanceCase(description: "triplet (l3^2: an Lp distance, rows in their 3-norm)") {
      LossConformance.failures(
        TripletMarginLoss<Double>(margin: 0.2, distance: .lp(p: 3, power: 2)),
        TripletMarginLoss<Float>(margin: 0.2, distance: .lp(p: 3, power: 2)), usesTuples: true)
    },
    ConformanceCase(description: "contrastive (l1.5, unnormalized)") {
      LossConformance.failures(
        ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 2, distance: .lp(p: 1.5, normalizesEmbeddings: false)),
        ContrastiveLoss<Float>(positiveMargin: 0.2, negativeMargin: 2, distance: .lp(p: 1.5, normalizesEmbeddings: false)), usesTuples: true)
    },
    ConformanceCase(description: "contrastive (poincare: hyperbolic, clipped rows)") {
      LossConformance.failures(
        ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.5, distance: .poincare(curvature: 0.5, clipRadius: 1.5)),
        ContrastiveLoss<Float>(positiveMargin: 0.2, negativeMargin: 1.5, distance: .poincare(curvature: 0.5, clipRadius: 1.5)), usesTuples: true)
    },
    ConformanceCase(description: "ntxent (poincare, no clipping)") {
      LossConformance.failures(
        NTXentLoss<Double>(temperature: 0.5, distance: .poincare(curvature: 1, clipRadius: 0)),
        NTXentLoss<Float>(temperature: 0.5, distance: .poincare(curvature: 1, clipRadius: 0)), usesTuples: true)
    },
    ConformanceCase(description: "snr-contrastive") {
      LossConformance.failures(SNRContrastiveLoss<Double>(), SNRContrastiveLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "contrastive (snr, unnormalized, margins 0.2/1.5)") {
      LossConformance.failures(
        ContrastiveLoss<Double>(positiveMargin: 0.2, negativeMargin: 1.5, distance: Distance(.snr, normalizesEmbeddings: false)),
        ContrastiveLoss<Float>(positiveMargin: 0.2, negativeMargin: 1.5, distance: Distance(.snr, normalizesEmbeddings: false)),
        usesTuples: true)
    },
    ConformanceCase(description: "smooth-ap (τ 0.1)") {
      LossConformance.failures(SmoothAPLoss<Double>(temperature: 0.1), SmoothAPLoss<Float>(temperature: 0.1), usesTuples: false)
    },
    ConformanceCase(description: "p2s-grad") {
      LossConformance.failures(P2SGradLoss<Double>(weights: weights(Double.self)), P2SGradLoss<Float>(weights: weights(Float.self)), usesTuples: false)
    },
    ConformanceCase(description: "circle (exact derivative, γ 8)") {
      // γ = 8 keeps Float within the suite's 1e-4 of Double; PML's detached weights are not the
      // derivative of the value, so the finite-difference suite checks the exact gradient.
      LossConformance.failures(
        CircleLoss<Double>(gamma: 8, detachesWeights: false), CircleLoss<Float>(gamma: 8, detachesWeights: false), usesTuples: true)
    },
    ConformanceCase(description: "dynamic-soft-margin (a running histogram already filled)") {
      // A filled histogram and a tiny momentum: the weights are (almost) those of the histogram
      // alone, as the gradient takes them, so finite differences see the same function.
      func loss<T: DMLScalar>(_: T.Type) -> DynamicSoftMarginLoss<T> {
        var l = DynamicSoftMarginLoss<T>(bins: 8, momentum: 1e-12)
        l.histogram.value = Matrix(rows: 1, columns: 8, elements: [0.02, 0.05, 0.1, 0.2, 0.25, 0.2, 0.12, 0.06].map { T($0) })
        return l
      }
      return LossConformance.failures(loss(Double.self), loss(Float.self), usesTuples: true)
    },
    ConformanceCase(description: "decoupled-contrastive (τ 0.5)") {
      LossConformance.failures(DecoupledContrastiveLoss<Double>(temperature: 0.5), DecoupledContrastiveLoss<Float>(temperature: 0.5), usesTuples: true)
    },
    ConformanceCase(description: "decoupled-contrastive (DCLW weights, τ 0.5, σ 0.5)") {
      LossConformance.failures(
        DecoupledContrastiveLoss<Double>(temperature: 0.5, weightingSigma: 0.5), DecoupledContrastiveLoss<Float>(temperature: 0.5, weightingSigma: 0.5),
        usesTuples: true)
    },
    ConformanceCase(description: "selectively-contrastive-triplet (margin 0.3, λ 0.7, smooth)") {
      LossConformance.failures(
        SelectivelyContrastiveTripletLoss<Double>(margin: 0.3, penalty: 0.7, smoothLoss: true),
        SelectivelyContrastiveTripletLoss<Float>(margin: 0.3, penalty: 0.7, smoothLoss: true), usesTuples: true)
    },
    ConformanceCase(description: "arcface (one margin per class, as dynamic ArcFace)") {
      func loss<T: DMLScalar>(_: T.Type) -> ArcFaceLoss<T> {
        var l = ArcFaceLoss<T>(weights: weights(T.self), scale: 4)
        l.classMargins = DynamicArcFace.margins(counts: [100, 3, 20, 7])
        return l
      }
      return LossConformance.failures(loss(Double.self), loss(Float.self), usesTuples: false)
    },
    ConformanceCase(description: "uniformity") {
      LossConformance.failures(UniformityLoss<Double>(t: 2), UniformityLoss<Float>(t: 2), usesTuples: false)
    },
    ConformanceCase(description: "multi-similarity") {
      LossConformance.failures(MultiSimilarityLoss<Double>(), MultiSimilarityLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "lifted-structure") {
      LossConformance.failures(LiftedStructureLoss<Double>(), LiftedStructureLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "generalized-lifted-structure") {
      LossConformance.failures(GeneralizedLiftedStructureLoss<Double>(), GeneralizedLiftedStructureLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "generalized-lifted-structure (cosine, margins 0.2/0.9)") {
      LossConformance.failures(
        GeneralizedLiftedStructureLoss<Double>(negativeMargin: 0.2, positiveMargin: 0.9, distance: .cosine),
        GeneralizedLiftedStructureLoss<Float>(negativeMargin: 0.2, positiveMargin: 0.9, distance: .cosine), usesTuples: true)
    },
    ConformanceCase(description: "ntxent") {
      LossConformance.failures(NTXentLoss<Double>(temperature: 0.5), NTXentLoss<Float>(temperature: 0.5), usesTuples: true)
    },
    ConformanceCase(description: "ntxent (Euclidean)") {
      LossConformance.failures(
        NTXentLoss<Double>(temperature: 0.5, distance: .euclidean), NTXentLoss<Float>(temperature: 0.5, distance: .euclidean),
        usesTuples: true)
    },
    ConformanceCase(description: "nca") {
      LossConformance.failures(NCALoss<Double>(), NCALoss<Float>(), usesTuples: false)
    },
    ConformanceCase(description: "nca (cosine, scale 4)") {
      LossConformance.failures(
        NCALoss<Double>(softmaxScale: 4, distance: .cosine), NCALoss<Float>(softmaxScale: 4, distance: .cosine), usesTuples: false)
    },
    ConformanceCase(description: "intra-pair-variance") {
      LossConformance.failures(IntraPairVarianceLoss<Double>(), IntraPairVarianceLoss<Float>(), usesTuples: true)
    },
    ConformanceCase(description: "intra-pair-variance (Euclidean)") {
      LossConformance.failures(
        IntraPairVarianceLoss<Double>(positiveEpsilon: 0.1, negativeEpsilon: 0.05, distance: .euclidean),
        IntraPairVarianceLoss<Float>(positiveEpsilon: 0.1, negativeEpsilon: 0.05, distance: .euclidean), usesTuples: true)
    },
    ConformanceCase(description: "margin (learned β per class)") {
      LossConformance.failures(
        MarginLoss<Double>(nu: 0.05, beta: 0.9, learnBeta: true, classes: 4),
        MarginLoss<Float>(nu: 0.05, beta: 0.9, learnBeta: true, classes: 4), usesTuples: true)
    },
    ConformanceCase(description: "margin (cosine, one learned β)") {
      LossConformance.failures(
        MarginLoss<Double>(margin: 0.1, beta: 0.3, learnBeta: true, distance: .cosine),
        MarginLoss<Float>(margin: 0.1, beta: 0.3, learnBeta: true, distance: .cosine), usesTuples: true)
    },
    ConformanceCase(description: "tuplet-margin") {
      LossConformance.failures(TupletMarginLoss<Double>(scale: 16), TupletMarginLoss<Float>(scale: 16), usesTuples: true)
    },
    ConformanceCase(description: "angular") {
      LossConformance.failures(AngularLoss<Double>(alphaDegrees: 30), AngularLoss<Float>(alphaDegrees: 30), usesTuples: true)
    },
    ConformanceCase(description: "npairs (cosine)") {
      LossConformance.failures(NPairsLoss<Double>(), NPairsLoss<Float>(), usesTuples: true, orderDependent: true)
    },
    ConformanceCase(description: "ranked-list (T_p 2)") {
      LossConformance.failures(
        RankedListLoss<Double>(margin: 0.2, negativeTemperature: 4, positiveTemperature: 2),
        RankedListLoss<Float>(margin: 0.2, negativeTemperature: 4, positiveTemperature: 2), usesTuples: false)
    },
    ConformanceCase(description: "histogram (20 bins)") {
      LossConformance.failures(HistogramLoss<Double>(bins: 20), HistogramLoss<Float>(bins: 20), usesTuples: true)
    },
    ConformanceCase(description: "tcm (margins 0.3/0.1)") {
      LossConformance.failures(
        ThresholdConsistentMarginLoss<Double>(positiveMargin: 0.3, negativeMargin: 0.1),
        ThresholdConsistentMarginLoss<Float>(positiveMargin: 0.3, negativeMargin: 0.1), usesTuples: true)
    },
    ConformanceCase(description: "fast-ap") {
      LossConformance.failures(FastAPLoss<Double>(), FastAPLoss<Float>(), usesTuples: false)
    },
    ConformanceCase(description: "pnp (every variant, τ 0.5)") {
      PNPVariant.allCases.flatMap { v in
        LossConformance.failures(PNPLoss<Double>(anneal: 0.5, variant: v), PNPLoss<Float>(anneal: 0.5, variant: v), usesTuples: false)
          .map { "\(v): \($0)" }
      }
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
  @Test("conformance: lifted-structure") func c13() { Self.check("lifted-structure") }
  @Test("conformance: generalized-lifted-structure") func c14() { Self.check("generalized-lifted-structure") }
  @Test("conformance: generalized-lifted-structure (cosine)") func c15() {
    Self.check("generalized-lifted-structure (cosine, margins 0.2/0.9)")
  }
  @Test("conformance: ntxent") func c16() { Self.check("ntxent") }
  @Test("conformance: ntxent (Euclidean)") func c17() { Self.check("ntxent (Euclidean)") }
  @Test("conformance: nca") func c18() { Self.check("nca") }
  @Test("conformance: nca (cosine, scale 4)") func c19() { Self.check("nca (cosine, scale 4)") }
  @Test("conformance: intra-pair-variance") func c20() { Self.check("intra-pair-variance") }
  @Test("conformance: intra-pair-variance (Euclidean)") func c21() { Self.check("intra-pair-variance (Euclidean)") }
  @Test("conformance: margin (learned β per class)") func c22() { Self.check("margin (learned β per class)") }
  @Test("conformance: margin (cosine, one learned β)") func c23() { Self.check("margin (cosine, one learned β)") }
  @Test("conformance: tuplet-margin") func c24() { Self.check("tuplet-margin") }
  @Test("conformance: angular") func c25() { Self.check("angular") }
  @Test("conformance: npairs (cosine)") func c26() { Self.check("npairs (cosine)") }
  @Test("conformance: ranked-list") func c27() { Self.check("ranked-list (T_p 2)") }
  @Test("conformance: histogram") func c28() { Self.check("histogram (20 bins)") }
  @Test("conformance: tcm") func c29() { Self.check("tcm (margins 0.3/0.1)") }
  @Test("conformance: fast-ap") func c30() { Self.check("fast-ap") }
  @Test("conformance: pnp") func c31() { Self.check("pnp (every variant, τ 0.5)") }
  @Test("conformance: snr-contrastive") func c32() { Self.check("snr-contrastive") }
  @Test("conformance: contrastive (snr, unnormalized)") func c33() { Self.check("contrastive (snr, unnormalized, margins 0.2/1.5)") }
  @Test("conformance: smooth-ap") func c34() { Self.check("smooth-ap (τ 0.1)") }
  @Test("conformance: p2s-grad") func c35() { Self.check("p2s-grad") }
  @Test("conformance: dynamic-soft-margin") func c39() { Self.check("dynamic-soft-margin (a running histogram already filled)") }
  @Test("conformance: contrastive (poincare)") func c40() { Self.check("contrastive (poincare: hyperbolic, clipped rows)") }
  @Test("conformance: ntxent (poincare)") func c41() { Self.check("ntxent (poincare, no clipping)") }
  @Test("conformance: decoupled-contrastive") func c42() { Self.check("decoupled-contrastive (τ 0.5)") }
  @Test("conformance: decoupled-contrastive (DCLW)") func c45() { Self.check("decoupled-contrastive (DCLW weights, τ 0.5, σ 0.5)") }
  @Test("conformance: selectively-contrastive-triplet") func c43() { Self.check("selectively-contrastive-triplet (margin 0.3, λ 0.7, smooth)") }
  @Test("conformance: arcface (margins per class)") func c44() { Self.check("arcface (one margin per class, as dynamic ArcFace)") }
  @Test("conformance: circle") func c36() { Self.check("circle (exact derivative, γ 8)") }
  @Test("conformance: triplet (l3^2)") func c37() { Self.check("triplet (l3^2: an Lp distance, rows in their 3-norm)") }
  @Test("conformance: contrastive (l1.5, unnormalized)") func c38() { Self.check("contrastive (l1.5, unnormalized)") }

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

/// Test doubles that hold learned state without declaring it: the suite must fail them.
@Suite("The conformance suite catches undeclared learned state")
struct UndeclaredStateTests {
  /// Class weights kept in a plain matrix and declared as no state at all: the optimizer never
  /// steps them and no checkpoint holds them (what ArcFace did before its weights were visited).
  struct HiddenWeights<Scalar: DMLScalar>: PairwiseLoss, ParameterFree {
    var weights: Matrix<Scalar>
    var gradient = Matrix<Scalar>()
    var distance: Distance { .cosine }
    var references: Matrix<Scalar>? { weights }
    init(seed: UInt64) {
      var rng = RandomSource(seed: seed)
      weights = Matrix(rows: 4, columns: 6)
      weights.apply { _ in rng.normal() }
    }
    mutating func compute(
      scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
    ) -> LossValue<Scalar> {
      // Mean of −scale·cos to the own class's weight, minus nothing: enough to have gradients.
      scoreGradient.resize(rows: scores.rows, columns: scores.columns, zeroed: true)
      var total: Scalar = 0
      for i in 0..<scores.rows {
        total -= scores[i, labels[i]] / Scalar(scores.rows)
        scoreGradient[i, labels[i]] = -1 / Scalar(scores.rows)
      }
      return LossValue(LossTerm(name: "element", value: total, count: scores.rows, nonZero: scores.rows))
    }
    mutating func receiveReferenceGradient(_ g: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]) { gradient.assign(g) }
  }

  /// Centers updated by the loss's own rule, but not declared: they move, yet a checkpoint would
  /// not hold them (what center loss did before its centers became a parameter).
  struct HiddenCenters<Scalar: DMLScalar>: PairwiseLoss, ParameterFree {
    var centers = Matrix<Scalar>(rows: 4, columns: 6)
    var last = Matrix<Scalar>()
    var lastLabels: [Int] = []
    var distance: Distance { Distance(.squaredEuclidean, normalizesEmbeddings: false) }
    var references: Matrix<Scalar>? { centers }
    mutating func compute(
      scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
    ) -> LossValue<Scalar> {
      scoreGradient.resize(rows: scores.rows, columns: scores.columns, zeroed: true)
      var total: Scalar = 0
      for i in 0..<scores.rows {
        total += scores[i, labels[i]] / Scalar(scores.rows)
        scoreGradient[i, labels[i]] = 1 / Scalar(scores.rows)
      }
      return LossValue(LossTerm(name: "center", value: total, count: scores.rows, nonZero: scores.rows))
    }
    mutating func receiveReferenceGradient(_ g: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]) {
      last.assign(embeddings)
      lastLabels = labels
    }
    mutating func updateReferences() {
      for (i, y) in lastLabels.enumerated() {
        for k in 0..<centers.columns { centers[y, k] += (last[i, k] - centers[y, k]) / 2 }
      }
    }
  }

  @Test("class weights held but not declared: they never move, and the suite says so")
  func hiddenWeights() {
    let failures = LossConformance.failures(HiddenWeights<Double>(seed: 1), HiddenWeights<Float>(seed: 1), usesTuples: false)
    #expect(failures.contains { $0.contains("learned references did not move") }, "\(failures)")
  }

  @Test("centers moved by their own rule but not declared: a restored copy differs, and the suite says so")
  func hiddenCenters() {
    let failures = LossConformance.learnedStateFailures(HiddenCenters<Double>())
    #expect(failures.contains { $0.contains("holds state it does not declare") }, "\(failures)")
    #expect(!failures.contains { $0.contains("did not move") }, "\(failures)")
  }

  @Test("the same losses with their state declared pass the learned-state checks")
  func declared() {
    #expect(LossConformance.learnedStateFailures(ArcFaceLoss<Double>(weights: weights(Double.self))).isEmpty)
    #expect(LossConformance.learnedStateFailures(CenterLoss<Double>(classes: 4, dimension: 6)).isEmpty)
  }
}

@Suite("New losses at the edges of their settings")
struct LossEdgeTests {
  @Test("ranked list at a large temperature stays finite in Float and agrees with Double")
  func rankedListLargeTemperature() {
    var rng = RandomSource(seed: 8)
    var x = Matrix<Double>(rows: 12, columns: 5)
    x.apply { _ in rng.normal() }
    let labels = (0..<12).map { $0 % 3 }
    var d = LossEvaluator(RankedListLoss<Double>(negativeTemperature: 300))
    var f = LossEvaluator(RankedListLoss<Float>(negativeTemperature: 300))
    let vd = d.evaluate(x, labels: labels, tuples: nil).total
    let vf = f.evaluate(x.converted(to: Float.self), labels: labels, tuples: nil).total
    #expect(vd.isFinite && vf.isFinite && f.embeddingGradient.isFinite)
    #expect(abs(Double(vf) - vd) <= 1e-4 * max(1, abs(vd)), "\(vf) vs \(vd)")
  }

  @Test("the histogram loss takes non-finite scores without trapping")
  func nonFiniteScores() {
    var scores = Matrix<Double>(rows: 4, columns: 4, repeating: 0.5)
    scores[0, 1] = .nan
    scores[1, 2] = .infinity
    let labels = [0, 0, 1, 1]
    var loss = HistogramLoss<Double>(bins: 10), g = Matrix<Double>()
    let value = loss.compute(scores: scores, labels: labels, tuples: nil, scoreGradient: &g)
    #expect(g.rows == 4 && g.columns == 4)
    _ = value
  }
}
