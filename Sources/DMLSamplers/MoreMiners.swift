/// PML's `EmbeddingsAlreadyPackagedAsTriplets`: the batch is laid out as triplets, rows
/// `3i, 3i + 1, 3i + 2` being anchor, positive and negative; labels are not read.
///
/// - A batch whose size is not a multiple of 3 uses its whole triplets only (PML's index ranges
///   would not line up there).
/// - No cross-batch memory: the triplets are the batch's own rows.
public struct PackagedTripletsMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()

  /// A miner of the batch's packaged triplets; `distance` is the loss's (it reads no score).
  public init(distance: Distance = .euclidean) { self.distance = distance }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    tuples.removeAll(pairs: false)
    for i in 0..<(scores.rows / 3) {
      tuples.triplets.append(SIMD3(Int32(3 * i), Int32(3 * i + 1), Int32(3 * i + 2)))
    }
    statistics.record(tuples.count)
  }
}

/// PML's `AngularMiner` (after Wang et al. 2017): every triplet whose angle at the negative,
/// `atan(‖a − p‖ / (2‖n − c‖))` with `c` the middle of `a` and `p`, exceeds `angle`.
///
/// - Distance: Euclidean between L2-normalised rows, from which the angle is computed:
///   `‖n − c‖² = (d_an² + d_pn²)/2 − d_ap²/4`. PML computes it from the rows as given (it checks
///   that its distance normalises, but measures the raw rows, with `pairwise_distance`'s 10⁻⁶);
///   on unit-length rows the two agree.
/// - Default angle 20°. Output: triplets, anchors in order, then positives, then negatives.
/// - No cross-batch memory: `d_pn` needs the positive to be a row of the batch.
public struct AngularMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance { .euclidean }
  public var statistics = MiningStatistics()
  /// The threshold angle, in degrees.
  public var angleDegrees: Double

  /// A miner of the triplets wider than `angleDegrees` (20 by default).
  public init(angleDegrees: Double = 20) { self.angleDegrees = angleDegrees }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    precondition(m == n, "AngularMiner reads the batch against itself (no cross-batch memory)")
    tuples.removeAll(pairs: false)
    let threshold = Scalar(angleDegrees * Double.pi / 180)
    scores.withUnsafeBufferPointer { d in
      for a in 0..<n {
        for p in 0..<n where p != a && labels[p] == labels[a] {
          let ap = d[a * m + p]
          for q in 0..<n where labels[q] != labels[a] {
            let an = d[a * m + q], pn = d[p * m + q]
            let centre = Swift.max((an * an + pn * pn) / 2 - ap * ap / 4, 0).squareRoot()
            if Scalar.atan(ap / (2 * centre)) > threshold {
              tuples.triplets.append(SIMD3(Int32(a), Int32(p), Int32(q)))
            }
          }
        }
      }
    }
    statistics.record(tuples.count)
  }
}

/// PML's `HDCMiner` (Yuan et al. 2017, hard-aware deeply cascaded embedding): the hardest
/// `filterPercentage` of the positive pairs (the farthest) and of the negative pairs (the
/// nearest).
///
/// - Default filter percentage 0.5 and Euclidean distance between normalised rows, as PML; each
///   list keeps `⌈percentage · count⌉` pairs, hardest first (PML's `torch.topk` order).
/// - Accepts a cross-batch memory.
public struct HDCMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  /// The fraction of each list kept.
  public var filterPercentage: Double
  @usableFromInline var scratch: [Scalar] = []

  /// A miner keeping the hardest `filterPercentage` (0.5) of each list, on `distance`.
  public init(filterPercentage: Double = 0.5, distance: Distance = .euclidean) {
    precondition(filterPercentage > 0 && filterPercentage <= 1, "HDCMiner: filterPercentage must lie in (0, 1]")
    self.filterPercentage = filterPercentage
    self.distance = distance
  }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: true)
    let sign = Scalar(-distance.closeness)  // larger is farther
    // Each list is read twice from the scores, in row-major order: once for its values (the
    // selection's input), once to keep the pairs below the selected value and the first pairs
    // equal to it (a stable sort's choice among ties). Both passes write every pair and advance
    // only past the wanted ones: whether a pair is wanted is as good as random, and a mispredicted
    // branch costs more than the write.
    let total = n * m
    for positive in [true, false] {
      let flip = positive ? -sign : sign  // hardness, smaller first: far positives, near negatives
      if scratch.count < total { scratch.append(contentsOf: repeatElement(0, count: total - scratch.count)) }
      let count = scores.withUnsafeBufferPointer { s in
        labels.withUnsafeBufferPointer { y in
          scratch.withUnsafeMutableBufferPointer { v in
            var c = 0
            for a in 0..<n {
              for j in 0..<m {
                v[c] = flip * s[a * m + j] + 0  // + 0: −0 as +0, so the radix keys order zeros as equal
                c += j != a && (y[j] == y[a]) == positive ? 1 : 0
              }
            }
            return c
          }
        }
      }
      scratch.removeLast(scratch.count - count)
      let keep = Int((filterPercentage * Double(count)).rounded(.up))
      guard keep > 0 else { continue }
      let (threshold, below) = keep >= count ? (Scalar.infinity, 0) : Self.selectCountingBelow(&scratch, rank: keep - 1)
      var ties = keep - below
      var chosen = [SIMD2<Int32>](repeating: .zero, count: keep + 1)
      let kept = scores.withUnsafeBufferPointer { s in
        labels.withUnsafeBufferPointer { y in
          chosen.withUnsafeMutableBufferPointer { out in
            var c = 0
            for a in 0..<n {
              for j in 0..<m {
                let v = flip * s[a * m + j]
                let wanted = j != a && (y[j] == y[a]) == positive
                out[c] = SIMD2(Int32(a), Int32(j))
                if v == threshold {
                  guard wanted && ties > 0 else { continue }
                  ties -= 1
                  c += 1
                } else {
                  c += wanted && v < threshold ? 1 : 0
                }
              }
            }
            return c
          }
        }
      }
      chosen.removeLast(chosen.count - kept)
      if positive { tuples.positivePairs.append(contentsOf: chosen) } else { tuples.negativePairs.append(contentsOf: chosen) }
    }
    statistics.record(tuples.count)
  }

  /// The value of rank `rank` (0-based) of `values` in increasing order. Radix passes on the
  /// values' order-preserving bit patterns (16 bits at a time) narrow them to one bucket in
  /// linear, branch-light passes; a quickselect with a three-way partition finishes a small
  /// bucket. `values` is reordered, and may be shortened.
  @inlinable
  public static func select(_ values: inout [Scalar], rank: Int) -> Scalar {
    selectCountingBelow(&values, rank: rank).value
  }

  /// `select`, and how many of the values are strictly below the one it returns.
  @inlinable
  public static func selectCountingBelow(_ values: inout [Scalar], rank: Int) -> (value: Scalar, below: Int) {
    precondition(rank >= 0 && rank < values.count, "HDCMiner.select: rank \(rank) of \(values.count) values")
    // An unsigned key in the order of the values: the sign bit set for positives, every bit
    // flipped for negatives; a Float's own 32 bits at the top (so its first pass sees 7 bits of
    // mantissa, not the 4 of its Double), a Double's 64.
    @inline(__always) func key(_ x: Scalar) -> UInt64 {
      if Scalar.self == Float.self {
        let b = unsafeBitCast(x, to: UInt32.self)
        return UInt64(b >> 31 == 1 ? ~b : b | (1 << 31)) << 32
      }
      let b = Double(x).bitPattern
      return b >> 63 == 1 ? ~b : b | (1 << 63)
    }
    var rank = rank, below = 0
    var histogram = [Int](repeating: 0, count: 1 << 16)
    var shift: UInt64 = 48
    while values.count > 4096 {
      for k in histogram.indices { histogram[k] = 0 }
      values.withUnsafeBufferPointer { v in
        histogram.withUnsafeMutableBufferPointer { h in
          for x in v { h[Int((key(x) >> shift) & 0xFFFF)] += 1 }
        }
      }
      var bucket = 0
      while rank >= histogram[bucket] {
        rank -= histogram[bucket]
        below += histogram[bucket]
        bucket += 1
      }
      if histogram[bucket] == values.count {
        // Every value in one bucket: look at the next 16 bits, or, past the last, they are equal.
        guard shift > 0 else { return (values[0], below) }
        shift -= 16
        continue
      }
      // The bucket's values moved to the front, in place (the array keeps its storage).
      let wanted = UInt64(bucket)
      let kept = values.withUnsafeMutableBufferPointer { v in
        var c = 0
        for k in 0..<v.count {
          let x = v[k]
          v[c] = x
          c += (key(x) >> shift) & 0xFFFF == wanted ? 1 : 0
        }
        return c
      }
      values.removeLast(values.count - kept)
      guard shift > 0 else { return (values[0], below) }
      shift -= 16
    }
    return values.withUnsafeMutableBufferPointer { v in
      // Invariant: v[0..<low] are below every value of v[low...high].
      var (low, high) = (0, v.count - 1)
      while low < high {
        let (a, b, c) = (v[low], v[low + (high - low) / 2], v[high])
        let pivot = Swift.max(Swift.min(a, b), Swift.min(Swift.max(a, b), c))
        // v[low..<lt] < pivot, v[lt..<i] == pivot, v[gt+1...high] > pivot.
        var (lt, i, gt) = (low, low, high)
        while i <= gt {
          if v[i] < pivot {
            v.swapAt(i, lt)
            lt += 1
            i += 1
          } else if v[i] > pivot {
            v.swapAt(i, gt)
            gt -= 1
          } else {
            i += 1
          }
        }
        if rank < lt {
          high = lt - 1
        } else if rank > gt {
          low = gt + 1
        } else {
          return (pivot, below + lt)
        }
      }
      return (v[low], below + low)
    }
  }
}

/// PML's `UniformHistogramMiner`: positive and negative pairs spread evenly over their score
/// range. Each list's scores are cut into `bins` equal bins between its least and greatest score
/// (the last bin closed), and every non-empty bin gives `perBin` pairs drawn with replacement.
///
/// - Defaults: 100 bins, 10 positive and 10 negative pairs per bin, Euclidean distance between
///   normalised rows, as PML.
/// - The draws come from the miner's own seeded generator (checkpoints hold it), so a run is
///   reproducible; they cannot be PML's (`torch.multinomial`).
/// - Accepts a cross-batch memory.
public struct UniformHistogramMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  /// Bins over each list's score range.
  public var bins: Int
  /// Positive pairs drawn per non-empty bin.
  public var positivesPerBin: Int
  /// Negative pairs drawn per non-empty bin.
  public var negativesPerBin: Int
  /// The generator of the draws.
  public var rng: RandomSource
  @usableFromInline var members: [[SIMD2<Int32>]] = []

  /// A miner of `bins` bins (100), `positivesPerBin` and `negativesPerBin` draws (10 each), on
  /// `distance`, seeded with `seed`.
  public init(
    bins: Int = 100, positivesPerBin: Int = 10, negativesPerBin: Int = 10, distance: Distance = .euclidean, seed: UInt64 = 0
  ) {
    precondition(bins >= 1 && positivesPerBin >= 1 && negativesPerBin >= 1, "UniformHistogramMiner: counts must be at least 1")
    self.bins = bins
    self.positivesPerBin = positivesPerBin
    self.negativesPerBin = negativesPerBin
    self.distance = distance
    rng = RandomSource(seed: seed)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { visit(&rng) }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: true)
    for positive in [true, false] {
      // The list's range, then each pair's bin (PML's `linspace` edges, the last bin closed).
      var low = Scalar.infinity, high = -Scalar.infinity
      scores.withUnsafeBufferPointer { s in
        for a in 0..<n {
          for j in 0..<m where j != a && (labels[j] == labels[a]) == positive {
            low = Swift.min(low, s[a * m + j])
            high = Swift.max(high, s[a * m + j])
          }
        }
      }
      guard low <= high else { continue }
      if members.count < bins { members = Array(repeating: [], count: bins) }
      for b in 0..<bins { members[b].removeAll(keepingCapacity: true) }
      let width = (high - low) / Scalar(bins)
      scores.withUnsafeBufferPointer { s in
        for a in 0..<n {
          for j in 0..<m where j != a && (labels[j] == labels[a]) == positive {
            let v = s[a * m + j]
            // Clamped before the conversion, so a non-finite score cannot trap.
            let position = width > 0 ? ((v - low) / width).rounded(.down) : 0
            let b = position.isNaN ? 0 : Int(Swift.min(Swift.max(position, 0), Scalar(bins - 1)))
            members[b].append(SIMD2(Int32(a), Int32(j)))
          }
        }
      }
      let draws = positive ? positivesPerBin : negativesPerBin
      for b in 0..<bins where !members[b].isEmpty {
        for _ in 0..<draws {
          let pair = members[b][rng.index(below: members[b].count)]
          if positive { tuples.positivePairs.append(pair) } else { tuples.negativePairs.append(pair) }
        }
      }
    }
    statistics.record(tuples.count)
  }
}
