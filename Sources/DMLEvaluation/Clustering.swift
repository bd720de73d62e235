import Foundation

/// k-means (Lloyd's iterations) with k-means++ seeding, seeded and reproducible.
public struct KMeans: Sendable {
  /// The cluster of each point.
  public var assignments: [Int]
  /// The centroids, `k × d`.
  public var centroids: Matrix<Double>
  /// The sum of squared distances of points to their centroid.
  public var inertia: Double

  /// Clusters the rows of `points` into `k` clusters (best of `restarts` runs by inertia).
  public static func fit<T: DMLScalar>(
    _ points: Matrix<T>, k: Int, iterations: Int = 50, restarts: Int = 3, seed: UInt64 = 1234
  ) throws -> KMeans {
    guard k > 0 && k <= points.rows else {
      throw EvaluationError("k-means needs 1...\(points.rows) clusters, got \(k)")
    }
    let x = points.converted(to: Double.self)
    var rng = RandomSource(seed: seed)
    var best: KMeans?
    for _ in 0..<restarts {
      var run = fitOnce(x, k: k, iterations: iterations, rng: &rng)
      run.inertia = inertia(x, run.assignments, k: k).inertia
      if best == nil || run.inertia < best!.inertia { best = run }
    }
    return best!
  }

  static func fitOnce(_ x: Matrix<Double>, k: Int, iterations: Int, rng: inout RandomSource) -> KMeans {
    let (n, d) = (x.rows, x.columns)
    // k-means++: each new center drawn with probability proportional to squared distance.
    var centers = Matrix<Double>(rows: k, columns: d)
    let first = rng.index(below: n)
    for j in 0..<d { centers[0, j] = x[first, j] }
    var nearest = [Double](repeating: .infinity, count: n)
    for c in 1..<Swift.max(k, 1) {
      for i in 0..<n { nearest[i] = Swift.min(nearest[i], squaredDistance(x, i, centers, c - 1)) }
      let total = nearest.reduce(0, +)
      var u = rng.uniform(Double.self) * total
      var chosen = n - 1
      for i in 0..<n {
        u -= nearest[i]
        if u < 0 {
          chosen = i
          break
        }
      }
      for j in 0..<d { centers[c, j] = x[chosen, j] }
    }
    var assign = [Int](repeating: 0, count: n)
    for _ in 0..<iterations {
      var changed = false
      for i in 0..<n {
        var bestC = 0, bestD = Double.infinity
        for c in 0..<k {
          let dd = squaredDistance(x, i, centers, c)
          if dd < bestD { bestD = dd; bestC = c }
        }
        if assign[i] != bestC { changed = true; assign[i] = bestC }
      }
      let (_, means) = inertia(x, assign, k: k)
      for c in 0..<k where !means[c].isEmpty { for j in 0..<d { centers[c, j] = means[c][j] } }
      if !changed { break }
    }
    return KMeans(assignments: assign, centroids: centers, inertia: 0)
  }

  static func squaredDistance(_ x: Matrix<Double>, _ i: Int, _ c: Matrix<Double>, _ j: Int) -> Double {
    var s = 0.0
    for t in 0..<x.columns {
      let v = x[i, t] - c[j, t]
      s += v * v
    }
    return s
  }

  /// The inertia of a labelling of `x`, and its cluster means (empty for an empty cluster).
  public static func inertia(_ x: Matrix<Double>, _ assignments: [Int], k: Int) -> (inertia: Double, means: [[Double]]) {
    let d = x.columns
    var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: k)
    var counts = [Int](repeating: 0, count: k)
    for (i, c) in assignments.enumerated() {
      counts[c] += 1
      for j in 0..<d { sums[c][j] += x[i, j] }
    }
    let means = (0..<k).map { c in counts[c] == 0 ? [] : sums[c].map { $0 / Double(counts[c]) } }
    var total = 0.0
    for (i, c) in assignments.enumerated() {
      for j in 0..<d {
        let v = x[i, j] - means[c][j]
        total += v * v
      }
    }
    return (total, means)
  }
}

/// Normalised and adjusted mutual information between two labellings, as scikit-learn's
/// `normalized_mutual_info_score` and `adjusted_mutual_info_score` (arithmetic-mean
/// normalisation, natural logarithms).
public enum MutualInformation {
  struct Table {
    var n: Double
    var a: [Double], b: [Double]
    var cells: [[Double]]
  }

  static func table(_ x: [Int], _ y: [Int]) -> Table {
    let xs = Array(Set(x)).sorted(), ys = Array(Set(y)).sorted()
    let xi = Dictionary(uniqueKeysWithValues: xs.enumerated().map { ($1, $0) })
    let yi = Dictionary(uniqueKeysWithValues: ys.enumerated().map { ($1, $0) })
    var cells = [[Double]](repeating: [Double](repeating: 0, count: ys.count), count: xs.count)
    for (u, v) in zip(x, y) { cells[xi[u]!][yi[v]!] += 1 }
    return Table(
      n: Double(x.count), a: cells.map { $0.reduce(0, +) },
      b: (0..<ys.count).map { j in cells.reduce(0) { $0 + $1[j] } }, cells: cells)
  }

  static func entropy(_ counts: [Double], _ n: Double) -> Double {
    counts.reduce(0) { $1 > 0 ? $0 - ($1 / n) * log($1 / n) : $0 }
  }

  static func mutualInformation(_ t: Table) -> Double {
    var mi = 0.0
    for (i, row) in t.cells.enumerated() {
      for (j, nij) in row.enumerated() where nij > 0 {
        mi += (nij / t.n) * log(t.n * nij / (t.a[i] * t.b[j]))
      }
    }
    return mi
  }

  /// NMI with the arithmetic mean of the entropies (1 when both labellings are a single cluster).
  public static func normalized(_ x: [Int], _ y: [Int]) -> Double {
    precondition(x.count == y.count, "labellings differ in length")
    let t = table(x, y)
    let (hx, hy) = (entropy(t.a, t.n), entropy(t.b, t.n))
    if hx == 0 && hy == 0 { return 1 }
    let mi = mutualInformation(t)
    let denominator = Swift.max((hx + hy) / 2, Double.ulpOfOne)
    return mi / denominator
  }

  /// AMI: `(MI − E[MI]) / (mean(H) − E[MI])`, with the expected MI under the hypergeometric
  /// model of random labellings (Vinh, Epps and Bailey 2010).
  public static func adjusted(_ x: [Int], _ y: [Int]) -> Double {
    precondition(x.count == y.count, "labellings differ in length")
    let t = table(x, y)
    if t.a.count == t.b.count && (t.a.count == 1 || t.a.count == Int(t.n)) { return 1 }
    let mi = mutualInformation(t)
    let emi = expectedMutualInformation(t)
    let (hx, hy) = (entropy(t.a, t.n), entropy(t.b, t.n))
    var denominator = (hx + hy) / 2 - emi
    // scikit-learn guards a vanishing denominator the same way.
    if denominator < 0 { denominator = Swift.min(denominator, -Double.ulpOfOne) } else {
      denominator = Swift.max(denominator, Double.ulpOfOne)
    }
    return (mi - emi) / denominator
  }

  static func expectedMutualInformation(_ t: Table) -> Double {
    let n = t.n
    var emi = 0.0
    func lg(_ v: Double) -> Double { Double.logGamma(v) }
    let lgN = lg(n + 1)
    for ai in t.a {
      for bj in t.b {
        let lo = Swift.max(1, ai + bj - n), hi = Swift.min(ai, bj)
        guard lo <= hi else { continue }
        var nij = lo
        while nij <= hi {
          let term1 = (nij / n) * log(n * nij / (ai * bj))
          let margins: Double = lg(ai + 1) + lg(bj + 1) + lg(n - ai + 1) + lg(n - bj + 1) - lgN
          let cell: Double = lg(nij + 1) + lg(ai - nij + 1) + lg(bj - nij + 1) + lg(n - ai - bj + nij + 1)
          let logP = margins - cell
          emi += term1 * exp(logP)
          nij += 1
        }
      }
    }
    return emi
  }
}

/// NMI and AMI of k-means clusters (k = the number of distinct labels) against the labels.
public func clusteringScores<T: DMLScalar>(_ embeddings: Matrix<T>, labels: [Int], seed: UInt64 = 1234) throws
  -> (nmi: Double, ami: Double, clusters: [Int])
{
  guard labels.count == embeddings.rows else {
    throw EvaluationError("\(embeddings.rows) embeddings but \(labels.count) labels")
  }
  let k = Set(labels).count
  let fit = try KMeans.fit(embeddings, k: k, seed: seed)
  return (
    MutualInformation.normalized(labels, fit.assignments), MutualInformation.adjusted(labels, fit.assignments),
    fit.assignments
  )
}
