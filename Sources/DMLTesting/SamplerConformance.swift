/// The conformance suite every `TupleSampler` passes:
/// - every returned tuple is valid: `label(a) == label(p) ≠ label(n)`, `a ≠ p`, indices in range;
/// - the result does not depend on the order of the batch, nor on the names of the labels (for
///   deterministic samplers);
/// - one-sided batches (one label, or all labels distinct), a single row and an empty batch are
///   handled without a crash;
/// - mining the same batch twice gives the same tuples;
/// - the statistics count every batch, and the sampler reports no failure;
/// - a sampler that accepts a cross-batch memory mines valid tuples from a rectangular score
///   matrix: the batch's rows against the batch followed by a memory, with one label per column,
///   anchors among the rows and partners among the columns.
public enum SamplerConformance {
  /// Every failed check, described; empty when the sampler conforms.
  ///
  /// The checks run on a seeded batch of 16 rows of dimension 5 over 4 classes.
  ///
  /// - Parameters:
  ///   - sampler: the sampler, in Double.
  ///   - deterministic: whether to check that the tuples do not depend on the batch order or the
  ///     label names (for samplers without randomness).
  public static func failures<S: TupleSampler>(_ sampler: S, deterministic: Bool = true) -> [String]
  where S.Scalar == Double {
    checks(sampler, deterministic: deterministic).flatMap(\.failures)
  }

  /// The same checks as `failures`, one entry per check with its own failures (empty: passed).
  public static func checks<S: TupleSampler>(_ sampler: S, deterministic: Bool = true) -> [ConformanceCheck]
  where S.Scalar == Double {
    var checks: [ConformanceCheck] = []
    var failures: [String] = []
    var bookkeeping: [String] = []
    func close(_ name: String) {
      checks.append(ConformanceCheck(name: name, failures: failures))
      failures = []
    }
    let batch = LossConformance.Batch(rows: 16, dimension: 5, classes: 4, seed: 3)

    func mine(_ x: Matrix<Double>, _ y: [Int]) -> Tuples {
      var s = sampler
      var w = DistanceWorkspace<Double>()
      var scores = Matrix<Double>()
      s.distance.scores(x, x, sameSet: true, into: &scores, workspace: &w)
      var t = Tuples.none
      s.mine(scores: scores, labels: y, into: &t)
      if s.statistics.batches != 1 || s.statistics.lastCount != t.count {
        bookkeeping.append("statistics do not count the batch: \(s.statistics)")
      }
      if let f = s.failure { bookkeeping.append("the sampler failed: \(f)") }
      return t
    }

    func invalid(_ t: Tuples, _ y: [Int], rows: Int? = nil) -> String? { t.firstInvalid(rows: rows ?? y.count, labels: y) }

    let (x, y) = (batch.embeddings, batch.labels)
    let base = mine(x, y)
    if let e = invalid(base, y) { failures.append(e) }
    if base.count == 0 { failures.append("nothing mined on an ordinary batch") }
    close("valid tuples on an ordinary batch")
    if mine(x, y) != base { failures.append("two calls on the same batch mine different tuples") }
    close("deterministic")

    if deterministic {
      var rng = RandomSource(seed: 5)
      let perm = rng.permutation(y.count)
      var px = x
      for (to, from) in perm.enumerated() {
        for j in 0..<x.columns { px[to, j] = x[from, j] }
      }
      let relabel = [2, 0, 3, 1]  // a bijection of the 4 labels
      let permuted = mine(px, perm.map { relabel[y[$0]] })
      func back(_ i: Int32) -> Int32 { Int32(perm[Int(i)]) }
      let mappedPos = Set(permuted.positivePairs.map { SIMD2(back($0.x), back($0.y)) })
      let mappedNeg = Set(permuted.negativePairs.map { SIMD2(back($0.x), back($0.y)) })
      let mappedTriplets = Set(permuted.triplets.map { SIMD3(back($0.x), back($0.y), back($0.z)) })
      if mappedPos != Set(base.positivePairs) || mappedNeg != Set(base.negativePairs)
        || mappedTriplets != Set(base.triplets)
      {
        failures.append("the tuples depend on the batch order or the label names")
      }
    }
    close(deterministic ? "independent of the batch order and label names" : "batch order (skipped: random by design)")

    let n = y.count
    for (name, labels) in [
      ("one label", [Int](repeating: 0, count: n)), ("all labels distinct", Array(0..<n)),
    ] {
      let t = mine(x, labels)
      if let e = invalid(t, labels) { failures.append("\(name): \(e)") }
      if !t.triplets.isEmpty { failures.append("\(name): \(t.triplets.count) triplets where none exist") }
    }
    close("one label, and all labels distinct")
    var one = Matrix<Double>(rows: 1, columns: x.columns)
    one.apply { _ in 0.5 }
    if mine(one, [0]).count != 0 { failures.append("a single row gave tuples") }
    if mine(Matrix(rows: 0, columns: x.columns), []).count != 0 { failures.append("an empty batch gave tuples") }
    close("a single row and an empty batch")

    if sampler.acceptsMemory {
      // The batch against itself followed by a memory of 24 earlier embeddings of the same classes.
      let memory = LossConformance.Batch(rows: 24, dimension: 5, classes: 4, seed: 11)
      var references = Matrix<Double>(rows: n + 24, columns: x.columns)
      for i in 0..<(n + 24) {
        for j in 0..<x.columns { references[i, j] = i < n ? x[i, j] : memory.embeddings[i - n, j] }
      }
      let labels = y + memory.labels
      var s = sampler
      var w = DistanceWorkspace<Double>()
      var scores = Matrix<Double>()
      s.distance.scores(x, references, into: &scores, workspace: &w)
      var t = Tuples.none
      s.mine(scores: scores, labels: labels, into: &t)
      if let e = invalid(t, labels, rows: n) { failures.append("with a memory: \(e)") }
      if t.count == 0 { failures.append("with a memory: nothing mined") }
      let reachesMemory =
        t.positivePairs.contains { $0.y >= n } || t.negativePairs.contains { $0.y >= n }
        || t.triplets.contains { $0.y >= n || $0.z >= n }
      if !reachesMemory { failures.append("with a memory: no tuple uses a memory column") }
    }
    close(sampler.acceptsMemory ? "with a cross-batch memory" : "cross-batch memory (skipped: not accepted)")
    failures = bookkeeping
    close("statistics count every batch; no failure reported")
    return checks
  }
}
