@_exported import DMLCore

/// The result of a k-nearest-neighbour search: for each query, `k` reference indices and their
/// scores, nearest first.
public struct Neighbors<Scalar: DMLScalar>: Sendable {
  /// Reference indices, `queries × k`, row-major, nearest first.
  public var indices: [Int32]
  /// Scores at those indices (distances, or similarities for a similarity), `queries × k`.
  public var scores: Matrix<Scalar>
  /// Neighbours per query.
  public var k: Int

  /// Creates a result from `queries × k` row-major indices and scores, `k` per query.
  @inlinable
  public init(indices: [Int32], scores: Matrix<Scalar>, k: Int) {
    self.indices = indices
    self.scores = scores
    self.k = k
  }

  /// The neighbours of query `i`.
  public func row(_ i: Int) -> ArraySlice<Int32> { indices[(i * k)..<((i + 1) * k)] }
}

/// An error in evaluation input, naming what is wrong.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
  /// The message naming what is wrong.
  public let description: String
  /// Creates an error with the message `description`.
  @inlinable public init(_ description: String) { self.description = description }
}

// Pre-specialised: as a generic `@inlinable` function the compiler left it unspecialised in client
// modules (measured 10x slower: value-witness copies and dispatch thunks in the top-k loop).
/// Exact k-nearest-neighbour search.
///
/// Query blocks are scored against reference blocks by GEMM, and each block's best `k` are merged
/// into a running top-k per query, so memory is `O(queryBlock × referenceBlock)` whatever the
/// sizes: the full `queries × references` matrix is never built. Ties go to the lower reference
/// index. Euclidean distances are ranked by their squares and rooted only for the `k` kept.
///
/// - Parameters:
///   - queries: `q × d`.
///   - references: `r × d`.
///   - k: neighbours per query, at most `r` (`r − 1` with `excludeSelf`).
///   - distance: any library distance; unnormalised Euclidean by default, as faiss's IndexFlatL2.
///   - excludeSelf: `queries` *are* `references`, and a query is not its own neighbour.
///   - queryBlock: queries scored per block.
///   - referenceBlock: references scored per block; memory is `queryBlock × referenceBlock` scores.
///   - compute: the threads each block's product may use.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func nearestNeighbors<T: DMLScalar>(
  queries: Matrix<T>, references: Matrix<T>, k: Int,
  distance: Distance = Distance(.euclidean, normalizesEmbeddings: false), excludeSelf: Bool = false,
  queryBlock: Int = 1024, referenceBlock: Int = 4096, compute: ComputeContext = .automatic
) throws -> Neighbors<T> {
  try searchNeighbors(
    queries: queries, references: references, k: k, distance: distance, excludeSelf: excludeSelf,
    queryBlock: queryBlock, referenceBlock: referenceBlock, filter: nil, compute: compute)
}

/// Which references a filtered search may return for each query, and in which order.
struct NeighborFilter<T: DMLScalar> {
  /// The label of each query and of each reference.
  var queryLabels: [Int], referenceLabels: [Int]
  /// Keep references of the query's own label (`true`) or of other labels (`false`).
  var sameLabel: Bool
  /// Rank the farthest first instead of the nearest.
  var farthest: Bool
  /// Per query: keep only references farther than this distance (`nil`: no bound).
  var fartherThan: [T]?
}

/// The search behind `nearestNeighbors` and `hardNeighbors`. With a filter, rows may hold fewer
/// than `k` valid neighbours: the rest are index `-1` with a NaN score.
func searchNeighbors<T: DMLScalar>(
  queries: Matrix<T>, references: Matrix<T>, k: Int, distance: Distance, excludeSelf: Bool,
  queryBlock: Int, referenceBlock: Int, filter: NeighborFilter<T>?, compute: ComputeContext
) throws -> Neighbors<T> {
  let (q, r, d) = (queries.rows, references.rows, queries.columns)
  guard references.columns == d else {
    throw EvaluationError("queries have \(d) dimensions, references \(references.columns)")
  }
  guard r > 0 else { throw EvaluationError("the reference set is empty") }
  guard excludeSelf ? q == r : true else {
    throw EvaluationError("excluding self needs the same set on both sides (\(q) vs \(r) rows)")
  }
  let available = excludeSelf ? r - 1 : r
  guard k > 0 && (k <= available || filter != nil) else {
    throw EvaluationError("k = \(k) must lie in 1...\(available) for \(r) references\(excludeSelf ? " (self excluded)" : "")")
  }
  guard queries.isFinite && references.isFinite else {
    throw EvaluationError("embeddings contain NaN or infinite values")
  }
  // Rank by the largest score for a similarity's nearest or a distance's farthest.
  let largest = distance.isSimilarity != (filter?.farthest ?? false)
  let worst: T = largest ? -T.infinity : T.infinity
  // Prepared copies: rows normalised when the distance says so; squared norms for Euclidean.
  var qn = distance.preparedRows(queries)
  var rn = distance.preparedRows(references)
  // The signal-to-noise ratio ranks a query's references as the squared Euclidean distance of
  // the centred rows does (it divides that by the query's own centred square norm): rank those,
  // then divide the kept scores.
  let snr = distance.kind == .snr
  if snr {
    qn.subtractRowMeans()
    rn.subtractRowMeans()
  }
  // An Lp distance ranks by its sum Σ|q − r|^p, computed pair by pair, raised to power / p for the
  // neighbours kept.
  let lp = distance.kind == .lp
  let (lpOrder, lpPower) = (T(distance.p), T(distance.power))
  let euclidean = distance.kind != .dotProduct && !lp
  // The Poincaré distance ranks by δ = 2c D² / ((1 − c‖u‖²)(1 − c‖v‖²)), a monotone function of it.
  let poincare = distance.kind == .poincare
  let curvature = T(distance.curvature)
  var qs = [T](), rs = [T]()
  if euclidean {
    qn.rowSquaredNorms(into: &qs)
    rn.rowSquaredNorms(into: &rs)
  }
  let kk = Swift.min(k + (excludeSelf ? 1 : 0), r)  // one extra, in case self is among the best
  // Per query, a bounded max-heap of its best `kk` so far (the root is the worst kept), across
  // every reference block: keys are oriented so that smaller is better, and references arrive in
  // increasing index order, so ties keep the lower index. A score that does not beat the root is
  // rejected by one comparison, which is most of them once the heap has filled: the cost is
  // O(r) per query plus O(log kk) per accepted candidate, at any k.
  var heapKey = [T](repeating: 0, count: q * kk)
  var heapIndex = [Int32](repeating: -1, count: q * kk)
  var heapCount = [Int](repeating: 0, count: q)
  var block = Matrix<T>()
  var qBlock = Matrix<T>(), rBlock = Matrix<T>()
  let referenceSquares = rs

  var q0 = 0
  while q0 < q {
    let q1 = Swift.min(q, q0 + queryBlock)
    copyRows(qn, q0..<q1, into: &qBlock)
    var r0 = 0
    while r0 < r {
      let r1 = Swift.min(r, r0 + referenceBlock)
      copyRows(rn, r0..<r1, into: &rBlock)
      let m = r1 - r0
      if lp {
        lpSums(qBlock, rBlock, p: lpOrder, into: &block, compute: compute)
      } else {
        gemm(qBlock, rBlock, transposeB: true, into: &block, compute: compute)
      }
      let chunks = compute.chunkCount(rows: q1 - q0, workPerRow: m, minimumWork: 1 << 16)
      block.withUnsafeMutableBufferPointer { b in
        heapKey.withUnsafeMutableBufferPointer { hk in
          heapIndex.withUnsafeMutableBufferPointer { hi in
            heapCount.withUnsafeMutableBufferPointer { hc in
              referenceSquares.withUnsafeBufferPointer { squares in
                let (b, hk, hi, hc) = (b.baseAddress!, hk.baseAddress!, hi.baseAddress!, hc.baseAddress!)
                BatchParallelism.forEachChunk(rows: q1 - q0, chunks: chunks) { _, rows in
                  for i in rows {
                    let row = b + i * m
                    if euclidean {
                      // Squared distances, rooted only for the neighbours kept.
                      T.squaredDistanceRow(row, querySquare: qs[q0 + i], referenceSquares: squares.baseAddress! + r0, count: m)
                    }
                    if poincare {
                      let alpha = Swift.max(1 - curvature * qs[q0 + i], T.ulpOfOne)
                      for j in 0..<m {
                        let beta = Swift.max(1 - curvature * squares[r0 + j], T.ulpOfOne)
                        row[j] = 2 * curvature * Swift.max(row[j], 0) / (alpha * beta)
                      }
                    }
                    if let filter {
                      // Filtered-out references get the worst score, so they rank last and are dropped.
                      let y = filter.queryLabels[q0 + i]
                      filter.referenceLabels.withUnsafeBufferPointer { labels in
                        for j in 0..<m where (labels[r0 + j] == y) != filter.sameLabel { row[j] = worst }
                      }
                      if let bound = filter.fartherThan?[q0 + i] {
                        // Row scores are squared distances for the Euclidean kinds and the SNR (of the
                        // centred rows, not yet divided by the query's), similarities otherwise.
                        let b =
                          distance.kind == .euclidean && bound > 0
                          ? bound * bound
                          : lp && bound > 0
                            ? T.pow(bound, lpOrder / lpPower)
                            : poincare && bound > 0
                              ? T.cosh(curvature.squareRoot() * bound) - 1 : snr ? bound * Swift.max(qs[q0 + i], T(Distance.snrVarianceFloor)) : bound
                        for j in 0..<m where distance.isSimilarity ? row[j] >= b : row[j] <= b { row[j] = worst }
                      }
                    }
                    pushRow(
                      row, count: m, firstIndex: r0, largest: largest, keys: hk + (q0 + i) * kk, indices: hi + (q0 + i) * kk,
                      size: &hc[q0 + i], capacity: kk)
                  }
                }
              }
            }
          }
        }
      }
      r0 = r1
    }
    q0 = q1
  }
  // Each heap, sorted best first, with its scores restored from the oriented keys.
  var bestIndex = heapIndex, bestScore = heapKey
  bestIndex.withUnsafeMutableBufferPointer { bi in
    bestScore.withUnsafeMutableBufferPointer { bs in
      for i in 0..<q {
        let keys = bs.baseAddress! + i * kk, indices = bi.baseAddress! + i * kk
        var size = heapCount[i]
        while size > 1 {
          size -= 1
          let (key, index) = (keys[size], indices[size])
          keys[size] = keys[0]
          indices[size] = indices[0]
          siftDown(key, index, keys: keys, indices: indices, size: size)
        }
        if largest { for s in 0..<kk { keys[s] = -keys[s] } }
      }
    }
  }
  var result = Neighbors<T>(indices: [Int32](repeating: 0, count: q * k), scores: Matrix<T>(rows: q, columns: k), k: k)
  for i in 0..<q {
    var out = 0
    for slot in 0..<kk where out < k {
      let j = bestIndex[i * kk + slot]
      if excludeSelf && Int(j) == i { continue }
      let s = bestScore[i * kk + slot]
      if filter != nil && (j < 0 || s == worst) { break }  // only filtered-out references remain
      result.indices[i * k + out] = j
      result.scores[i, out] =
        distance.kind == .euclidean
        ? s.squareRoot()
        : lp
          ? Distance.lpScore(s, p: lpOrder, power: lpPower)
          : poincare
            ? T.log(onePlus: s + (s * (s + 2)).squareRoot()) / curvature.squareRoot()
            : snr ? s / Swift.max(qs[i], T(Distance.snrVarianceFloor)) : s
      out += 1
    }
    for slot in out..<k {
      result.indices[i * k + slot] = -1
      result.scores[i, slot] = .nan
    }
  }
  return result
}

/// `(a, ia)` ranks after `(b, ib)`: a larger oriented key, or the same key at a larger index.
@inline(__always)
func worse<T: DMLScalar>(_ a: T, _ ia: Int32, _ b: T, _ ib: Int32) -> Bool { a > b || (a == b && ia > ib) }

/// Places `(key, index)` at the root of the max-heap `keys`/`indices` of `size` entries and sifts it
/// down to its place.
@inline(__always)
func siftDown<T: DMLScalar>(_ key: T, _ index: Int32, keys: UnsafeMutablePointer<T>, indices: UnsafeMutablePointer<Int32>, size: Int) {
  var i = 0
  while true {
    let l = 2 * i + 1
    if l >= size { break }
    var w = l
    if l + 1 < size && worse(keys[l + 1], indices[l + 1], keys[l], indices[l]) { w = l + 1 }
    guard worse(keys[w], indices[w], key, index) else { break }
    keys[i] = keys[w]
    indices[i] = indices[w]
    i = w
  }
  keys[i] = key
  indices[i] = index
}

/// Offers a block's row of `count` scores (references `firstIndex…`) to a query's bounded heap of
/// `capacity` entries holding `size`; keys are `-score` when `largest`.
@inline(__always)
func pushRow<T: DMLScalar>(
  _ row: UnsafePointer<T>, count: Int, firstIndex: Int, largest: Bool, keys: UnsafeMutablePointer<T>, indices: UnsafeMutablePointer<Int32>,
  size: inout Int, capacity: Int
) {
  var j = 0
  // Filling: sift each new entry up.
  while j < count && size < capacity {
    let key = largest ? -row[j] : row[j], index = Int32(firstIndex + j)
    var c = size
    size += 1
    while c > 0 {
      let p = (c - 1) / 2
      guard worse(key, index, keys[p], indices[p]) else { break }
      keys[c] = keys[p]
      indices[c] = indices[p]
      c = p
    }
    keys[c] = key
    indices[c] = index
    j += 1
  }
  // Full: a score enters only if it beats the worst kept (later indices lose ties).
  var bound = keys[0]
  while j < count {
    let key = largest ? -row[j] : row[j]
    if key < bound {
      siftDown(key, Int32(firstIndex + j), keys: keys, indices: indices, size: capacity)
      bound = keys[0]
    }
    j += 1
  }
}

@usableFromInline
func copyRows<T: DMLScalar>(_ x: Matrix<T>, _ range: Range<Int>, into out: inout Matrix<T>) {
  out.resize(rows: range.count, columns: x.columns)
  let d = x.columns
  x.withUnsafeBufferPointer { src in
    out.withUnsafeMutableBufferPointer { dst in
      dst.baseAddress!.update(from: src.baseAddress! + range.lowerBound * d, count: range.count * d)
    }
  }
}

/// `out[i, j] = Σ_k |q_ik − r_jk|^p`, the Lp search's ranking key, split over the threads by rows.
func lpSums<T: DMLScalar>(_ q: Matrix<T>, _ r: Matrix<T>, p: T, into out: inout Matrix<T>, compute: ComputeContext) {
  let (n, m, d) = (q.rows, r.rows, q.columns)
  out.resize(rows: n, columns: m)
  let chunks = compute.chunkCount(rows: n, workPerRow: m * Swift.max(d, 1) * (p == 1 || p == 2 ? 1 : 8), minimumWork: 1 << 16)
  q.withUnsafeBufferPointer { qp in
    r.withUnsafeBufferPointer { rp in
      out.withUnsafeMutableBufferPointer { o in
        let (qp, rp, o) = (qp.baseAddress, rp.baseAddress, o.baseAddress!)
        BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, rows in
          for i in rows {
            for j in 0..<m { o[i * m + j] = d == 0 ? 0 : Distance.lpSum(qp! + i * d, rp! + j * d, count: d, p: p) }
          }
        }
      }
    }
  }
}
