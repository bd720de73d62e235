/// Pairs or triplets picked from a batch by a `TupleSampler` (miner): indices of rows.
///
/// A loss given `nil` instead of tuples uses every valid pair or triplet of the batch, as PML does.
public struct Tuples: Sendable, Equatable {
  /// Anchor–positive pairs `(a, p)`: same label, `a ≠ p`.
  public var positivePairs: [SIMD2<Int32>]
  /// Anchor–negative pairs `(a, n)`: different labels.
  public var negativePairs: [SIMD2<Int32>]
  /// Triplets `(a, p, n)`.
  public var triplets: [SIMD3<Int32>]
  /// Whether the sampler produced pairs (`true`) or triplets.
  public var arePairs: Bool

  /// Pair tuples.
  public static func pairs(positive: [SIMD2<Int32>], negative: [SIMD2<Int32>]) -> Tuples {
    Tuples(positivePairs: positive, negativePairs: negative, triplets: [], arePairs: true)
  }

  /// Triplet tuples.
  public static func triplets(_ triplets: [SIMD3<Int32>]) -> Tuples {
    Tuples(positivePairs: [], negativePairs: [], triplets: triplets, arePairs: false)
  }

  /// No tuple at all: every loss is then exactly 0 with a zero gradient.
  public static let none = Tuples(positivePairs: [], negativePairs: [], triplets: [], arePairs: true)

  /// Whether nothing was mined.
  public var isEmpty: Bool { positivePairs.isEmpty && negativePairs.isEmpty && triplets.isEmpty }

  /// The pairs these tuples imply: the pairs themselves, or the distinct `(a, p)` and `(a, n)` of
  /// the triplets (PML's `convert_to_pairs`).
  public var asPairs: (positive: [SIMD2<Int32>], negative: [SIMD2<Int32>]) {
    if arePairs { return (positivePairs, negativePairs) }
    var pos = Set<SIMD2<Int32>>(), neg = Set<SIMD2<Int32>>()
    for t in triplets {
      pos.insert(SIMD2(t.x, t.y))
      neg.insert(SIMD2(t.x, t.z))
    }
    let order: (SIMD2<Int32>, SIMD2<Int32>) -> Bool = { $0.x != $1.x ? $0.x < $1.x : $0.y < $1.y }
    return (pos.sorted(by: order), neg.sorted(by: order))
  }

  /// The triplets these tuples imply: the triplets themselves, or every `(a, p, n)` joining a
  /// positive and a negative pair with the same anchor (PML's `convert_to_triplets`).
  public var asTriplets: [SIMD3<Int32>] {
    if !arePairs { return triplets }
    var negativesByAnchor: [Int32: [Int32]] = [:]
    for p in negativePairs { negativesByAnchor[p.x, default: []].append(p.y) }
    var result: [SIMD3<Int32>] = []
    for p in positivePairs {
      for n in negativesByAnchor[p.x] ?? [] { result.append(SIMD3(p.x, p.y, n)) }
    }
    return result
  }
}

extension Tuples {
  /// Calls `body(a, p, n)` for every triplet: those `tuples` imply (`asTriplets`), or, with no
  /// tuples, every valid one of `rows` anchors against the `labels.count` columns (a positive of
  /// the anchor's label other than itself, a negative of another label).
  @inlinable
  public static func forEachTriplet(rows n: Int, labels: [Int], tuples: Tuples?, _ body: (Int, Int, Int) -> Void) {
    if let tuples {
      for t in tuples.asTriplets { body(Int(t.x), Int(t.y), Int(t.z)) }
      return
    }
    let m = labels.count
    for a in 0..<n {
      for p in 0..<m where p != a && labels[p] == labels[a] {
        for q in 0..<m where labels[q] != labels[a] { body(a, p, q) }
      }
    }
  }
}
