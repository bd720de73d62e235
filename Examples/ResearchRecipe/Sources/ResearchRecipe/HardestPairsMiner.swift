import DMLCore

/// A miner written outside the library: for each anchor, its hardest positive pair (the least
/// similar item of its class) and its hardest negative pair (the most similar item of another
/// class), as pairs for a pair loss such as binomial deviance or contrastive. Batch-hard mining (Hermans et
/// al. 2017) in pair form.
///
/// Reads `n × m` scores (anchors are rows; partners are columns, the batch then any cross-batch
/// memory), so it also works with `--memory`.
public struct HardestPairsMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }

  public init(distance: Distance = .cosine) { self.distance = distance }

  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let (n, m) = (scores.rows, scores.columns)
    tuples.removeAll(pairs: true)
    let sign = Scalar(distance.closeness)  // closeness c = sign·s
    for a in 0..<n {
      var positive = -1, negative = -1
      var pc = Scalar.infinity, nc = -Scalar.infinity
      for j in 0..<m where j != a {
        let c = sign * scores[a, j]
        if labels[j] == labels[a] {
          if c < pc { (pc, positive) = (c, j) }
        } else if c > nc {
          (nc, negative) = (c, j)
        }
      }
      if positive >= 0 { tuples.positivePairs.append(SIMD2(Int32(a), Int32(positive))) }
      if negative >= 0 { tuples.negativePairs.append(SIMD2(Int32(a), Int32(negative))) }
    }
    statistics.record(tuples.count)
  }
}
