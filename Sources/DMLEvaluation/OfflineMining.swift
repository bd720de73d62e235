/// Which negatives offline mining keeps.
public enum OfflineWindow: String, Sendable, CaseIterable {
  /// The nearest different-class items.
  case hard
  /// The nearest different-class items that are farther than the anchor's hardest mined positive
  /// (FaceNet's semi-hard negatives, Schroff et al. 2015), which leaves out the negatives that
  /// sit inside the anchor's own class, often label noise or outliers.
  case semihard
}

/// Each anchor's hardest partners over a whole set: its `k` farthest same-class items (hard
/// positives, farthest first) and its `k` nearest different-class items (hard negatives, nearest
/// first). Rows are `-1`-padded where a class has fewer members.
public struct HardNeighbors: Sendable, Equatable {
  /// Partners per anchor.
  public var k: Int
  /// `anchors × k` indices of hard positives, farthest first, `-1` padded.
  public var positives: [Int32]
  /// `anchors × k` indices of hard negatives, nearest first, `-1` padded.
  public var negatives: [Int32]

  /// Creates the result from `anchors × k` row-major, `-1`-padded positive and negative indices.
  public init(k: Int, positives: [Int32], negatives: [Int32]) {
    self.k = k
    self.positives = positives
    self.negatives = negatives
  }

  /// The hard positives of anchor `i`, without padding.
  public func positives(of i: Int) -> [Int32] { positives[(i * k)..<((i + 1) * k)].filter { $0 >= 0 } }
  /// The hard negatives of anchor `i`, without padding.
  public func negatives(of i: Int) -> [Int32] { negatives[(i * k)..<((i + 1) * k)].filter { $0 >= 0 } }
}

/// Offline hard mining: the hard positives and negatives of every item of `embeddings`, found
/// with the library's exact k-NN search over the full set.
///
/// The search streams in blocks (memory `O(block × 4096)`; no `N × N` matrix): hard negatives are
/// the nearest neighbours among other labels, searched over the whole set; hard positives are
/// the farthest neighbours within the label, searched over that label's items alone. Exact and
/// deterministic (ties go to the lower index).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func hardNeighbors<T: DMLScalar>(
  embeddings: Matrix<T>, labels: [Int], k: Int, distance: Distance, window: OfflineWindow = .hard,
  queryBlock: Int = 1024, referenceBlock: Int = 4096, compute: ComputeContext = .automatic
) throws -> HardNeighbors {
  let n = embeddings.rows
  guard labels.count == n else { throw EvaluationError("offline mining: \(n) embeddings but \(labels.count) labels") }
  guard k >= 1 else { throw EvaluationError("offline mining: k = \(k) must be at least 1") }
  guard Set(labels).count >= 2 else { throw EvaluationError("offline mining needs at least two labels") }
  var positives = [Int32](repeating: -1, count: n * k)
  // Distance to the farthest mined positive: the semi-hard window's lower bound for negatives.
  var farthestPositive = [T](repeating: distance.isSimilarity ? T.infinity : -T.infinity, count: n)
  var byLabel: [Int: [Int]] = [:]
  for (i, y) in labels.enumerated() { byLabel[y, default: []].append(i) }
  for y in byLabel.keys.sorted() {
    let members = byLabel[y]!
    guard members.count >= 2 else { continue }
    let subset = embeddings.rows(members)
    let found = try searchNeighbors(
      queries: subset, references: subset, k: Swift.min(k, members.count - 1), distance: distance, excludeSelf: true,
      queryBlock: queryBlock, referenceBlock: referenceBlock,
      filter: NeighborFilter(queryLabels: [Int](repeating: 0, count: members.count), referenceLabels: [Int](repeating: 0, count: members.count), sameLabel: true, farthest: true, fartherThan: nil),
      compute: compute)
    for (a, anchor) in members.enumerated() {
      for slot in 0..<found.k where found.indices[a * found.k + slot] >= 0 {
        positives[anchor * k + slot] = Int32(members[Int(found.indices[a * found.k + slot])])
      }
      if found.indices[a * found.k] >= 0 { farthestPositive[anchor] = found.scores[a, 0] }
    }
  }
  let found = try searchNeighbors(
    queries: embeddings, references: embeddings, k: k, distance: distance, excludeSelf: false,
    queryBlock: queryBlock, referenceBlock: referenceBlock,
    filter: NeighborFilter(
      queryLabels: labels, referenceLabels: labels, sameLabel: false, farthest: false,
      fartherThan: window == .semihard ? farthestPositive : nil),
    compute: compute)
  return HardNeighbors(k: k, positives: positives, negatives: found.indices)
}
