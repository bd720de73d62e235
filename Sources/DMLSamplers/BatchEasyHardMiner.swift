/// How `BatchEasyHardMiner` picks an anchor's positive or negative.
public enum EasyHardStrategy: String, Sendable, CaseIterable {
  /// The hardest: the farthest positive, the nearest negative.
  case hard
  /// The hardest that still respects the other side: the farthest positive nearer than the chosen
  /// negative, or the nearest negative farther than the chosen positive.
  case semihard
  /// The easiest: the nearest positive, the farthest negative.
  case easy
  /// Every pair of that side.
  case all
}

/// PML's `BatchEasyHardMiner` (Xuan et al. 2020, "Improved embeddings with easy positive triplet
/// mining"): per anchor, one positive and one negative chosen by a strategy each, or every pair
/// of a side with `.all`.
///
/// - Defaults: easy positives, semi-hard negatives, as PML. Both semi-hard, or semi-hard beside
///   `.all`, is refused (PML raises the same).
/// - Optional ranges (in the distance's own units) keep only pairs whose score lies inside.
/// - Ties go to the lowest column, as `torch.max` and `torch.min` do.
/// - Output: pairs. Without `.all`, the anchors with both a positive and a negative, each once in
///   both lists (PML's `(a, p, a, n)`); with `.all` on one side, that side's every pair beside the
///   other side's chosen ones.
/// - Accepts a cross-batch memory.
public struct BatchEasyHardMiner<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance
  public var statistics = MiningStatistics()
  public var acceptsMemory: Bool { true }
  /// How positives are picked.
  public let positiveStrategy: EasyHardStrategy
  /// How negatives are picked.
  public let negativeStrategy: EasyHardStrategy
  /// Scores a positive may have (`nil`: any).
  public var allowedPositiveRange: ClosedRange<Double>?
  /// Scores a negative may have (`nil`: any).
  public var allowedNegativeRange: ClosedRange<Double>?
  @usableFromInline var chosenPositive: [Int] = []
  @usableFromInline var chosenNegative: [Int] = []
  @usableFromInline var positiveValue: [Scalar] = []
  @usableFromInline var negativeValue: [Scalar] = []

  /// A miner with `positive` and `negative` strategies (easy and semi-hard by default) on
  /// `distance` (Euclidean between normalised rows by default).
  public init(
    positive: EasyHardStrategy = .easy, negative: EasyHardStrategy = .semihard, allowedPositiveRange: ClosedRange<Double>? = nil,
    allowedNegativeRange: ClosedRange<Double>? = nil, distance: Distance = .euclidean
  ) {
    precondition(Self.isValid(positive: positive, negative: negative), Self.refusal(positive: positive, negative: negative) ?? "")
    self.positiveStrategy = positive
    self.negativeStrategy = negative
    self.allowedPositiveRange = allowedPositiveRange
    self.allowedNegativeRange = allowedNegativeRange
    self.distance = distance
  }

  /// Why PML refuses this pair of strategies, or `nil` when it takes them.
  public static func refusal(positive: EasyHardStrategy, negative: EasyHardStrategy) -> String? {
    if positive == .semihard && negative == .semihard { return "positive and negative cannot both be semihard" }
    if (positive == .all && negative == .semihard) || (negative == .all && positive == .semihard) {
      return "semihard cannot be used in combination with all"
    }
    return nil
  }

  /// Whether PML takes this pair of strategies.
  public static func isValid(positive: EasyHardStrategy, negative: EasyHardStrategy) -> Bool {
    refusal(positive: positive, negative: negative) == nil
  }

  /// For each row, the column of the given `kind` that `farthest` (or nearest) picks in the
  /// distance's direction, among those inside `range` and beyond (or within) `threshold[a]`
  /// strictly; -1 when none. `far(c)` is the column's value in the distance's direction.
  @inlinable
  static func pick(
    _ s: UnsafeBufferPointer<Scalar>, rows n: Int, columns m: Int, positives: Bool, farthest: Bool,
    sign: Scalar, range: ClosedRange<Double>?, threshold: [Scalar]?, thresholdAbove: Bool, classes: ClassMembers,
    into chosen: inout [Int], values: inout [Scalar]
  ) {
    chosen.removeAll(keepingCapacity: true)
    values.removeAll(keepingCapacity: true)
    // The column a row keeps, as in a loop over its columns in order that keeps a strictly better
    // one: the first column of the best value. Positives run over the row's class only; negatives
    // over the whole row, in lanes: each column's value to maximise (the distance, or its negation
    // for the nearest), −∞ where the column does not qualify (its own class, outside the range, not
    // beyond the threshold, or no better than none), then the largest and its first column.
    withUnsafeTemporaryAllocation(of: Scalar.self, capacity: Swift.max(m, 1)) { scratch in
      let u = scratch.baseAddress!
      for a in 0..<n {
        let row = s.baseAddress! + a * m, own = classes.members[classes.group[a]]
        let limit = threshold?[a]
        @inline(__always) func qualifies(_ raw: Scalar, _ d: Scalar) -> Bool {
          if let range, !range.contains(Double(raw)) { return false }
          // Semi-hard: strictly beyond (or within) the other side's chosen value.
          if let limit { return thresholdAbove ? d > limit : d < limit }
          return true
        }
        var best = -1
        var bestValue: Scalar = farthest ? -.infinity : .infinity
        if positives {
          for j in own where j != a && j < m {
            let d = sign * row[j]  // larger is farther
            if qualifies(row[j], d) && (farthest ? d > bestValue : d < bestValue) {
              bestValue = d
              best = j
            }
          }
        } else {
          let direction: Scalar = farthest ? 1 : -1
          if range == nil, let limit {
            for j in 0..<m {
              let d = sign * row[j]
              u[j] = (thresholdAbove ? d > limit : d < limit) ? direction * d : -.infinity
            }
          } else if range == nil {
            for j in 0..<m { u[j] = direction * (sign * row[j]) }
          } else {
            for j in 0..<m {
              let d = sign * row[j]
              u[j] = qualifies(row[j], d) ? direction * d : -.infinity
            }
          }
          for j in own where j < m { u[j] = -.infinity }
          if a < m { u[a] = -.infinity }
          let largest = Scalar.maximum(u, count: m)
          if largest > -.infinity {
            // Its first column: whole vectors skipped while no lane holds it, then lane by lane.
            typealias Lanes = Scalar.Lanes
            let target = Lanes(repeating: largest), one = Lanes(repeating: 1), zero = Lanes(repeating: 0)
            var j = 0
            while j + Lanes.width <= m && zero.replacing(with: one, where: Lanes.equal(Lanes(loading: u + j), target)).sum() == 0 {
              j &+= Lanes.width
            }
            while !(u[j] == largest) { j &+= 1 }
            best = j
            bestValue = direction * largest
          }
        }
        chosen.append(best)
        values.append(bestValue)
      }
    }
  }

  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    tuples.removeAll(pairs: true)
    let sign = Scalar(-distance.closeness)  // distance direction: larger is farther
    let (pos, neg) = (positiveStrategy, negativeStrategy)
    let classes = ClassMembers(labels)
    scores.withUnsafeBufferPointer { s in
      // Positives: hard and semi-hard take the farthest, easy the nearest; negatives: hard and
      // semi-hard the nearest, easy the farthest. A semi-hard side is chosen after the other.
      func positives(threshold: [Scalar]?) {
        Self.pick(
          s, rows: n, columns: m, positives: true, farthest: pos != .easy, sign: sign, range: allowedPositiveRange,
          threshold: threshold, thresholdAbove: false, classes: classes, into: &chosenPositive, values: &positiveValue)
      }
      func negatives(threshold: [Scalar]?) {
        Self.pick(
          s, rows: n, columns: m, positives: false, farthest: neg == .easy, sign: sign, range: allowedNegativeRange,
          threshold: threshold, thresholdAbove: true, classes: classes, into: &chosenNegative, values: &negativeValue)
      }
      if pos == .semihard {
        negatives(threshold: nil)
        positives(threshold: negativeValue)
      } else if neg == .semihard {
        positives(threshold: nil)
        negatives(threshold: positiveValue)
      } else {
        if pos != .all { positives(threshold: nil) }
        if neg != .all { negatives(threshold: nil) }
      }
      // The pairs of an `.all` side: every pair of the batch, in row-major order.
      func everyPair(positive: Bool, into list: inout [SIMD2<Int32>]) {
        for a in 0..<n {
          for j in 0..<m where j != a && (labels[j] == labels[a]) == positive { list.append(SIMD2(Int32(a), Int32(j))) }
        }
      }
      switch (pos == .all, neg == .all) {
      case (false, false):
        for a in 0..<n where chosenPositive[a] >= 0 && chosenNegative[a] >= 0 {
          tuples.positivePairs.append(SIMD2(Int32(a), Int32(chosenPositive[a])))
          tuples.negativePairs.append(SIMD2(Int32(a), Int32(chosenNegative[a])))
        }
      case (true, false):
        everyPair(positive: true, into: &tuples.positivePairs)
        for a in 0..<n where chosenNegative[a] >= 0 { tuples.negativePairs.append(SIMD2(Int32(a), Int32(chosenNegative[a]))) }
      case (false, true):
        for a in 0..<n where chosenPositive[a] >= 0 { tuples.positivePairs.append(SIMD2(Int32(a), Int32(chosenPositive[a]))) }
        everyPair(positive: false, into: &tuples.negativePairs)
      case (true, true):
        everyPair(positive: true, into: &tuples.positivePairs)
        everyPair(positive: false, into: &tuples.negativePairs)
      }
    }
    statistics.record(tuples.count)
  }
}

/// The columns of each label, in order, and each column's group: built once per mining pass.
@usableFromInline
struct ClassMembers {
  /// The columns of each distinct label, ascending.
  @usableFromInline var members: [[Int]] = []
  /// For each column, the index of its label's list in `members`.
  @usableFromInline var group: [Int]

  @inlinable
  init(_ labels: [Int]) {
    var index: [Int: Int] = [:]
    group = [Int](repeating: 0, count: labels.count)
    for (j, label) in labels.enumerated() {
      if let g = index[label] {
        members[g].append(j)
        group[j] = g
      } else {
        index[label] = members.count
        group[j] = members.count
        members.append([j])
      }
    }
  }
}
