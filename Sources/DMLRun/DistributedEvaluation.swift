import DMLCore
import DMLEvaluation
import DMLTraining

/// `retrievalMetrics` of every row of `embeddings` against the others (self excluded), with the
/// queries shared among the ranks of `group`: each rank searches its contiguous share of the
/// queries against all rows and scores them, and the per-query sums are added over ranks. Every
/// rank must call it with the same embeddings (gathered, for example, by `TrainingRun.embed`) and
/// receives the same metrics: those of one process, to rounding of the sums (neighbours at exactly
/// equal distances may come in another order).
public func retrievalMetrics(
  embeddings: Matrix<Float>, labels: [Int], over group: any Collective, recallAt: [Int] = [1, 2, 4, 8],
  compute: ComputeContext = .automatic
) throws -> RetrievalMetrics {
  guard group.size > 1 else { return try retrievalMetrics(queries: embeddings, queryLabels: labels, recallAt: recallAt, compute: compute) }
  guard labels.count == embeddings.rows else { throw EvaluationError("\(embeddings.rows) queries but \(labels.count) query labels") }
  guard embeddings.rows > 1 else { throw EvaluationError("the reference set is empty") }
  var counts: [Int: Int] = [:]
  for y in labels { counts[y, default: 0] += 1 }
  let maxBin = (counts.values.max() ?? 0) - 1
  let kk = Swift.min(embeddings.rows - 1, Swift.max(maxBin, recallAt.max() ?? 1, 1))
  let rows = Shards.rows(batch: embeddings.rows, rank: group.rank, size: group.size)
  var sums = [Double](repeating: 0, count: 7 + recallAt.count)
  if !rows.isEmpty {
    // One more neighbour than needed, then the query itself is dropped from its own list.
    let knn = try nearestNeighbors(
      queries: embeddings.rows(Array(rows)), references: embeddings, k: kk + 1,
      distance: Distance(.euclidean, normalizesEmbeddings: false), compute: compute)
    var indices: [Int32] = []
    indices.reserveCapacity(rows.count * kk)
    for (r, i) in rows.enumerated() {
      let list = knn.indices[(r * (kk + 1))..<((r + 1) * (kk + 1))]
      let own = list.firstIndex(of: Int32(i)) ?? list.endIndex - 1
      for j in list.indices where j != own { indices.append(list[j]) }
    }
    let m = metricsFromNeighbors(
      indices, k: kk, metricK: Swift.min(kk, maxBin), queryLabels: Array(labels[rows]), referenceLabels: labels, counts: counts, sameSet: true,
      recallAt: recallAt)
    let n = Double(m.queries)
    sums[0] = m.precisionAt1 * n
    sums[1] = m.rPrecision * n
    sums[2] = m.mapAtR * n
    sums[3] = m.meanAveragePrecision * n
    sums[4] = m.meanReciprocalRank * n
    sums[5] = n
    sums[6] = Double(m.loneQueries)
    for (j, K) in recallAt.enumerated() { sums[7 + j] = (m.recallAt[K] ?? 0) * n }
  }
  try group.allReduceSum(&sums, what: "the retrieval metrics' sums")
  let n = Swift.max(sums[5], 1)
  var recall: [Int: Double] = [:]
  for (j, K) in recallAt.enumerated() { recall[K] = sums[7 + j] / n }
  return RetrievalMetrics(
    precisionAt1: sums[0] / n, rPrecision: sums[1] / n, mapAtR: sums[2] / n, meanAveragePrecision: sums[3] / n,
    meanReciprocalRank: sums[4] / n, recallAt: recall, k: Swift.min(kk, maxBin), queries: Int(sums[5]), loneQueries: Int(sums[6]))
}

/// `network`'s embeddings of every row of `features`: on several ranks, each embeds its
/// contiguous share of the rows and the shares are gathered, so that every rank holds them all.
public func embed<N: EmbeddingNetwork>(
  _ features: Matrix<Float>, with network: inout N, over group: any Collective, compute: ComputeContext = .automatic
) throws -> Matrix<Float> where N.Scalar == Float {
  guard group.size > 1 else { return network.embed(features, compute: compute) }
  let rows = Shards.rows(batch: features.rows, rank: group.rank, size: group.size)
  let d = network.embeddingDimension
  let mine = rows.isEmpty ? Matrix<Float>(rows: 0, columns: d) : network.embed(features.rows(Array(rows)), compute: compute)
  let all = try group.allGather(
    mine.elements, counts: Shards.counts(batch: features.rows, size: group.size).map { $0 * d }, what: "the embeddings of \(features.rows) rows")
  return Matrix(rows: features.rows, columns: d, elements: all)
}
