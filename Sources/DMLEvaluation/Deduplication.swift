/// Near-duplicate groups: items linked when their score passes `threshold` (distance at most, or
/// similarity at least), grouped by connected components (union–find).
///
/// The scores are computed in blocks of `block × block`, so memory stays `O(block²)` however many
/// items there are; no `N × N` matrix is built.
@inlinable
public func nearDuplicateGroups<T: DMLScalar>(
  _ embeddings: Matrix<T>, threshold: Double, distance: Distance = .cosine, block: Int = 2048
) throws -> [[Int]] {
  guard embeddings.isFinite else { throw EvaluationError("embeddings contain NaN or infinite values") }
  guard threshold.isFinite else { throw EvaluationError("threshold \(threshold) is not finite") }
  let n = embeddings.rows
  var parent = Array(0..<n)
  func find(_ i: Int) -> Int {
    var i = i
    while parent[i] != i {
      parent[i] = parent[parent[i]]
      i = parent[i]
    }
    return i
  }
  var w = DistanceWorkspace<T>()
  var s = Matrix<T>(), a = Matrix<T>(), b = Matrix<T>()
  let t = T(threshold)
  var i0 = 0
  while i0 < n {
    let i1 = Swift.min(n, i0 + block)
    copyRows(embeddings, i0..<i1, into: &a)
    var j0 = i0
    while j0 < n {
      let j1 = Swift.min(n, j0 + block)
      copyRows(embeddings, j0..<j1, into: &b)
      distance.scores(a, b, into: &s, workspace: &w)
      for i in 0..<(i1 - i0) {
        for j in 0..<(j1 - j0) where i0 + i < j0 + j {
          let v = s[i, j]
          if distance.isSimilarity ? v >= t : v <= t {
            let (ra, rb) = (find(i0 + i), find(j0 + j))
            if ra != rb { parent[Swift.max(ra, rb)] = Swift.min(ra, rb) }
          }
        }
      }
      j0 = j1
    }
    i0 = i1
  }
  var groups: [Int: [Int]] = [:]
  for i in 0..<n { groups[find(i), default: []].append(i) }
  return groups.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
}
