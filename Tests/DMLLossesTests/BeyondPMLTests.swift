import DMLLosses
import Foundation
import Testing

/// Components PML adds in 3.0 (no release to compare with here), checked against their papers'
/// formulas written out.
@Suite("Decoupled contrastive loss and the spherical embedding constraint, against their papers' formulas")
struct BeyondPMLTests {
  static func batch(rows: Int = 12, dimension: Int = 5, seed: UInt64 = 9) -> Matrix<Double> {
    var rng = RandomSource(seed: seed)
    var x = Matrix<Double>(rows: rows, columns: dimension)
    x.apply { _ in rng.normal() }
    return x
  }

  @Test("decoupled contrastive: −s(a,p)/τ + log Σ_n exp(s(a,n)/τ), the mean over positive pairs")
  func decoupledContrastive() {
    let x = Self.batch(), labels = [0, 1, 2, 0, 1, 2, 0, 3, 1, 3, 2, 4]  // label 4: a row without positives
    let t = 0.3
    let u = x.rowsNormalized()
    func s(_ i: Int, _ j: Int) -> Double { (0..<u.columns).reduce(0) { $0 + u[i, $1] * u[j, $1] } }
    var sum = 0.0, pairs = 0
    for a in 0..<x.rows {
      let negatives = (0..<x.rows).filter { labels[$0] != labels[a] }.map { exp(s(a, $0) / t) }.reduce(0, +)
      for p in 0..<x.rows where p != a && labels[p] == labels[a] {
        sum += -s(a, p) / t + log(negatives)
        pairs += 1
      }
    }
    var e = LossEvaluator(DecoupledContrastiveLoss<Double>(temperature: t))
    let value = e.evaluate(x, labels: labels, tuples: nil)
    #expect(abs(value.total - sum / Double(pairs)) < 1e-12)
    #expect(value.first.count == pairs)
    // Unlike NT-Xent, the positive is not in its own denominator: the values differ.
    var ntxent = LossEvaluator(NTXentLoss<Double>(temperature: t))
    #expect(abs(ntxent.evaluate(x, labels: labels, tuples: nil).total - value.total) > 1e-3)
    // One label: no negatives, no term.
    var one = LossEvaluator(DecoupledContrastiveLoss<Double>())
    let lone = one.evaluate(x, labels: [Int](repeating: 0, count: x.rows), tuples: nil)
    #expect(lone.total == 0 && lone.first.count == 0 && one.embeddingGradient.elements.allSatisfy { $0 == 0 })
  }

  @Test("DCLW: each positive pair's −s/τ weighted by 2 − P·softmax(s/σ) over the batch's positive pairs")
  func weightedDecoupledContrastive() throws {
    let x = Self.batch(), labels = [0, 1, 2, 0, 1, 2, 0, 3, 1, 3, 2, 4]
    let (t, sigma) = (0.3, 0.5)
    let u = x.rowsNormalized()
    func s(_ i: Int, _ j: Int) -> Double { (0..<u.columns).reduce(0) { $0 + u[i, $1] * u[j, $1] } }
    var pairs: [(Int, Int)] = []
    for a in 0..<x.rows { for p in 0..<x.rows where p != a && labels[p] == labels[a] { pairs.append((a, p)) } }
    let exps = pairs.map { exp(s($0.0, $0.1) / sigma) }
    let total = exps.reduce(0, +)
    var sum = 0.0
    for (k, (a, p)) in pairs.enumerated() {
      let w = 2 - Double(pairs.count) * exps[k] / total
      let negatives = (0..<x.rows).filter { labels[$0] != labels[a] }.map { exp(s(a, $0) / t) }.reduce(0, +)
      sum += -w * s(a, p) / t + log(negatives)
    }
    var e = LossEvaluator(DecoupledContrastiveLoss<Double>(temperature: t, weightingSigma: sigma))
    let value = e.evaluate(x, labels: labels, tuples: nil)
    #expect(abs(value.total - sum / Double(pairs.count)) < 1e-12, "\(value.total) vs \(sum / Double(pairs.count))")
    var plain = LossEvaluator(DecoupledContrastiveLoss<Double>(temperature: t))
    #expect(abs(plain.evaluate(x, labels: labels, tuples: nil).total - value.total) > 1e-4)
    // By name, and refused in anchor blocks (the weights couple the batch's pairs).
    let context = LossContext(classes: 5, embeddingDimension: 5, seed: 1)
    _ = try LossRegistry.standard.make("decoupled-contrastive:weighting=vmf,sigma=0.5", context: context)
    #expect(throws: SpecificationError.self) { try LossRegistry.standard.make("decoupled-contrastive:weighting=vmf,anchor_block=4", context: context) }
  }

  @Test("spherical embedding constraint: the variance of the rows' norms, its gradient by central differences, as a loss mixin")
  func sphericalEmbedding() throws {
    var x = Self.batch(rows: 7, dimension: 4, seed: 2)
    for j in 0..<4 { x[2, j] *= 3 }  // norms that differ
    let norms = (0..<7).map { i in (0..<4).reduce(0.0) { $0 + x[i, $1] * x[i, $1] }.squareRoot() }
    let mean = norms.reduce(0, +) / 7
    let expected = norms.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 7
    var g = Matrix<Double>()
    let r = Regularizer.sphericalEmbedding
    #expect(abs(r.evaluate(x, gradient: &g) - expected) < 1e-12)
    var worst = 0.0
    for i in 0..<7 {
      for j in 0..<4 {
        var scratch = Matrix<Double>(), e = x
        e[i, j] += 1e-6
        let plus = r.evaluate(e, gradient: &scratch)
        e[i, j] -= 2e-6
        let minus = r.evaluate(e, gradient: &scratch)
        worst = max(worst, abs((plus - minus) / 2e-6 - g[i, j]))
      }
    }
    #expect(worst < 1e-7 && g.elements.contains { abs($0) > 0.01 })
    // Rows of one norm: no penalty, no gradient.
    var scratch = Matrix<Double>()
    #expect(abs(r.evaluate(x.rowsNormalized(), gradient: &scratch)) < 1e-15)
    let context = LossContext(classes: 4, embeddingDimension: 8, seed: 1)
    _ = try LossRegistry.standard.make("triplet:embedding_regularizer=spherical-embedding,embedding_reg_weight=0.5", context: context)
    // `dml list` shows every regularizer with its line.
    #expect(Regularizer.names.contains("spherical-embedding") && Regularizer.names.allSatisfy { !Regularizer.summary(of: $0).isEmpty })
  }

  @Test("selectively contrastive triplet: λ·s(a,n) for a hard negative, the hinge otherwise, the mean over triplets")
  func selectivelyContrastiveTriplet() {
    let x = Self.batch(rows: 10, dimension: 4, seed: 5), labels = [0, 1, 0, 1, 2, 2, 0, 1, 2, 3]
    let (m, lambda) = (0.2, 0.5)
    let u = x.rowsNormalized()
    func s(_ i: Int, _ j: Int) -> Double { (0..<u.columns).reduce(0) { $0 + u[i, $1] * u[j, $1] } }
    var terms: [Double] = [], hard = 0
    for a in 0..<10 {
      for p in 0..<10 where p != a && labels[p] == labels[a] {
        for q in 0..<10 where labels[q] != labels[a] {
          if s(a, q) > s(a, p) {
            terms.append(lambda * s(a, q))
            hard += 1
          } else {
            terms.append(max(0, s(a, q) - s(a, p) + m))
          }
        }
      }
    }
    let positive = terms.filter { $0 > 0 }
    var e = LossEvaluator(SelectivelyContrastiveTripletLoss<Double>(margin: m, penalty: lambda))
    let value = e.evaluate(x, labels: labels, tuples: nil)
    #expect(abs(value.total - terms.reduce(0, +) / Double(terms.count)) < 1e-12)
    #expect(value.first.count == terms.count && value.first.nonZero == positive.count)
    #expect(hard > 0 && hard < terms.count, "the batch has both kinds of triplet")
  }

  @Test("dynamic ArcFace: margins a·n^(−λ₀) + b from the class sizes; with equal sizes it is sub-center ArcFace of that margin")
  func dynamicArcFace() throws {
    let margins: [Double] = DynamicArcFace.margins(counts: [16, 81, 1])
    #expect(abs(margins[0] - (0.5 / 2 + 0.05)) < 1e-15 && abs(margins[1] - (0.5 / 3 + 0.05)) < 1e-15 && abs(margins[2] - 0.55) < 1e-15)
    let x = Self.batch(rows: 9, dimension: 6, seed: 4), labels = [0, 1, 2, 0, 1, 2, 2, 1, 0]
    let weights = ClassWeights<Double>(classes: 9, dimension: 6, seed: 2)
    var dynamic = LossEvaluator(DynamicArcFace.loss(weights: weights, counts: [50, 50, 50]))
    let equal: [Double] = DynamicArcFace.margins(counts: [50])
    var plain = LossEvaluator(SubCenterArcFaceLoss(weights: weights, subCenters: 3, marginDegrees: equal[0] * 180 / Double.pi))
    let (a, b) = (dynamic.evaluate(x, labels: labels, tuples: nil).total, plain.evaluate(x, labels: labels, tuples: nil).total)
    #expect(abs(a - b) < 1e-12 * max(1, abs(b)))
    // Unequal sizes: the rare class's larger margin raises its rows' losses.
    var skewed = LossEvaluator(DynamicArcFace.loss(weights: weights, counts: [1000, 1000, 2]))
    #expect(skewed.evaluate(x, labels: labels, tuples: nil).total > dynamic.evaluate(x, labels: labels, tuples: nil).total)
    // By name it needs the class sizes.
    #expect(throws: SpecificationError.self) {
      try LossRegistry.standard.make("dynamic-arcface", context: LossContext(classes: 3, embeddingDimension: 6, seed: 1))
    }
    _ = try LossRegistry.standard.make("dynamic-arcface:a=0.3", context: LossContext(classes: 3, embeddingDimension: 6, seed: 1, classCounts: [4, 5, 6]))
  }

  @Test("multi-label rows: positives share a label, negatives none; SupCon over them is the multi-label SupCon formula")
  func multiLabel() {
    let sets: [[Int]] = [[0, 1], [1], [2], [0, 2], [3], [1, 3], [], [2, 0]]
    let tuples = Tuples.multiLabel(sets)
    let pairs = tuples.asPairs
    #expect(pairs.positive.contains(SIMD2(0, 1)) && pairs.positive.contains(SIMD2(0, 3)) && pairs.negative.contains(SIMD2(1, 2)))
    #expect(!pairs.positive.contains { $0.x == 6 || $0.y == 6 } && !pairs.negative.contains { $0.x == 6 || $0.y == 6 })
    let x = Self.batch(rows: 8, dimension: 5, seed: 6)
    let t = 0.2
    // Multi-label SupCon, written out: for each anchor with a positive, −mean over its positives p
    // of log(exp(s_ap/τ) / Σ_{k positive or negative} exp(s_ak/τ)); the mean over such anchors.
    let u = x.rowsNormalized()
    func s(_ i: Int, _ j: Int) -> Double { (0..<u.columns).reduce(0) { $0 + u[i, $1] * u[j, $1] } }
    func shares(_ i: Int, _ j: Int) -> Bool { !Set(sets[i]).isDisjoint(with: sets[j]) }
    var total = 0.0, anchors = 0
    for a in 0..<8 where !sets[a].isEmpty {
      let others = (0..<8).filter { $0 != a && !sets[$0].isEmpty }
      let positives = others.filter { shares(a, $0) }
      guard !positives.isEmpty, positives.count < others.count else { continue }
      let denominator = log(others.map { exp(s(a, $0) / t) }.reduce(0, +))
      let term = -positives.map { s(a, $0) / t - denominator }.reduce(0, +) / Double(positives.count)
      total += term
      anchors += 1
    }
    var e = LossEvaluator(SupConLoss<Double>(temperature: t))
    let value = e.evaluate(x, labelSets: sets)
    #expect(abs(value.total - total / Double(anchors)) < 1e-12, "\(value.total) vs \(total / Double(anchors))")
    #expect(e.embeddingGradient.rows == 8 && e.embeddingGradient.isFinite)
    // Single labels as one-element sets: the same as the plain labels.
    let single = [0, 1, 0, 2, 1, 2, 0, 1]
    var plain = LossEvaluator(SupConLoss<Double>(temperature: t)), sets1 = LossEvaluator(SupConLoss<Double>(temperature: t))
    #expect(abs(plain.evaluate(x, labels: single, tuples: nil).total - sets1.evaluate(x, labelSets: single.map { [$0] }).total) < 1e-12)
  }

  @Test("MultiLabelLoss: labels that index label sets give the multi-label evaluation, value and gradient")
  func multiLabelLoss() {
    let table: [[Int]] = [[0, 1], [1], [2], [0, 2], [3]]
    let labels = [0, 1, 2, 3, 4, 1, 0, 3]
    let x = Self.batch(rows: 8, dimension: 5, seed: 9)
    var direct = LossEvaluator(ContrastiveLoss<Double>(positiveMargin: 0.1, negativeMargin: 1.2))
    let expected = direct.evaluate(x, labelSets: labels.map { table[$0] })
    var wrapped = MultiLabelLoss(LossEvaluator(ContrastiveLoss<Double>(positiveMargin: 0.1, negativeMargin: 1.2)), labelSets: table)
    let value = wrapped.evaluate(x, labels: labels, tuples: nil)
    #expect(value.total == expected.total && value.total > 0)
    #expect(wrapped.embeddingGradient == direct.embeddingGradient)
  }
}
