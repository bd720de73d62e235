/// Every valid pair (positive: same label, `a ≠ p`; negative: different labels), or every valid
/// triplet: batch-all mining. With `maxTuples` the result is a seeded uniform sample.
public struct BatchAllMiner<Scalar: DMLScalar>: TupleSampler {
  /// Return triplets instead of pairs.
  public var triplets: Bool
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  @usableFromInline var reservoir: Reservoir
  @usableFromInline var negativeReservoir: Reservoir

  /// Batch-all pairs, or triplets with `triplets`; with `maxTuples`, at most that many triplets, or
  /// that many positive and that many negative pairs, sampled with `seed`.
  public init(triplets: Bool, distance: Distance = .euclidean, maxTuples: Int? = nil, seed: UInt64 = 0) {
    self.triplets = triplets
    self.distance = distance
    reservoir = Reservoir(capacity: maxTuples, seed: seed)
    negativeReservoir = Reservoir(capacity: maxTuples, seed: seed &+ 1)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    visit(&reservoir.rng)
    visit(&negativeReservoir.rng)
  }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: !triplets)
    reservoir.reset()
    negativeReservoir.reset()
    for a in 0..<n {
      for j in 0..<m where j != a {
        if labels[j] == labels[a] {
          if triplets {
            for q in 0..<m where labels[q] != labels[a] {
              reservoir.offer(SIMD3(Int32(a), Int32(j), Int32(q)), to: &tuples.triplets)
            }
          } else {
            reservoir.offer(SIMD2(Int32(a), Int32(j)), to: &tuples.positivePairs)
          }
        } else if !triplets {
          negativeReservoir.offer(SIMD2(Int32(a), Int32(j)), to: &tuples.negativePairs)
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// PML's `PairMarginMiner`: positive pairs farther than `positiveMargin` and negative pairs
/// closer than `negativeMargin` (for similarities: positives below, negatives above).
public struct PairMarginMiner<Scalar: DMLScalar>: TupleSampler {
  /// Positive pairs farther than this (for similarities: less similar) are kept.
  public var positiveMargin: Scalar
  /// Negative pairs closer than this (for similarities: more similar) are kept.
  public var negativeMargin: Scalar
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }

  /// PML's defaults: `pos_margin` 0.2 and `neg_margin` 0.8, on Euclidean distances.
  public init(positiveMargin: Scalar = 0.2, negativeMargin: Scalar = 0.8, distance: Distance = .euclidean) {
    self.positiveMargin = positiveMargin
    self.negativeMargin = negativeMargin
    self.distance = distance
  }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: true)
    let sign = Scalar(distance.closeness)
    for a in 0..<n {
      for j in 0..<m where j != a {
        let s = scores[a, j]
        if labels[j] == labels[a] {
          // Distance: d > m_pos; similarity: s < m_pos.
          if sign * (positiveMargin - s) > 0 { tuples.positivePairs.append(SIMD2(Int32(a), Int32(j))) }
        } else if sign * (s - negativeMargin) > 0 {
          tuples.negativePairs.append(SIMD2(Int32(a), Int32(j)))
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// PML's `MultiSimilarityMiner` (Wang et al. 2019): positives less similar than the anchor's
/// most similar negative plus ε, negatives more similar than its least similar positive minus ε:
/// `s_ap − ε < max_n s_an` and `s_an + ε > min_p s_ap` (for distances the same with the order
/// reversed). A batch without positives or without negatives gives nothing.
public struct MultiSimilarityMiner<Scalar: DMLScalar>: TupleSampler {
  /// The slack ε.
  public var epsilon: Scalar
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }

  /// PML's defaults: `epsilon` 0.1, on cosine similarities.
  public init(epsilon: Scalar = 0.1, distance: Distance = .cosine) {
    self.epsilon = epsilon
    self.distance = distance
  }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: true)
    let sign = Scalar(distance.closeness)  // closeness c = sign·s
    let eps = epsilon
    scores.withUnsafeBufferPointer { s in
      labels.withUnsafeBufferPointer { label in
        // One row's pairs are gathered here, then appended at once.
        withUnsafeTemporaryAllocation(of: SIMD2<Int32>.self, capacity: Swift.max(2 * m, 1)) { buffer in
          let positives = buffer.baseAddress!, negatives = positives + m
          for a in 0..<n {
            let row = s.baseAddress! + a * m, own = label[a]
            var hardestNegative = -Scalar.infinity, hardestPositive = Scalar.infinity
            for j in 0..<m where j != a {
              let c = sign * row[j]
              if label[j] == own { hardestPositive = Swift.min(hardestPositive, c) } else {
                hardestNegative = Swift.max(hardestNegative, c)
              }
            }
            guard hardestNegative > -Scalar.infinity, hardestPositive < Scalar.infinity else { continue }
            var p = 0, q = 0
            for j in 0..<m where j != a {
              let c = sign * row[j]
              if label[j] == own {
                if c - eps < hardestNegative {
                  positives[p] = SIMD2(Int32(a), Int32(j))
                  p += 1
                }
              } else if c + eps > hardestPositive {
                negatives[q] = SIMD2(Int32(a), Int32(j))
                q += 1
              }
            }
            tuples.positivePairs.append(contentsOf: UnsafeBufferPointer(start: positives, count: p))
            tuples.negativePairs.append(contentsOf: UnsafeBufferPointer(start: negatives, count: q))
          }
        }
      }
    }
    statistics.record(tuples.count)
  }
}
