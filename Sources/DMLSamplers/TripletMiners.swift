@_exported import DMLCore

/// Which triplets `TripletMarginMiner` keeps, on `t = d(a,n) − d(a,p)` (similarities:
/// `s(a,p) − s(a,n)`), with PML's exact windows.
public enum TripletType: String, Sendable, CaseIterable, Codable {
  /// `t ≤ margin`: every triplet that violates the margin.
  case all
  /// `t ≤ 0`: the negative is at least as close as the positive.
  case hard
  /// `0 < t ≤ margin`: the negative is farther, but within the margin.
  case semihard
  /// `t > margin`: already satisfied.
  case easy

  /// 1 when `t` falls in the window, else 0: integer tests combined without a branch, so that a
  /// miner's inner loop does not stall on unpredictable outcomes.
  @inlinable @inline(__always)
  func keepCount<T: DMLScalar>(_ t: T, margin: T) -> Int {
    switch self {
    case .all: return t <= margin ? 1 : 0
    case .hard: return t <= 0 ? 1 : 0
    case .semihard: return (t > 0 ? 1 : 0) & (t <= margin ? 1 : 0)
    case .easy: return t > margin ? 1 : 0
    }
  }
}

/// PML's `TripletMarginMiner`: every triplet whose margin `t` falls in the window of `type`.
///
/// Triplets are streamed per anchor, never materialised as an `n³` tensor; with `maxTuples` the
/// result is a uniform seeded sample of at most that many (reservoir sampling), so memory stays
/// bounded however many qualify.
public struct TripletMarginMiner<Scalar: DMLScalar>: TupleSampler {
  /// The margin of the windows.
  public var margin: Scalar
  /// Which triplets to keep.
  public var type: TripletType
  public var distance: Distance
  /// The most triplets returned (`nil`: all).
  public var maxTuples: Int? {
    get { reservoir.capacity }
    set { reservoir.capacity = newValue }
  }
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  @usableFromInline var reservoir: Reservoir
  /// Scratch per anchor: its negatives' indices and scores, and the kept triplets of one positive
  /// (kept across calls, so mining allocates nothing once warm).
  @usableFromInline var negatives: [Int32] = []
  @usableFromInline var negativeScores: [Scalar] = []
  @usableFromInline var candidates: [SIMD3<Int32>] = []

  /// PML's defaults: margin 0.2 and type `.all`, on Euclidean distances; with `maxTuples`, a
  /// sample drawn with `seed`.
  public init(
    margin: Scalar = 0.2, type: TripletType = .all, distance: Distance = .euclidean,
    maxTuples: Int? = nil, seed: UInt64 = 0
  ) {
    self.margin = margin
    self.type = type
    self.distance = distance
    reservoir = Reservoir(capacity: maxTuples, seed: seed)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { visit(&reservoir.rng) }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    // The window's test is chosen once, outside the loops: the loops are inlined into each case,
    // where the closure folds to its comparisons (an indirect call per triplet was slower than
    // the plain loop).
    let m = margin
    switch type {
    case .all: mine(scores: scores, labels: labels, into: &tuples) { TripletType.all.keepCount($0, margin: m) }
    case .hard: mine(scores: scores, labels: labels, into: &tuples) { TripletType.hard.keepCount($0, margin: m) }
    case .semihard: mine(scores: scores, labels: labels, into: &tuples) { TripletType.semihard.keepCount($0, margin: m) }
    case .easy: mine(scores: scores, labels: labels, into: &tuples) { TripletType.easy.keepCount($0, margin: m) }
    }
  }

  /// Every triplet whose `t` has a `keepCount` of 1, in the order anchor, positive, negative.
  /// Per anchor, the negatives' indices and scores are gathered once into contiguous buffers; per
  /// positive, the window tests of 64 negatives at a time become the bits of a word, and only the
  /// set bits are visited (about 5% of the candidates in a semi-hard batch). The kept triplets
  /// then go to the tuples in order, or through the reservoir when `maxTuples` is set.
  @inlinable @inline(__always)
  mutating func mine(
    scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples, keepCount: (Scalar) -> Int
  ) {
    let n = scores.rows, columns = scores.columns
    precondition(labels.count == columns, "TripletMarginMiner: \(labels.count) labels for \(columns) score columns")
    tuples.removeAll(pairs: false)
    reservoir.reset()
    if negatives.count < columns {
      negatives = [Int32](repeating: 0, count: columns)
      negativeScores = [Scalar](repeating: 0, count: columns)
      candidates = [SIMD3<Int32>](repeating: .zero, count: columns)
    }
    let sign = Scalar(distance.closeness)
    let sampled = reservoir.capacity != nil
    scores.withUnsafeBufferPointer { s in
      labels.withUnsafeBufferPointer { label in
        negatives.withUnsafeMutableBufferPointer { negativeIndices in
          negativeScores.withUnsafeMutableBufferPointer { negativeValues in
            candidates.withUnsafeMutableBufferPointer { kept in
              let (index, value, out) = (negativeIndices.baseAddress!, negativeValues.baseAddress!, kept.baseAddress!)
              for a in 0..<n {
                let row = s.baseAddress! + a * columns, own = label[a]
                var count = 0
                for q in 0..<columns where label[q] != own {
                  index[count] = Int32(q)
                  value[count] = sign * row[q]
                  count += 1
                }
                for p in 0..<columns where p != a && label[p] == own {
                  let ap = sign * row[p]
                  // The tests of 64 negatives at a time go into the bits of one word (t =
                  // sign·(s_ap − s_an), exactly; no branch), then only the kept ones are
                  // visited, in index order.
                  var k = 0, base = 0
                  while base < count {
                    let end = Swift.min(count, base + 64)
                    var bits: UInt64 = 0
                    for j in base..<end {
                      bits |= UInt64(truncatingIfNeeded: keepCount(ap - value[j])) &<< UInt64(j - base)
                    }
                    while bits != 0 {
                      out[k] = SIMD3(Int32(a), Int32(p), index[base + bits.trailingZeroBitCount])
                      k += 1
                      bits &= bits &- 1
                    }
                    base = end
                  }
                  if sampled {
                    for j in 0..<k { reservoir.offer(out[j], to: &tuples.triplets) }
                  } else {
                    tuples.triplets.append(contentsOf: UnsafeBufferPointer(start: out, count: k))
                  }
                }
              }
            }
          }
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// PML's `BatchHardMiner` (Hermans et al. 2017): for each anchor with a positive and a negative,
/// the farthest positive and the nearest negative. The first one wins a tie.
public struct BatchHardMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }

  /// A miner on `distance` (default Euclidean).
  public init(distance: Distance = .euclidean) { self.distance = distance }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: false)
    let sign = Scalar(distance.closeness)  // closeness c = sign·s: hardest positive has least c
    scores.withUnsafeBufferPointer { s in
      labels.withUnsafeBufferPointer { label in
        for a in 0..<n {
          var hardestPositive = -1, hardestNegative = -1
          var pc = Scalar.infinity, nc = -Scalar.infinity
          let row = s.baseAddress! + a * m, own = label[a]
          for j in 0..<m where j != a {
            let c = sign * row[j]
            if label[j] == own {
              if c < pc { pc = c; hardestPositive = j }
            } else if c > nc {
              nc = c
              hardestNegative = j
            }
          }
          if hardestPositive >= 0 && hardestNegative >= 0 {
            tuples.triplets.append(SIMD3(Int32(a), Int32(hardestPositive), Int32(hardestNegative)))
          }
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// FaceNet's own semi-hard rule (Schroff et al. 2015, as TensorFlow's `triplet_semihard_loss`
/// implements it), on squared Euclidean distances: for *each* anchor–positive pair, the nearest
/// negative farther than the positive; if there is none, the farthest negative.
///
/// It differs from PML's `TripletMarginMiner(type: .semihard)` in three ways: one triplet per
/// anchor–positive pair instead of every qualifying triplet; no upper bound at the margin (the
/// loss's hinge decides); and a fallback, so it never runs dry while a batch has positives and
/// negatives.
public struct FaceNetSemiHardMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }

  /// A miner on `distance` (default squared Euclidean, as FaceNet).
  public init(distance: Distance = .squaredEuclidean) { self.distance = distance }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: false)
    let sign = Scalar(-distance.closeness)  // work in "distance" direction: larger is farther
    scores.withUnsafeBufferPointer { s in
      for a in 0..<n {
        for p in 0..<m where p != a && labels[p] == labels[a] {
          let ap = sign * s[a * m + p]
          var outside = -1, inside = -1
          var outsideValue = Scalar.infinity, insideValue = -Scalar.infinity
          for q in 0..<m where labels[q] != labels[a] {
            let an = sign * s[a * m + q]
            if an > ap {
              if an < outsideValue { outsideValue = an; outside = q }
            } else if an > insideValue {
              insideValue = an
              inside = q
            }
          }
          let chosen = outside >= 0 ? outside : inside
          if chosen >= 0 { tuples.triplets.append(SIMD3(Int32(a), Int32(p), Int32(chosen))) }
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// Distance-weighted sampling (Wu, Manmatha, Smola and Krähenbühl 2017), PML's
/// `DistanceWeightedMiner`: for every anchor–positive pair, one negative drawn with probability
/// proportional to `1 / q(d)`, the inverse density of distances between points on the unit
/// sphere of dimension `k`:
/// `log q(d) = (2 − k) log d − ((k − 3)/2) log(1 − d²/4)`, with `d` clipped below at `cutoff` and
/// negatives beyond `nonzeroLossCutoff` never drawn. Needs Euclidean distances between normalised
/// embeddings. Seeded.
public struct DistanceWeightedMiner<Scalar: DMLScalar>: TupleSampler {
  /// Distances are clipped below at this value.
  public var cutoff: Scalar
  /// Negatives farther than this are never drawn.
  public var nonzeroLossCutoff: Scalar
  /// The embedding dimension `k`.
  public var dimension: Int
  public var distance: Distance { .euclidean }
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  /// The generator for the draws.
  public var rng: RandomSource
  @usableFromInline var weights: [Double] = []

  /// PML's defaults: `cutoff` 0.5 and `nonzero_loss_cutoff` 1.4; `dimension` (above 3) is the
  /// embedding size, `seed` that of the draws.
  public init(dimension: Int, cutoff: Scalar = 0.5, nonzeroLossCutoff: Scalar = 1.4, seed: UInt64 = 0) {
    precondition(dimension > 3, "DistanceWeightedMiner needs an embedding dimension above 3")
    self.dimension = dimension
    self.cutoff = cutoff
    self.nonzeroLossCutoff = nonzeroLossCutoff
    rng = RandomSource(seed: seed)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { visit(&rng) }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: false)
    if weights.count < m { weights = [Double](repeating: 0, count: m) }
    let k = Double(dimension)
    for a in 0..<n {
      // Log-weights −log q(d) for negatives, normalised by their maximum for stability.
      var largest = -Double.infinity
      for q in 0..<m {
        weights[q] = -.infinity
        guard labels[q] != labels[a] else { continue }
        let d = Double(Swift.max(scores[a, q], cutoff))
        guard d < Double(nonzeroLossCutoff) else { continue }
        let logQ = (2 - k) * Double.log(d) - (k - 3) / 2 * Double.log(Swift.max(1 - d * d / 4, 1e-12))
        weights[q] = -logQ
        largest = Swift.max(largest, -logQ)
      }
      guard largest > -.infinity else { continue }
      var total = 0.0
      for q in 0..<m where weights[q] > -.infinity {
        weights[q] = Double.exp(weights[q] - largest)
        total += weights[q]
      }
      for q in 0..<m where weights[q] == -.infinity { weights[q] = 0 }
      for p in 0..<m where p != a && labels[p] == labels[a] {
        var u = rng.uniform(Double.self) * total
        var chosen = -1
        for q in 0..<m where weights[q] > 0 {
          chosen = q
          u -= weights[q]
          if u < 0 { break }
        }
        if chosen >= 0 { tuples.triplets.append(SIMD3(Int32(a), Int32(p), Int32(chosen))) }
      }
    }
    statistics.record(tuples.count)
  }
}
