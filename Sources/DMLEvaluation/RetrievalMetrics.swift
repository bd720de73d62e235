/// Retrieval metrics with pytorch-metric-learning's `AccuracyCalculator` definitions.
///
/// For query `i`, let `R_i` be the number of references with its label (itself excluded when the
/// queries are the references), and `rel_j` whether its `j`-th neighbour shares its label:
/// - **Precision@1**: `rel_1`.
/// - **R-Precision**: the hits among the first `R_i` neighbours, divided by `R_i`.
/// - **MAP@R**: `(1/R_i) Σ_{j ≤ R_i} P@j · rel_j`, where `P@j` is the precision of the first `j`.
///   It rewards putting *all* same-class items first, not just one (Musgrave et al. 2020).
/// - **MAP** (PML's `mean_average_precision`): the same sum over all `k` retrieved neighbours,
///   still divided by `R_i`.
/// - **MRR**: `1 / rank` of the first hit among the `k`, or 0.
/// - **Recall@K**: 1 if any of the first `K` neighbours shares the label. This is the
///   deep-metric-learning recall; it is not the recall of information retrieval, and Recall@1 is
///   Precision@1.
///
/// Each metric is a plain mean over queries. Queries whose label has no other reference
/// ("lone" queries, `R_i = 0`) are excluded from every metric, and counted in `loneQueries`.
/// `k` defaults to PML's `"max_bin_count"`: the largest per-label count in the references, less
/// one when the references include the queries.
public struct RetrievalMetrics: Sendable, Equatable, CustomStringConvertible {
  /// Precision@1: the fraction of queries whose nearest neighbour shares their label.
  public var precisionAt1: Double
  /// R-Precision: the mean over queries of the same-label hits among the first `R_i`
  /// neighbours, divided by `R_i`.
  public var rPrecision: Double
  /// MAP@R: the mean over queries of `(1/R_i) Σ_{j ≤ R_i} P@j · rel_j`, the average precision
  /// cut off at `R_i` neighbours.
  public var mapAtR: Double
  /// MAP (PML's `mean_average_precision`): the mean over queries of `(1/R_i) Σ_{j ≤ k} P@j · rel_j`,
  /// the average precision over all `k` retrieved neighbours, still divided by `R_i`.
  public var meanAveragePrecision: Double
  /// MRR: the mean over queries of `1 / rank` of the first same-label neighbour among the `k`,
  /// or 0 when there is none.
  public var meanReciprocalRank: Double
  /// Recall@K for each requested K.
  public var recallAt: [Int: Double]
  /// Neighbours retrieved per query.
  public var k: Int
  /// Queries scored.
  public var queries: Int
  /// Queries excluded because no reference shares their label.
  public var loneQueries: Int

  /// Metrics with the given values (for combining metrics computed in parts).
  public init(
    precisionAt1: Double, rPrecision: Double, mapAtR: Double, meanAveragePrecision: Double, meanReciprocalRank: Double,
    recallAt: [Int: Double], k: Int, queries: Int, loneQueries: Int
  ) {
    self.precisionAt1 = precisionAt1
    self.rPrecision = rPrecision
    self.mapAtR = mapAtR
    self.meanAveragePrecision = meanAveragePrecision
    self.meanReciprocalRank = meanReciprocalRank
    self.recallAt = recallAt
    self.k = k
    self.queries = queries
    self.loneQueries = loneQueries
  }

  /// One line such as `P@1 0.8123  R-Precision 0.5  …  R@1 0.8123`, values rounded to four
  /// decimals, with the number of lone queries when any were excluded.
  public var description: String {
    var s = "P@1 \(fmt(precisionAt1))  R-Precision \(fmt(rPrecision))  MAP@R \(fmt(mapAtR))  MAP \(fmt(meanAveragePrecision))  MRR \(fmt(meanReciprocalRank))"
    for key in recallAt.keys.sorted() { s += "  R@\(key) \(fmt(recallAt[key]!))" }
    if loneQueries > 0 { s += "  (\(loneQueries) lone queries excluded)" }
    return s
  }

  func fmt(_ v: Double) -> String {
    let r = (v * 10000).rounded() / 10000
    return "\(r)"
  }
}

/// Computes `RetrievalMetrics` for `queries` against `references` (or against themselves, self
/// excluded, when `references` is `nil`).
///
/// - Parameters:
///   - queries: the query embeddings, one per row.
///   - queryLabels: the label of each query.
///   - references: the reference embeddings (`nil`: the queries themselves, self excluded).
///   - referenceLabels: the label of each reference (with `references`).
///   - recallAt: the K of each Recall@K.
///   - k: neighbours per query; `nil` for PML's `"max_bin_count"`. At least the largest K of
///     `recallAt` are retrieved.
///   - distance: unnormalised Euclidean by default, as PML's faiss `IndexFlatL2`.
///   - compute: the threads the search's products may use.
public func retrievalMetrics<T: DMLScalar>(
  queries: Matrix<T>, queryLabels: [Int], references: Matrix<T>? = nil, referenceLabels: [Int]? = nil,
  k: Int? = nil, recallAt: [Int] = [1, 2, 4, 8],
  distance: Distance = Distance(.euclidean, normalizesEmbeddings: false), compute: ComputeContext = .automatic
) throws -> RetrievalMetrics {
  guard queryLabels.count == queries.rows else {
    throw EvaluationError("\(queries.rows) queries but \(queryLabels.count) query labels")
  }
  let sameSet = references == nil
  let refs = references ?? queries
  let refLabels = referenceLabels ?? queryLabels
  guard refLabels.count == refs.rows else {
    throw EvaluationError("\(refs.rows) references but \(refLabels.count) reference labels")
  }
  guard refs.rows > (sameSet ? 1 : 0) else { throw EvaluationError("the reference set is empty") }
  var counts: [Int: Int] = [:]
  for y in refLabels { counts[y, default: 0] += 1 }
  let maxBin = (counts.values.max() ?? 0) - (sameSet ? 1 : 0)
  let available = refs.rows - (sameSet ? 1 : 0)
  let kk = Swift.min(available, Swift.max(k ?? maxBin, recallAt.max() ?? 1, 1))
  let knn = try nearestNeighbors(
    queries: queries, references: refs, k: kk, distance: distance, excludeSelf: sameSet, compute: compute)
  return metricsFromNeighbors(
    knn.indices, k: kk, metricK: Swift.min(kk, k ?? maxBin), queryLabels: queryLabels,
    referenceLabels: refLabels, counts: counts, sameSet: sameSet, recallAt: recallAt)
}

/// The metrics from already retrieved neighbours (row `i` of `indices`: query `i`'s `k`
/// neighbours, nearest first). `metricK` is the `k` of PML's definitions (MAP, MRR).
public func metricsFromNeighbors(
  _ indices: [Int32], k: Int, metricK: Int, queryLabels: [Int], referenceLabels: [Int],
  counts: [Int: Int], sameSet: Bool, recallAt: [Int]
) -> RetrievalMetrics {
  accumulateMetrics(queries: queryLabels.count, metricK: metricK, recallAt: recallAt) { i in
    let y = queryLabels[i]
    let r = (counts[y] ?? 0) - (sameSet ? 1 : 0)
    guard r > 0 else { return (0, []) }
    return (r, indices[(i * k)..<((i + 1) * k)].map { referenceLabels[Int($0)] == y })
  }
}

/// The metrics of `queries` queries, from each query's `R_i` and the relevance of its neighbours
/// (nearest first), given by `query`; `R_i = 0` marks a lone query.
func accumulateMetrics(
  queries: Int, metricK: Int, recallAt: [Int], _ query: (Int) -> (relevant: Int, row: [Bool])
) -> RetrievalMetrics {
  var p1 = 0.0, rp = 0.0, mapr = 0.0, map = 0.0, mrr = 0.0
  var recall = [Int: Double]()
  var scored = 0, lone = 0
  for i in 0..<queries {
    let (r, row) = query(i)
    guard r > 0 else {
      lone += 1
      continue
    }
    scored += 1
    if row[0] { p1 += 1 }
    var hits = 0, ap = 0.0, apr = 0.0, firstHit = 0
    for (j, rel) in row.prefix(metricK).enumerated() where rel {
      hits += 1
      let precision = Double(hits) / Double(j + 1)
      ap += precision
      if j < r { apr += precision }
      if firstHit == 0 { firstHit = j + 1 }
    }
    rp += Double(row.prefix(Swift.min(r, metricK)).filter { $0 }.count) / Double(r)
    mapr += apr / Double(r)
    map += ap / Double(r)
    if firstHit > 0 { mrr += 1 / Double(firstHit) }
    // Each K once, however often it is listed.
    for K in Set(recallAt) where row.prefix(K).contains(true) { recall[K, default: 0] += 1 }
  }
  let n = Double(Swift.max(scored, 1))
  var recallAtK = [Int: Double]()
  for K in recallAt { recallAtK[K] = (recall[K] ?? 0) / n }
  return RetrievalMetrics(
    precisionAt1: p1 / n, rPrecision: rp / n, mapAtR: mapr / n, meanAveragePrecision: map / n,
    meanReciprocalRank: mrr / n, recallAt: recallAtK, k: metricK, queries: scored, loneQueries: lone)
}

/// `RetrievalMetrics` of multi-label rows, each row a query against the others: a neighbour is
/// relevant when its label set shares a label with the query's, and `R_i` is the number of other
/// rows that share one (the multi-label reading of PML's definitions, as in multi-label retrieval
/// benchmarks such as NUS-WIDE). Rows with an empty set, or sharing no label with any other row,
/// are lone queries. `k` defaults to the largest `R_i` (PML's `"max_bin_count"` read the same way).
public func multiLabelRetrievalMetrics<T: DMLScalar>(
  _ embeddings: Matrix<T>, labelSets: [[Int]], k: Int? = nil, recallAt: [Int] = [1, 2, 4, 8],
  distance: Distance = Distance(.euclidean, normalizesEmbeddings: false), compute: ComputeContext = .automatic
) throws -> RetrievalMetrics {
  let n = embeddings.rows
  guard labelSets.count == n else { throw EvaluationError("\(n) rows but \(labelSets.count) label sets") }
  guard n > 1 else { throw EvaluationError("the reference set is empty") }
  // R_i: the rows sharing a label with row i, through an index from label to rows.
  var rowsOf: [Int: [Int]] = [:]
  for (i, set) in labelSets.enumerated() { for y in Set(set) { rowsOf[y, default: []].append(i) } }
  var relevantCount = [Int](repeating: 0, count: n)
  var mark = [Int](repeating: -1, count: n)
  for i in 0..<n {
    var count = 0
    for y in Set(labelSets[i]) {
      for j in rowsOf[y]! where j != i && mark[j] != i {
        mark[j] = i
        count += 1
      }
    }
    relevantCount[i] = count
  }
  let maxBin = relevantCount.max() ?? 0
  let kk = Swift.min(n - 1, Swift.max(k ?? maxBin, recallAt.max() ?? 1, 1))
  let metricK = Swift.min(kk, k ?? maxBin)
  let knn = try nearestNeighbors(queries: embeddings, references: embeddings, k: kk, distance: distance, excludeSelf: true, compute: compute)
  return accumulateMetrics(queries: n, metricK: metricK, recallAt: recallAt) { i in
    guard relevantCount[i] > 0 else { return (0, []) }
    let own = Set(labelSets[i])
    return (relevantCount[i], (0..<kk).map { j in !own.isDisjoint(with: labelSets[Int(knn.indices[i * kk + j])]) })
  }
}
