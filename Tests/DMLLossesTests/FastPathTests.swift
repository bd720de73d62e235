import DMLLosses
import Foundation
import Testing

/// The short cuts some losses take for speed give what the plain computation gives: N-pairs scoring
/// only its pairs' rows, NCA's single exponential pass (and its fallback for far-off same-label
/// scores), FastAP visiting only the bins next to each distance.
@Suite("Fast paths equal the plain computation")
struct FastPathTests {
  static func batch(rows: Int, dimension: Int, classes: Int, seed: UInt64) -> (Matrix<Double>, [Int]) {
    var rng = RandomSource(seed: seed)
    let x = Matrix<Double>(rows: rows, columns: dimension, elements: (0..<(rows * dimension)).map { _ in rng.normal(Double.self) })
    let labels = (0..<rows).map { _ in Int(rng.next() % UInt64(classes)) }
    return (x, labels)
  }

  @Test("N-pairs on its pairs' rows alone equals N-pairs on the whole batch's scores, with and without tuples")
  func npairsRows() {
    let (x, labels) = Self.batch(rows: 40, dimension: 6, classes: 7, seed: 3)
    // Positive pairs as a miner gives them, from the back of the batch, both orders.
    let positives = (0..<x.rows).reversed().flatMap { a in
      (0..<x.rows).filter { $0 != a && labels[$0] == labels[a] }.prefix(1).map { SIMD2(Int32(a), Int32($0)) }
    }
    for tuples in [nil, Tuples.pairs(positive: positives, negative: [])] as [Tuples?] {
      let loss = NPairsLoss<Double>()
      let rows = loss.scoredRows(labels: labels, tuples: tuples)
      #expect(rows != nil && rows!.count < x.rows)
      var fast = LossEvaluator(loss)
      let value = fast.evaluate(x, labels: labels, tuples: tuples)
      // The whole batch's scores, handed over as shared scores, take the plain path.
      var whole = LossEvaluator(loss)
      var scores = Matrix<Double>(), workspace = DistanceWorkspace<Double>()
      loss.distance.scores(x, x, sameSet: true, into: &scores, workspace: &workspace)
      let plain = whole.evaluate(x, labels: labels, tuples: tuples, sharedScores: &scores, workspace: &workspace)
      #expect(value.first.count == plain.first.count && value.first.count > 1)
      #expect(abs(value.total - plain.total) <= 1e-12 * abs(plain.total))
      expectClose(fast.embeddingGradient, whole.embeddingGradient, "N-pairs gradient")
      // Not vacuous: some rows take part and some do not.
      let moved = (0..<x.rows).filter { i in (0..<x.columns).contains { fast.embeddingGradient[i, $0] != 0 } }
      #expect(!moved.isEmpty && moved.count < x.rows && Set(moved) == Set(rows!))
    }
    // A tuple pairing a row with itself: the whole batch is scored.
    #expect(NPairsLoss<Double>().scoredRows(labels: [0, 0, 1], tuples: .pairs(positive: [SIMD2(1, 1)], negative: [])) == nil)
  }

  /// NCA written out: −log Σ_same softmax, each row's softmax over the other columns in Double
  /// with its own largest score, and the gradient by central differences of that.
  static func naiveNCA(_ s: Matrix<Double>, labels: [Int], scale: Double) -> Double {
    var total = 0.0, kept = 0
    for i in 0..<s.rows {
      let others = (0..<s.columns).filter { $0 != i }
      let same = others.filter { labels[$0] == labels[i] }
      guard !same.isEmpty else { continue }
      func lse(_ js: [Int]) -> Double {
        let m = js.map { -scale * s[i, $0] }.max()!
        return m + log(js.reduce(0) { $0 + exp(-scale * s[i, $1] - m) })
      }
      total += lse(others) - lse(same)
      kept += 1
    }
    return kept > 0 ? total / Double(kept) : 0
  }

  @Test("NCA's one pass equals the formula written out, also for rows whose same-label scores are far below the rest")
  func ncaPasses() {
    let (x, labels) = Self.batch(rows: 12, dimension: 4, classes: 3, seed: 5)
    var scores = Matrix<Double>(), workspace = DistanceWorkspace<Double>()
    Distance.squaredEuclidean.scores(x, x, sameSet: true, into: &scores, workspace: &workspace)
    // Scale 1: the single pass; scale 400: distances up to 4 put same-label scores e⁻¹⁶⁰⁰ below the
    // nearest other row, so rows whose same-label neighbours are far take the fallback.
    for scale in [1.0, 400.0] {
      var loss = NCALoss<Double>(softmaxScale: scale)
      var g = Matrix<Double>()
      let value = loss.compute(scores: scores, labels: labels, tuples: nil, scoreGradient: &g)
      let expected = Self.naiveNCA(scores, labels: labels, scale: scale)
      #expect(value.total.isFinite && abs(value.total - expected) <= 1e-10 * Swift.max(1, abs(expected)), "scale \(scale)")
      // The gradient by central differences of the formula, entry by entry.
      let h = scale > 1 ? 1e-7 : 1e-5
      var worst = 0.0
      for i in 0..<scores.rows {
        for j in 0..<scores.columns where j != i {
          var up = scores, down = scores
          up[i, j] += h
          down[i, j] -= h
          let numeric = (Self.naiveNCA(up, labels: labels, scale: scale) - Self.naiveNCA(down, labels: labels, scale: scale)) / (2 * h)
          worst = Swift.max(worst, abs(numeric - g[i, j]) / Swift.max(1, abs(numeric)))
        }
      }
      #expect(worst <= 1e-5, "scale \(scale): worst gradient error \(worst)")
    }
    // Not vacuous: at scale 400 some row's same-label scores are more than 60 below its largest.
    let gaps = (0..<scores.rows).map { i -> Double in
      let others = (0..<scores.columns).filter { $0 != i }
      let same = others.filter { labels[$0] == labels[i] }
      return same.isEmpty ? 0 : 400 * (same.map { scores[i, $0] }.min()! - others.map { scores[i, $0] }.min()!)
    }
    #expect(gaps.contains { $0 > 60 })
  }

  /// FastAP over every bin (the formula as PML writes it): value and ∂/∂scores.
  static func naiveFastAP(_ s: Matrix<Double>, labels: [Int], bins: Int) -> (Double, Matrix<Double>) {
    let n = s.rows, edges = bins + 1, delta = 4 / Double(bins)
    var g = Matrix<Double>(rows: n, columns: n)
    let rows = (0..<n).filter { i in (0..<n).contains { $0 != i && labels[$0] == labels[i] } }
    var total = 0.0
    for i in rows {
      var hp = [Double](repeating: 0, count: edges), hn = hp
      let count = Double((0..<n).filter { $0 != i && labels[$0] == labels[i] }.count)
      for j in 0..<n where j != i {
        for b in 0..<edges {
          let pulse = max(0, 1 - abs(s[i, j] - 4 * Double(b) / Double(bins)) / delta)
          if labels[j] == labels[i] { hp[b] += pulse } else { hn[b] += pulse }
        }
      }
      var Hp = hp, H = hp
      for b in 0..<edges { Hp[b] = (b > 0 ? Hp[b - 1] : 0) + hp[b]; H[b] = (b > 0 ? H[b - 1] : 0) + hp[b] + hn[b] }
      var ap = 0.0
      for b in 0..<edges where hp[b] * Hp[b] > 0 && H[b] > 0 { ap += hp[b] * Hp[b] / H[b] }
      total += 1 - ap / count
      // ∂(Σ_b f_b)/∂h⁺_c and ∂/∂h⁻_c, summed directly over b ≥ c.
      var gp = [Double](repeating: 0, count: edges), gn = gp
      for c in 0..<edges {
        for b in c..<edges where hp[b] * Hp[b] > 0 && H[b] > 0 {
          gp[c] += (b == c ? Hp[b] / H[b] : 0) + hp[b] / H[b] - hp[b] * Hp[b] / (H[b] * H[b])
          gn[c] += -hp[b] * Hp[b] / (H[b] * H[b])
        }
      }
      for j in 0..<n where j != i {
        var sum = 0.0
        for b in 0..<edges {
          let offset = s[i, j] - 4 * Double(b) / Double(bins)
          guard abs(offset) < delta, offset != 0 else { continue }
          sum += (labels[j] == labels[i] ? gp[b] : gn[b]) * (offset > 0 ? -1 : 1) / delta
        }
        g[i, j] = -sum / (count * Double(rows.count))
      }
    }
    return (rows.isEmpty ? 0 : total / Double(rows.count), g)
  }

  @Test("FastAP's near bins equal every bin, with distances on bin middles, on pulse edges and outside [0, 4]", arguments: [1, 3, 10, 25])
  func fastAPBins(bins: Int) {
    var rng = RandomSource(seed: UInt64(bins))
    let n = 14
    let labels = (0..<n).map { $0 % 4 }
    let delta = 4 / Double(bins)
    var s = Matrix<Double>(rows: n, columns: n)
    for i in 0..<n {
      for j in 0..<n where j != i {
        switch rng.next() % 4 {
        case 0: s[i, j] = 4 * Double(rng.next() % UInt64(bins + 1)) / Double(bins)  // a bin's middle
        case 1: s[i, j] = Double(rng.next() % UInt64(bins)) * delta + delta * 0.5  // between two middles
        case 2: s[i, j] = [-1e-9, 4 + 1e-9, 0, 4][Int(rng.next() % 4)]  // at or just past the ends
        default: s[i, j] = rng.uniform(Double.self) * 4
        }
      }
    }
    var loss = FastAPLoss<Double>(bins: bins)
    var g = Matrix<Double>()
    let value = loss.compute(scores: s, labels: labels, tuples: nil, scoreGradient: &g)
    let (expected, expectedGradient) = Self.naiveFastAP(s, labels: labels, bins: bins)
    #expect(abs(value.total - expected) <= 1e-12, "\(value.total) vs \(expected)")
    expectClose(g, expectedGradient, "FastAP gradient, \(bins) bins")
    #expect((0..<n).contains { i in (0..<n).contains { g[i, $0] != 0 } })
  }
}
