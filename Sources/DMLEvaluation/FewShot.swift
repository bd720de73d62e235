/// N-way K-shot episodic evaluation with class prototypes (Snell et al. 2017): each episode draws
/// `ways` classes, `shots` support and `queriesPerClass` query items per class; a query is
/// assigned to the class whose mean support embedding (prototype) is nearest.
public struct FewShotResult: Sendable, CustomStringConvertible {
  /// The episode settings: classes per episode, support items per class, and episodes run.
  public var ways: Int, shots: Int, episodes: Int
  /// Mean accuracy over episodes.
  public var accuracy: Double
  /// Half-width of the 95% confidence interval (1.96 standard errors).
  public var confidence95: Double

  /// For example `5-way 1-shot: 61.23% ± 0.45 (600 episodes)`, accuracy and interval in percent.
  public var description: String {
    "\(ways)-way \(shots)-shot: \(((accuracy * 10000).rounded() / 100))% ± \(((confidence95 * 10000).rounded() / 100)) (\(episodes) episodes)"
  }
}

/// Runs `episodes` N-way K-shot episodes on `embeddings` and returns the mean query accuracy
/// with its 95% confidence interval.
///
/// Only classes with at least `shots + queriesPerClass` items are drawn; each episode shuffles
/// them and assigns every query to its nearest prototype (the mean of its class's `shots` support
/// embeddings).
///
/// - Parameters:
///   - embeddings: the embeddings, one per row.
///   - labels: the class of each row.
///   - ways: classes per episode (at least 2).
///   - shots: support items per class (at least 1).
///   - queriesPerClass: query items per class (default 15).
///   - episodes: the number of episodes (at least 1).
///   - distance: the distance from queries to prototypes; unnormalised Euclidean by default.
///   - seed: the seed of the random draws.
/// - Throws: `EvaluationError` if `labels` does not match the rows, a count is out of range, or
///   fewer than `ways` classes have enough items.
public func fewShotEvaluation<T: DMLScalar>(
  _ embeddings: Matrix<T>, labels: [Int], ways: Int, shots: Int, queriesPerClass: Int = 15,
  episodes: Int, distance: Distance = Distance(.euclidean, normalizesEmbeddings: false), seed: UInt64 = 0
) throws -> FewShotResult {
  guard labels.count == embeddings.rows else { throw EvaluationError("\(embeddings.rows) embeddings but \(labels.count) labels") }
  guard ways >= 2, shots >= 1, queriesPerClass >= 1, episodes >= 1 else {
    throw EvaluationError("few-shot needs ways ≥ 2, shots ≥ 1, queries ≥ 1 and episodes ≥ 1")
  }
  var byClass: [Int: [Int]] = [:]
  for (i, y) in labels.enumerated() { byClass[y, default: []].append(i) }
  let eligible = byClass.keys.sorted().filter { byClass[$0]!.count >= shots + queriesPerClass }
  guard eligible.count >= ways else {
    throw EvaluationError("only \(eligible.count) classes have \(shots + queriesPerClass) items; \(ways) ways are needed")
  }
  var rng = RandomSource(seed: seed)
  let d = embeddings.columns
  var accuracies: [Double] = []
  var prototypes = Matrix<T>(rows: ways, columns: d)
  var queries = Matrix<T>(rows: ways * queriesPerClass, columns: d)
  for _ in 0..<episodes {
    var classes = eligible
    rng.shuffle(&classes)
    prototypes.fill(0)
    for (c, label) in classes.prefix(ways).enumerated() {
      var members = byClass[label]!
      rng.shuffle(&members)
      for s in 0..<shots {
        for k in 0..<d { prototypes[c, k] += embeddings[members[s], k] / T(shots) }
      }
      for q in 0..<queriesPerClass {
        for k in 0..<d { queries[c * queriesPerClass + q, k] = embeddings[members[shots + q], k] }
      }
    }
    let nearest = try nearestNeighbors(queries: queries, references: prototypes, k: 1, distance: distance)
    var correct = 0
    for q in 0..<(ways * queriesPerClass) where Int(nearest.indices[q]) == q / queriesPerClass { correct += 1 }
    accuracies.append(Double(correct) / Double(ways * queriesPerClass))
  }
  let mean = accuracies.reduce(0, +) / Double(episodes)
  let variance = accuracies.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(Swift.max(episodes - 1, 1))
  return FewShotResult(
    ways: ways, shots: shots, episodes: episodes, accuracy: mean,
    confidence95: 1.96 * (variance / Double(episodes)).squareRoot())
}
