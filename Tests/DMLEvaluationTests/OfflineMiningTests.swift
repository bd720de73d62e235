import Foundation
import DMLEvaluation
import DMLSamplers
import Testing

/// Offline hard mining, checked against brute force: every distance of a small set computed
/// directly in Double, sorted, and filtered by label.
@Suite("Offline hard mining")
struct OfflineMiningTests {
  static func data(n: Int = 70, d: Int = 5, classes: Int = 4, seed: UInt64 = 11) -> (Matrix<Double>, [Int]) {
    var rng = RandomSource(seed: seed)
    var x = Matrix<Double>(rows: n, columns: d)
    x.apply { _ in rng.normal() }
    // One class of a single item: it has no positive.
    var labels = (0..<n).map { _ in rng.index(below: classes) }
    labels[0] = classes
    return (x, labels)
  }

  /// Brute force: `(positives farthest first, negatives nearest first)` of every anchor.
  static func bruteForce(_ x: Matrix<Double>, _ y: [Int], k: Int, distance: Distance, semihard: Bool) -> ([[Int32]], [[Int32]]) {
    var e = distance.normalizesEmbeddings ? x.rowsNormalized() : x
    if distance.kind == .poincare {
      // Clipped, mapped into the ball: u = tanh(√c t) x / (√c ‖x‖), t = min(‖x‖, r), then kept
      // within a norm of (1 − 10⁻³) / √c.
      let a = distance.curvature.squareRoot()
      for i in 0..<x.rows {
        let norm = (0..<x.columns).reduce(0.0) { $0 + x[i, $1] * x[i, $1] }.squareRoot()
        let t = distance.clipRadius > 0 ? min(norm, distance.clipRadius) : norm
        let ballNorm = min(tanh(a * t) / a, (1 - 1e-3) / a)
        for c in 0..<x.columns { e[i, c] = ballNorm / norm * x[i, c] }
      }
    }
    if distance.kind == .lp && distance.normalizesEmbeddings {
      // Each row divided by its own p-norm, as PML's LpDistance normalises.
      e = x
      for i in 0..<x.rows {
        let norm = pow((0..<x.columns).reduce(0.0) { $0 + pow(abs(x[i, $1]), distance.p) }, 1 / distance.p)
        for c in 0..<x.columns { e[i, c] = x[i, c] / norm }
      }
    }
    func dist(_ i: Int, _ j: Int) -> Double {
      var s = 0.0
      for c in 0..<e.columns {
        s += distance.kind == .dotProduct ? e[i, c] * e[j, c] : (e[i, c] - e[j, c]) * (e[i, c] - e[j, c])
      }
      switch distance.kind {
      case .dotProduct: return -s  // larger similarity = nearer
      case .euclidean: return s.squareRoot()
      case .squaredEuclidean: return s
      case .snr:
        // var(e_j − e_i) / var(e_i), written out.
        let d = Double(e.columns)
        let mi = (0..<e.columns).reduce(0.0) { $0 + e[i, $1] } / d
        let md = (0..<e.columns).reduce(0.0) { $0 + e[j, $1] - e[i, $1] } / d
        let signal = (0..<e.columns).reduce(0.0) { $0 + (e[i, $1] - mi) * (e[i, $1] - mi) }
        let noise = (0..<e.columns).reduce(0.0) { $0 + (e[j, $1] - e[i, $1] - md) * (e[j, $1] - e[i, $1] - md) }
        return noise / signal
      case .poincare:
        // arcosh(1 + 2c‖u − v‖² / ((1 − c‖u‖²)(1 − c‖v‖²))) / √c, written out.
        let c = distance.curvature
        let ni = (0..<e.columns).reduce(0.0) { $0 + e[i, $1] * e[i, $1] }, nj = (0..<e.columns).reduce(0.0) { $0 + e[j, $1] * e[j, $1] }
        return acosh(1 + 2 * c * s / ((1 - c * ni) * (1 - c * nj))) / c.squareRoot()
      case .lp:
        // (Σ|e_i − e_j|^p)^(power / p), written out.
        let sum = (0..<e.columns).reduce(0.0) { $0 + pow(abs(e[i, $1] - e[j, $1]), distance.p) }
        return pow(sum, distance.power / distance.p)
      }
    }
    var positives: [[Int32]] = [], negatives: [[Int32]] = []
    for a in 0..<x.rows {
      let same = (0..<x.rows).filter { $0 != a && y[$0] == y[a] }
        .sorted { dist(a, $0) != dist(a, $1) ? dist(a, $0) > dist(a, $1) : $0 < $1 }
      let p = Array(same.prefix(k))
      positives.append(p.map(Int32.init))
      let bound = p.first.map { dist(a, $0) } ?? -.infinity
      let other = (0..<x.rows).filter { y[$0] != y[a] && (!semihard || dist(a, $0) > bound) }
        .sorted { dist(a, $0) != dist(a, $1) ? dist(a, $0) < dist(a, $1) : $0 < $1 }
      negatives.append(other.prefix(k).map(Int32.init))
    }
    return (positives, negatives)
  }

  @Test("hard positives are the farthest same-class items, hard negatives the nearest different-class ones",
    arguments: [("euclidean", false), ("cosine", false), ("euclidean", true), ("squared-euclidean", true), ("snr", false), ("snr", true), ("l1", false), ("l3^2", true), ("l1.5^0.5", true), ("poincare", true), ("poincare/1/0", false)])
  func matchesBruteForce(_ name: String, _ semihard: Bool) throws {
    let (x, y) = Self.data()
    let distance = Distance(parsing: name)!
    let k = 5
    let mined = try hardNeighbors(embeddings: x, labels: y, k: k, distance: distance, window: semihard ? .semihard : .hard)
    let (p, n) = Self.bruteForce(x, y, k: k, distance: distance, semihard: semihard)
    var checked = 0
    for a in 0..<x.rows {
      #expect(mined.positives(of: a) == p[a], "anchor \(a) positives")
      #expect(mined.negatives(of: a) == n[a], "anchor \(a) negatives")
      for q in mined.negatives(of: a) { #expect(y[Int(q)] != y[a]) }
      for q in mined.positives(of: a) { #expect(y[Int(q)] == y[a] && Int(q) != a) }
      checked += mined.negatives(of: a).count
    }
    #expect(mined.positives(of: 0).isEmpty)  // the lone item
    #expect(checked > x.rows * 2)
  }

  @Test("the search streams in blocks: small blocks give the same result; Float agrees with Double")
  func blocks() throws {
    let (x, y) = Self.data(n: 300, seed: 4)
    let a = try hardNeighbors(embeddings: x, labels: y, k: 4, distance: .euclidean, window: .semihard)
    let small = try hardNeighbors(embeddings: x, labels: y, k: 4, distance: .euclidean, window: .semihard, queryBlock: 7, referenceBlock: 13)
    #expect(a == small)
    let f = try hardNeighbors(embeddings: x.converted(to: Float.self), labels: y, k: 4, distance: .euclidean, window: .semihard)
    // Float and Double agree except at near-ties; almost every list is identical.
    let same = (0..<300).filter { a.negatives(of: $0) == f.negatives(of: $0) }.count
    #expect(same >= 295)
  }

  @Test("bad input is refused with a clear error")
  func errors() {
    let (x, y) = Self.data(n: 10)
    #expect(throws: EvaluationError.self) { try hardNeighbors(embeddings: x, labels: Array(y.dropLast()), k: 2, distance: .euclidean) }
    #expect(throws: EvaluationError.self) { try hardNeighbors(embeddings: x, labels: y, k: 0, distance: .euclidean) }
    #expect(throws: EvaluationError.self) { try hardNeighbors(embeddings: x, labels: [Int](repeating: 1, count: 10), k: 2, distance: .euclidean) }
  }

  @Test("batches put anchors with their mined partners, each item once, seeded")
  func batches() throws {
    let (x, y) = Self.data(n: 200, seed: 5)
    let mined = try hardNeighbors(embeddings: x, labels: y, k: 6, distance: .euclidean)
    func sampler() -> MinedPartnersBatchSampler {
      MinedPartnersBatchSampler(
        positives: mined.positives, negatives: mined.negatives, k: 6, batchSize: 30, positivesPerAnchor: 1,
        negativesPerAnchor: 3, seed: 8)
    }
    var s = sampler(), t = sampler()
    var batch: [Int] = [], again: [Int] = []
    var groupsWithPartners = 0
    for _ in 0..<s.batchesPerEpoch * 3 {
      s.next(into: &batch)
      t.next(into: &again)
      #expect(batch == again)
      #expect(batch.count == 30 && Set(batch).count == 30)
      // The first item is an anchor; the next are from its lists.
      let anchor = batch[0]
      let partners = Set(mined.positives(of: anchor).map(Int.init) + mined.negatives(of: anchor).map(Int.init))
      if anchor != 0, batch[1...4].allSatisfy({ partners.contains($0) }) { groupsWithPartners += 1 }
      #expect(batch[1...].prefix(1).allSatisfy { anchor == 0 || y[$0] == y[anchor] })
    }
    #expect(groupsWithPartners >= s.batchesPerEpoch * 3 - 1)
  }
}
