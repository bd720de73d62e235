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

  @inlinable
  func keeps<T: DMLScalar>(_ t: T, margin: T) -> Bool {
    switch self {
    case .all: return t <= margin
    case .hard: return t <= 0
    case .semihard: return t > 0 && t <= margin
    case .easy: return t > margin
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
    let n = scores.rows, columns = scores.columns
    tuples.removeAll(pairs: false)
    reservoir.reset()
    let sign = Scalar(distance.closeness)  // t = sign·(s_ap − s_an)
    let (m, type) = (margin, type)
    scores.withUnsafeBufferPointer { s in
      for a in 0..<n {
        for p in 0..<columns where p != a && labels[p] == labels[a] {
          let ap = s[a * columns + p]
          for q in 0..<columns where labels[q] != labels[a] {
            if type.keeps(sign * (ap - s[a * columns + q]), margin: m) {
              reservoir.offer(SIMD3(Int32(a), Int32(p), Int32(q)), to: &tuples.triplets)
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
