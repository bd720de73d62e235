import CBLAS
import DMLCore
import DMLEvaluation
import Foundation

/// Principal component analysis, exact: the covariance matrix by GEMM in Double, then LAPACK's
/// symmetric eigensolver (`dsyevd`, from Debian's OpenBLAS).
public struct PCA: Sendable {
  /// The mean of the input rows.
  public var mean: [Double]
  /// The principal axes, one per row, by decreasing variance; each has unit length and its
  /// largest-magnitude coordinate positive, so that the result does not depend on the solver's
  /// sign choice.
  public var components: Matrix<Double>
  /// The variance along each axis.
  public var variances: [Double]
  /// The fraction of the total variance along each axis.
  public var explainedRatio: [Double]

  /// Fits the first `count` principal axes of the rows of `x`.
  public init<T: DMLScalar>(fitting x: Matrix<T>, count: Int = 2) throws {
    let (n, d) = (x.rows, x.columns)
    guard n >= 2 else { throw PlotError("PCA needs at least 2 points, got \(n)") }
    guard count >= 1 && count <= d else { throw PlotError("PCA: \(count) components out of \(d) dimensions") }
    guard x.isFinite else { throw PlotError("PCA: the input contains NaN or infinite values") }
    // The full eigendecomposition of the d×d covariance: O(d³), and LAPACK's 32-bit workspace sizes.
    guard d <= 8192 else { throw PlotError("PCA: \(d) dimensions; at most 8,192 are supported") }
    var centered: Matrix<Double> = x.converted()
    var mean = [Double](repeating: 0, count: d)
    centered.withUnsafeMutableBufferPointer { p in
      for i in 0..<n { for j in 0..<d { mean[j] += p[i * d + j] } }
      for j in 0..<d { mean[j] /= Double(n) }
      for i in 0..<n { for j in 0..<d { p[i * d + j] -= mean[j] } }
    }
    var covariance = Matrix<Double>()
    gemm(centered, transposeA: true, centered, alpha: 1 / Double(n - 1), into: &covariance)
    // dsyevd: eigenvalues ascending; the symmetric matrix is the same in row- or column-major.
    var a = covariance.elements
    var w = [Double](repeating: 0, count: d)
    var info: Int32 = 0
    var dim = Int32(d)
    var lwork: Int32 = -1, liwork: Int32 = -1
    var workQuery = [Double](repeating: 0, count: 1)
    var iworkQuery = [Int32](repeating: 0, count: 1)
    dsyevd_("V", "U", &dim, &a, &dim, &w, &workQuery, &lwork, &iworkQuery, &liwork, &info, 1, 1)
    lwork = Int32(workQuery[0])
    liwork = iworkQuery[0]
    var work = [Double](repeating: 0, count: Int(lwork))
    var iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_("V", "U", &dim, &a, &dim, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
    guard info == 0 else { throw PlotError("PCA: the eigensolver failed (LAPACK info \(info))") }
    // Column-major output: eigenvector j is a[j*d ..< (j+1)*d].
    var components = Matrix<Double>(rows: count, columns: d)
    var variances: [Double] = []
    for c in 0..<count {
      let j = d - 1 - c
      var v = Array(a[(j * d)..<((j + 1) * d)])
      let largest = v.indices.max { abs(v[$0]) < abs(v[$1]) }!
      if v[largest] < 0 { v = v.map { -$0 } }
      for k in 0..<d { components[c, k] = v[k] }
      variances.append(Swift.max(0, w[j]))
    }
    let total = w.reduce(0) { $0 + Swift.max(0, $1) }
    self.mean = mean
    self.components = components
    self.variances = variances
    explainedRatio = variances.map { total > 0 ? $0 / total : 0 }
  }

  /// The coordinates of the rows of `x` along the axes.
  public func project<T: DMLScalar>(_ x: Matrix<T>) -> Matrix<Double> {
    var centered: Matrix<Double> = x.converted()
    let d = x.columns
    centered.withUnsafeMutableBufferPointer { p in
      for i in 0..<x.rows { for j in 0..<d { p[i * d + j] -= mean[j] } }
    }
    return matmul(centered, components, transposeB: true)
  }
}

/// t-distributed stochastic neighbour embedding (van der Maaten and Hinton 2008), with the
/// Barnes-Hut approximation of the repulsive forces (van der Maaten 2014).
///
/// Input affinities come from the `3 × perplexity` nearest neighbours of each point, found by the
/// library's exact k-NN search; each point's Gaussian bandwidth is set by bisection to reach the
/// perplexity. The map starts from PCA (scaled to standard deviation 1e-4, as scikit-learn's
/// `init="pca"`), so it is deterministic, and runs gradient descent with momentum, per-coordinate
/// gains and early exaggeration. `theta = 0` computes the repulsion exactly.
public struct TSNE: Sendable {
  /// The effective number of neighbours each point's bandwidth targets (default 30; capped at
  /// `(n − 1) / 3`).
  public var perplexity = 30.0
  /// The gradient-descent iterations, early exaggeration included (default 1000).
  public var iterations = 1000
  /// The Barnes-Hut accuracy: a cell is summarised by its centre of mass when its width is below
  /// `theta` times its distance (default 0.5; 0 is exact).
  public var theta = 0.5
  /// The factor the input affinities are multiplied by during the first iterations (default 12).
  public var earlyExaggeration = 12.0
  /// The iterations with early exaggeration and momentum 0.5, before momentum 0.8 (default 250).
  public var exaggerationIterations = 250
  /// The step size; `nil` picks scikit-learn's "auto": max(n / exaggeration / 4, 50).
  public var learningRate: Double?
  /// Worker threads for the force computation.
  public var threads = 2

  /// A t-SNE with the default settings.
  public init() {}

  /// The input affinities: a sparse symmetric matrix `P` (rows `i`, columns `columns[start[i]..<start[i+1]]`),
  /// summing to 1.
  public struct Affinities: Sendable {
    /// The `n + 1` row offsets: row `i`'s entries are at `start[i]..<start[i + 1]`.
    public var start: [Int]
    /// The column of each non-zero entry, rows in order.
    public var columns: [Int]
    /// The value of each non-zero entry, aligned with `columns`.
    public var values: [Double]
  }

  /// The symmetrised input affinities of the rows of `x`.
  public func affinities<T: DMLScalar>(_ x: Matrix<T>) throws -> Affinities {
    let n = x.rows
    guard n >= 4 else { throw PlotError("t-SNE needs at least 4 points, got \(n)") }
    let perplexity = Swift.min(self.perplexity, Double(n - 1) / 3)
    let k = Swift.min(n - 1, Int((3 * perplexity).rounded(.up)))
    let neighbors = try nearestNeighbors(
      queries: x, references: x, k: k, distance: Distance(.squaredEuclidean, normalizesEmbeddings: false), excludeSelf: true)
    let target = log(perplexity)
    var conditional = [Double](repeating: 0, count: n * k)
    var d2 = [Double](repeating: 0, count: k)
    for i in 0..<n {
      for j in 0..<k { d2[j] = Double(neighbors.scores[i, j]) }
      let nearest = d2[0]
      // Bisection on beta = 1 / (2 sigma^2) so that the entropy of P(.|i) is log(perplexity).
      var beta = 1.0, low = 0.0, high = Double.infinity
      for _ in 0..<100 {
        var sum = 0.0, weighted = 0.0
        for j in 0..<k {
          let p = exp(-beta * (d2[j] - nearest))
          sum += p
          weighted += p * (d2[j] - nearest)
        }
        let entropy = log(sum) + beta * weighted / sum
        if abs(entropy - target) < 1e-5 { break }
        if entropy > target {
          low = beta
          beta = high.isFinite ? (beta + high) / 2 : beta * 2
        } else {
          high = beta
          beta = (beta + low) / 2
        }
      }
      var sum = 0.0
      for j in 0..<k {
        let p = exp(-beta * (d2[j] - nearest))
        conditional[i * k + j] = p
        sum += p
      }
      for j in 0..<k { conditional[i * k + j] /= sum }
    }
    // P = (P(j|i) + P(i|j)) / 2n, as a sparse symmetric matrix: both directions of every
    // neighbour pair, sorted by (row, column), with duplicates summed.
    var entries: [(key: Int, value: Double)] = []
    entries.reserveCapacity(2 * n * k)
    for i in 0..<n {
      for j in 0..<k {
        let c = Int(neighbors.indices[i * k + j])
        let v = conditional[i * k + j] / Double(2 * n)
        entries.append((i * n + c, v))
        entries.append((c * n + i, v))
      }
    }
    entries.sort { $0.key < $1.key }
    var result = Affinities(start: [Int](repeating: 0, count: n + 1), columns: [], values: [])
    var e = 0
    while e < entries.count {
      let key = entries[e].key
      var v = 0.0
      while e < entries.count && entries[e].key == key {
        v += entries[e].value
        e += 1
      }
      result.columns.append(key % n)
      result.values.append(v)
      result.start[key / n + 1] += 1
    }
    for i in 0..<n { result.start[i + 1] += result.start[i] }
    return result
  }

  /// The 2-D map of the rows of `x`, `n × 2`.
  public func embed<T: DMLScalar>(_ x: Matrix<T>) throws -> Matrix<Double> {
    guard x.isFinite else { throw PlotError("t-SNE: the input contains NaN or infinite values") }
    let p = try affinities(x)
    let n = x.rows
    var y = try PCA(fitting: x, count: 2).project(x)
    var std = 0.0
    for i in 0..<n { std += y[i, 0] * y[i, 0] }
    std = (std / Double(n)).squareRoot()
    let scale = std > 0 ? 1e-4 / std : 1
    y.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= scale } }
    let rate = learningRate ?? Swift.max(Double(n) / earlyExaggeration / 4, 50)
    var update = [Double](repeating: 0, count: 2 * n)
    var gains = [Double](repeating: 1, count: 2 * n)
    var gradient = [Double](repeating: 0, count: 2 * n)
    for iteration in 0..<iterations {
      let exaggeration = iteration < exaggerationIterations ? earlyExaggeration : 1
      let momentum = iteration < exaggerationIterations ? 0.5 : 0.8
      self.gradient(y, p, exaggeration: exaggeration, into: &gradient)
      y.withUnsafeMutableBufferPointer { yb in
        for i in 0..<(2 * n) {
          let g = gradient[i]
          gains[i] = (g > 0) != (update[i] > 0) ? gains[i] + 0.2 : Swift.max(gains[i] * 0.8, 0.01)
          update[i] = momentum * update[i] - rate * gains[i] * g
          yb[i] += update[i]
        }
        // Keep the map centred.
        var mx = 0.0, my = 0.0
        for i in 0..<n {
          mx += yb[2 * i]
          my += yb[2 * i + 1]
        }
        mx /= Double(n)
        my /= Double(n)
        for i in 0..<n {
          yb[2 * i] -= mx
          yb[2 * i + 1] -= my
        }
      }
    }
    return y
  }

  /// The Kullback-Leibler divergence KL(P‖Q) of the map `y` (exact, O(n²)): the objective whose
  /// gradient ``gradient(_:_:exaggeration:into:)`` computes.
  public static func divergence(_ y: Matrix<Double>, _ p: Affinities) -> Double {
    let n = y.rows
    var z = 0.0
    for i in 0..<n {
      for j in 0..<n where j != i {
        let dx = y[i, 0] - y[j, 0], dy = y[i, 1] - y[j, 1]
        z += 1 / (1 + dx * dx + dy * dy)
      }
    }
    var kl = 0.0
    for i in 0..<n {
      for e in p.start[i]..<p.start[i + 1] where p.values[e] > 0 {
        let j = p.columns[e]
        let dx = y[i, 0] - y[j, 0], dy = y[i, 1] - y[j, 1]
        let q = 1 / (1 + dx * dx + dy * dy) / z
        kl += p.values[e] * log(p.values[e] / q)
      }
    }
    return kl
  }

  /// The gradient of KL(αP‖Q) with respect to the map (`2n` values, x then y per point): the
  /// attractive part exactly over the sparse `P`, the repulsive part by Barnes-Hut with `theta`.
  public func gradient(_ y: Matrix<Double>, _ p: Affinities, exaggeration: Double = 1, into gradient: inout [Double]) {
    let n = y.rows
    if gradient.count != 2 * n { gradient = [Double](repeating: 0, count: 2 * n) }
    let tree = QuadTree(y)
    let chunks = Swift.max(1, Swift.min(threads, n / 256))
    var repulsion = [Double](repeating: 0, count: 2 * n)
    var partialZ = [Double](repeating: 0, count: chunks)
    let theta2 = theta * theta
    y.withUnsafeBufferPointer { yb in
      repulsion.withUnsafeMutableBufferPointer { rb in
        partialZ.withUnsafeMutableBufferPointer { zb in
          nonisolated(unsafe) let ys = yb
          nonisolated(unsafe) let rs = rb
          nonisolated(unsafe) let zs = zb
          DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var z = 0.0
            var stack: [Int32] = []
            stack.reserveCapacity(256)
            for i in stride(from: chunk * n / chunks, to: (chunk + 1) * n / chunks, by: 1) {
              let force = tree.repulsion(x: ys[2 * i], y: ys[2 * i + 1], theta2: theta2, stack: &stack)
              rs[2 * i] = force.x
              rs[2 * i + 1] = force.y
              z += force.z
            }
            zs[chunk] = z
          }
        }
      }
    }
    let z = partialZ.reduce(0, +)
    y.withUnsafeBufferPointer { yb in
      for i in 0..<n {
        var ax = 0.0, ay = 0.0
        let xi = yb[2 * i], yi = yb[2 * i + 1]
        for e in p.start[i]..<p.start[i + 1] {
          let j = p.columns[e]
          let dx = xi - yb[2 * j], dy = yi - yb[2 * j + 1]
          let w = p.values[e] / (1 + dx * dx + dy * dy)
          ax += w * dx
          ay += w * dy
        }
        gradient[2 * i] = 4 * (exaggeration * ax - repulsion[2 * i] / z)
        gradient[2 * i + 1] = 4 * (exaggeration * ay - repulsion[2 * i + 1] / z)
      }
    }
  }
}

/// A point-region quadtree over a 2-D map, storing each cell's point count and centre of mass.
struct QuadTree: @unchecked Sendable {
  /// What the force traversal reads, packed in 32 bytes per cell.
  struct Node {
    var massX = 0.0, massY = 0.0
    /// The cell's width.
    var width: Double
    var count: Int32 = 0
    /// The first of four consecutive children, or -1 for a leaf.
    var child: Int32 = -1
  }
  var nodes: [Node] = []
  // Used while building: each cell's centre, and the position of the point(s) a leaf holds.
  var centerX: [Double] = [], centerY: [Double] = []
  var pointX: [Double] = [], pointY: [Double] = []

  init(_ y: Matrix<Double>) {
    let n = y.rows
    var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
    for i in 0..<n {
      minX = Swift.min(minX, y[i, 0])
      maxX = Swift.max(maxX, y[i, 0])
      minY = Swift.min(minY, y[i, 1])
      maxY = Swift.max(maxY, y[i, 1])
    }
    nodes.reserveCapacity(4 * n)
    let h = Swift.max(maxX - minX, maxY - minY) / 2 * (1 + 1e-9) + 1e-12
    _ = addNode((minX + maxX) / 2, (minY + maxY) / 2, h)
    y.withUnsafeBufferPointer { yb in
      for i in 0..<n { insert(yb[2 * i], yb[2 * i + 1]) }
    }
  }

  mutating func addNode(_ cx: Double, _ cy: Double, _ half: Double) -> Int32 {
    nodes.append(Node(width: 2 * half))
    centerX.append(cx)
    centerY.append(cy)
    pointX.append(0)
    pointY.append(0)
    return Int32(nodes.count - 1)
  }

  mutating func insert(_ x: Double, _ y: Double) {
    var node = 0
    var depth = 0
    while true {
      let c = Double(nodes[node].count)
      nodes[node].massX = (nodes[node].massX * c + x) / (c + 1)
      nodes[node].massY = (nodes[node].massY * c + y) / (c + 1)
      nodes[node].count += 1
      if nodes[node].child < 0 {
        if nodes[node].count == 1 {
          pointX[node] = x
          pointY[node] = y
          return
        }
        // A leaf that already holds points: coincident points (or a depth limit) stay together;
        // otherwise split and push the old point(s) down.
        if (pointX[node] == x && pointY[node] == y) || depth > 48 { return }
        let h = nodes[node].width / 4
        let first = addNode(centerX[node] - h, centerY[node] - h, h)
        _ = addNode(centerX[node] + h, centerY[node] - h, h)
        _ = addNode(centerX[node] - h, centerY[node] + h, h)
        _ = addNode(centerX[node] + h, centerY[node] + h, h)
        nodes[node].child = first
        let old = Int(first) + quadrant(node, pointX[node], pointY[node])
        nodes[old].massX = pointX[node]
        nodes[old].massY = pointY[node]
        nodes[old].count = nodes[node].count - 1
        pointX[old] = pointX[node]
        pointY[old] = pointY[node]
      }
      node = Int(nodes[node].child) + quadrant(node, x, y)
      depth += 1
    }
  }

  @inline(__always)
  func quadrant(_ node: Int, _ x: Double, _ y: Double) -> Int {
    (x >= centerX[node] ? 1 : 0) + (y >= centerY[node] ? 2 : 0)
  }

  /// The unnormalised repulsion on a point at `(x, y)`: Σ_j q_ij² (y_i − y_j) with q_ij =
  /// 1 / (1 + ‖y_i − y_j‖²), and Σ_j q_ij, over every other point, summarising a cell by its centre
  /// of mass when its width is below `theta` times its distance.
  func repulsion(x: Double, y: Double, theta2: Double, stack: inout [Int32]) -> (x: Double, y: Double, z: Double) {
    var fx = 0.0, fy = 0.0, z = 0.0
    stack.removeAll(keepingCapacity: true)
    stack.append(0)
    nodes.withUnsafeBufferPointer { nodes in
      while let top = stack.popLast() {
        let node = nodes[Int(top)]
        if node.count == 0 { continue }
        let dx = x - node.massX, dy = y - node.massY
        let d2 = dx * dx + dy * dy
        if node.child < 0 || node.width * node.width < theta2 * d2 {
          var weight = Double(node.count)
          // The point itself sits in its own leaf at distance 0: leave it out.
          if node.child < 0 && d2 == 0 { weight -= 1 }
          if weight <= 0 { continue }
          let q = 1 / (1 + d2)
          z += weight * q
          fx += weight * q * q * dx
          fy += weight * q * q * dy
        } else {
          stack.append(node.child)
          stack.append(node.child + 1)
          stack.append(node.child + 2)
          stack.append(node.child + 3)
        }
      }
    }
    return (fx, fy, z)
  }
}
