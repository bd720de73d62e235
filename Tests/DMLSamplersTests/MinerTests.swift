import DMLSamplers
import DMLTesting
import Foundation
import Testing

/// The cases of Golden/miners.json (a copy of shared/reference/miners.json, PML 2.9.0, float64).
struct MinerCase: CustomStringConvertible, @unchecked Sendable {
  let name: String
  let inputs: [String: Any]
  let outputs: [String: Any]
  var description: String { name }

  static let all: [MinerCase] = {
    let url = Bundle.module.url(forResource: "Golden/miners", withExtension: "json")!
    let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    return (json["cases"] as! [[String: Any]]).map {
      MinerCase(name: $0["name"] as! String, inputs: $0["inputs"] as! [String: Any], outputs: $0["outputs"] as! [String: Any])
    }
  }()

  var embeddings: Matrix<Double> {
    Matrix((inputs["embeddings"] as! [[NSNumber]]).map { $0.map(\.doubleValue) })
  }
  var labels: [Int] { (inputs["labels"] as! [NSNumber]).map(\.intValue) }
  func list(_ key: String) -> [[Int32]] { (outputs[key] as! [[Int]]).map { $0.map(Int32.init) } }
}

@Suite("Miners reproduce PML's exact index sets (Golden/miners.json)")
struct GoldenMinerTests {
  func mine<S: TupleSampler>(_ sampler: S, _ c: MinerCase) -> Tuples where S.Scalar == Double {
    var s = sampler
    var w = DistanceWorkspace<Double>()
    var scores = Matrix<Double>()
    s.distance.scores(c.embeddings, c.embeddings, sameSet: true, into: &scores, workspace: &w)
    let expected = Matrix((c.outputs["distance_matrix"] as! [[NSNumber]]).map { $0.map(\.doubleValue) })
    var diff = scores
    diff.add(expected, scaledBy: -1)
    #expect(diff.maxAbs() < 1e-12, "\(c.name): distance matrix")
    var t = Tuples.none
    s.mine(scores: scores, labels: c.labels, into: &t)
    return t
  }

  func sorted(_ t: [SIMD3<Int32>]) -> [[Int32]] { t.map { [$0.x, $0.y, $0.z] }.sorted { $0.lexicographicallyPrecedes($1) } }
  func sorted(_ t: [SIMD2<Int32>]) -> [[Int32]] { t.map { [$0.x, $0.y] }.sorted { $0.lexicographicallyPrecedes($1) } }

  @Test("TripletMarginMiner", arguments: TripletType.allCases)
  func tripletMargin(type: TripletType) {
    let c = MinerCase.all.first { $0.name == "triplet_margin_miner_\(type.rawValue)" }!
    let t = mine(TripletMarginMiner<Double>(margin: 0.2, type: type), c)
    #expect(sorted(t.triplets) == c.list("triplets"), "\(c.name)")
    #expect(t.triplets.count == c.outputs["num_triplets"] as! Int)
  }

  @Test("BatchHardMiner")
  func batchHard() {
    let c = MinerCase.all.first { $0.name == "batch_hard_miner" }!
    #expect(sorted(mine(BatchHardMiner<Double>(), c).triplets) == c.list("triplets"))
  }

  @Test("PairMarginMiner")
  func pairMargin() {
    let c = MinerCase.all.first { $0.name == "pair_margin_miner" }!
    let t = mine(PairMarginMiner<Double>(positiveMargin: 0.2, negativeMargin: 0.8), c)
    #expect(sorted(t.positivePairs) == c.list("pos_pairs"))
    #expect(sorted(t.negativePairs) == c.list("neg_pairs"))
  }

  @Test("MultiSimilarityMiner")
  func multiSimilarity() {
    let c = MinerCase.all.first { $0.name == "multi_similarity_miner" }!
    let t = mine(MultiSimilarityMiner<Double>(epsilon: 0.1), c)
    #expect(sorted(t.positivePairs) == c.list("pos_pairs"))
    #expect(sorted(t.negativePairs) == c.list("neg_pairs"))
    #expect(!t.positivePairs.isEmpty && !t.negativePairs.isEmpty)
  }
}

@Suite("Every sampler passes the sampler conformance suite")
struct SamplerConformanceTests {
  static func check(_ failures: [String], _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(failures.isEmpty, "\(name): \(failures.joined(separator: "; "))", sourceLocation: sourceLocation)
  }

  @Test("sampler conformance: batch-all pairs") func batchAllPairs() { Self.check(SamplerConformance.failures(BatchAllMiner<Double>(triplets: false)), "batch-all pairs") }
  @Test("sampler conformance: batch-all triplets") func batchAllTriplets() { Self.check(SamplerConformance.failures(BatchAllMiner<Double>(triplets: true)), "batch-all triplets") }
  @Test("sampler conformance: triplet-margin, every type", arguments: TripletType.allCases)
  func tripletMargin(type: TripletType) {
    Self.check(SamplerConformance.failures(TripletMarginMiner<Double>(margin: 0.5, type: type)), "triplet-margin \(type)")
  }
  @Test("sampler conformance: batch-hard") func batchHard() { Self.check(SamplerConformance.failures(BatchHardMiner<Double>()), "batch-hard") }
  @Test("sampler conformance: facenet-semihard") func faceNet() { Self.check(SamplerConformance.failures(FaceNetSemiHardMiner<Double>()), "facenet") }
  @Test("sampler conformance: pair-margin") func pairMargin() { Self.check(SamplerConformance.failures(PairMarginMiner<Double>()), "pair-margin") }
  @Test("sampler conformance: multi-similarity") func multiSimilarity() { Self.check(SamplerConformance.failures(MultiSimilarityMiner<Double>()), "multi-similarity") }
  @Test("sampler conformance: distance-weighted (seeded, so order-dependent)")
  func distanceWeighted() {
    Self.check(SamplerConformance.failures(DistanceWeightedMiner<Double>(dimension: 5), deterministic: false), "distance-weighted")
  }
  @Test("sampler conformance: capped triplet-margin (seeded sample)")
  func capped() {
    Self.check(SamplerConformance.failures(TripletMarginMiner<Double>(margin: 0.5, type: .all, maxTuples: 20), deterministic: false), "capped")
  }

  @Test("a sampler returning an invalid tuple fails the suite")
  func suiteCanFail() {
    struct Wrong: TupleSampler {
      var distance: Distance { .euclidean }
      var statistics = MiningStatistics()
      mutating func mine(scores: Matrix<Double>, labels: [Int], into tuples: inout Tuples) {
        tuples = labels.count > 1 ? .triplets([SIMD3(0, 0, 1)]) : .none
        statistics.record(tuples.count)
      }
    }
    #expect(!SamplerConformance.failures(Wrong()).isEmpty)
  }

  @Test("the memory case fails a miner that claims a memory but treats the scores as square")
  func memoryCaseCanFail() {
    // Batch-hard on the first `rows` columns only (it takes the column count for the row count):
    // valid tuples on a square matrix, none reaching the memory.
    struct SquareOnly: TupleSampler {
      var inner = BatchHardMiner<Double>()
      var distance: Distance { inner.distance }
      var acceptsMemory: Bool { true }
      var statistics: MiningStatistics {
        get { inner.statistics }
        set { inner.statistics = newValue }
      }
      mutating func mine(scores: Matrix<Double>, labels: [Int], into tuples: inout Tuples) {
        var square = Matrix<Double>(rows: scores.rows, columns: scores.rows)
        for i in 0..<scores.rows { for j in 0..<scores.rows { square[i, j] = scores[i, j] } }
        inner.mine(scores: square, labels: Array(labels.prefix(scores.rows)), into: &tuples)
      }
    }
    let failures = SamplerConformance.failures(SquareOnly())
    #expect(failures == ["with a memory: no tuple uses a memory column"], "\(failures)")
    #expect(SamplerConformance.failures(BatchHardMiner<Double>()).isEmpty)
  }
}

@Suite("Mining behaviour")
struct MiningBehaviourTests {
  func scores(_ x: Matrix<Double>, _ d: Distance = .euclidean) -> Matrix<Double> {
    var w = DistanceWorkspace<Double>()
    var s = Matrix<Double>()
    d.scores(x, x, sameSet: true, into: &s, workspace: &w)
    return s
  }

  /// The plain triple loop the miner's word-at-a-time scan must reproduce, order included.
  static func referenceTriplets<T: DMLScalar>(
    _ s: Matrix<T>, _ labels: [Int], type: TripletType, margin: T, distance: Distance, cap: Int?, seed: UInt64
  ) -> [SIMD3<Int32>] {
    var reservoir = Reservoir(capacity: cap, seed: seed)
    var out: [SIMD3<Int32>] = []
    let sign = T(distance.closeness)
    for a in 0..<s.rows {
      for p in 0..<s.columns where p != a && labels[p] == labels[a] {
        for q in 0..<s.columns where labels[q] != labels[a] {
          let t = sign * (s[a, p] - s[a, q])
          let keep: Bool
          switch type {
          case .all: keep = t <= margin
          case .hard: keep = t <= 0
          case .semihard: keep = t > 0 && t <= margin
          case .easy: keep = t > margin
          }
          if keep { reservoir.offer(SIMD3(Int32(a), Int32(p), Int32(q)), to: &out) }
        }
      }
    }
    return out
  }

  @Test(
    "TripletMarginMiner's word-at-a-time scan equals the plain triple loop, in order",
    arguments: TripletType.allCases)
  func scanEqualsLoop(type: TripletType) {
    // 150 rows over 3 classes: about 100 negatives per anchor, so each positive's scan has a
    // full 64-bit word and a partial one. Then 40 rows against the 150 as a memory (columns beyond
    // the rows), and a capped sample.
    let batch = LossConformance.Batch(rows: 150, dimension: 3, classes: 3, seed: 21)
    var x = Matrix<Float>(rows: 150, columns: 3), queries = Matrix<Float>(rows: 40, columns: 3)
    for i in 0..<150 { for j in 0..<3 { x[i, j] = Float(batch.embeddings[i, j]) } }
    for i in 0..<40 { for j in 0..<3 { queries[i, j] = x[i, j] } }
    for distance in [Distance.euclidean, .cosine] {
      var w = DistanceWorkspace<Float>()
      var square = Matrix<Float>(), memory = Matrix<Float>()
      distance.scores(x, x, sameSet: true, into: &square, workspace: &w)
      distance.scores(queries, x, into: &memory, workspace: &w)
      for (s, cap) in [(square, nil), (memory, nil), (square, 500)] as [(Matrix<Float>, Int?)] {
        var miner = TripletMarginMiner<Float>(margin: 0.2, type: type, distance: distance, maxTuples: cap, seed: 5)
        var t = Tuples.none
        miner.mine(scores: s, labels: batch.labels, into: &t)
        let expected = Self.referenceTriplets(
          s, batch.labels, type: type, margin: 0.2, distance: distance, cap: cap, seed: 5)
        // Compared by count and first difference: describing two arrays of thousands of
        // triplets in a failure message would take minutes.
        let firstDifference =
          (0..<Swift.min(t.triplets.count, expected.count)).first { t.triplets[$0] != expected[$0] } ?? -1
        let context = "\(type) \(distance) \(s.rows)x\(s.columns) cap \(cap ?? 0)"
        #expect(expected.count > 0 && t.triplets.count == expected.count, "\(context): count")
        #expect(firstDifference == -1, "\(context): first difference")
      }
    }
  }

  @Test("a cap keeps a uniform seeded sample of the qualifying triplets")
  func capIsASample() {
    let batch = LossConformance.Batch(rows: 24, dimension: 4, classes: 3, seed: 9)
    let s = scores(batch.embeddings)
    var all = TripletMarginMiner<Double>(margin: 10, type: .all)
    var capped = TripletMarginMiner<Double>(margin: 10, type: .all, maxTuples: 100, seed: 4)
    var everything = Tuples.none, sample = Tuples.none, again = Tuples.none
    all.mine(scores: s, labels: batch.labels, into: &everything)
    capped.mine(scores: s, labels: batch.labels, into: &sample)
    #expect(everything.triplets.count == 24 * 7 * 16)
    #expect(sample.triplets.count == 100)
    #expect(Set(sample.triplets).isSubset(of: Set(everything.triplets)))
    var same = TripletMarginMiner<Double>(margin: 10, type: .all, maxTuples: 100, seed: 4)
    same.mine(scores: s, labels: batch.labels, into: &again)
    #expect(again == sample)
    // Uniform: anchors of the sample spread over the batch.
    #expect(Set(sample.triplets.map(\.x)).count > 15)
  }

  @Test("semi-hard mining that finds nothing is reported")
  func emptyStatistics() {
    var miner = TripletMarginMiner<Double>(margin: 0.2, type: .semihard)
    let x = Matrix<Double>([[1, 0], [1, 0.001], [-1, 0], [-1, 0.001]])  // far-apart classes: all easy
    var t = Tuples.none
    miner.mine(scores: scores(x), labels: [0, 0, 1, 1], into: &t)
    miner.mine(scores: scores(x), labels: [0, 0, 1, 1], into: &t)
    #expect(t.count == 0)
    #expect(miner.statistics.emptyBatches == 2 && miner.statistics.emptyFraction == 1)
    #expect("\(miner.statistics)".contains("nothing mined in 2 of 2 batches"))
  }

  @Test("FaceNet's rule: the nearest negative beyond the positive, else the farthest")
  func faceNetRule() {
    // Anchor 0 with positive 1 at distance 1; negatives at 0.5, 1.5 and 3 (on a line).
    let x = Matrix<Double>([[0], [1], [0.5], [1.5], [3]])
    var miner = FaceNetSemiHardMiner<Double>(distance: Distance(.squaredEuclidean, normalizesEmbeddings: false))
    var t = Tuples.none
    miner.mine(scores: scores(x, Distance(.squaredEuclidean, normalizesEmbeddings: false)), labels: [0, 0, 1, 1, 1], into: &t)
    #expect(t.triplets.contains(SIMD3(0, 1, 3)))  // 1.5 is the nearest beyond 1
    #expect(t.triplets.contains(SIMD3(1, 0, 4)))  // from 1: d(1,0)=1; negatives 0.5, 0.5, 2 → 3 at 2
  }

  @Test("distance-weighted sampling is seeded and never draws beyond the cutoff")
  func distanceWeighted() {
    let batch = LossConformance.Batch(rows: 20, dimension: 8, classes: 4, seed: 2)
    let s = scores(batch.embeddings)
    var a = DistanceWeightedMiner<Double>(dimension: 8, seed: 1), b = a
    var ta = Tuples.none, tb = Tuples.none
    a.mine(scores: s, labels: batch.labels, into: &ta)
    b.mine(scores: s, labels: batch.labels, into: &tb)
    #expect(ta == tb && !ta.triplets.isEmpty)
    #expect(ta.triplets.allSatisfy { s[Int($0.x), Int($0.z)] < 1.4 })
  }

  @Test("batch 1,024 with 64 classes: capped mining stays bounded")
  func boundedMemory() {
    // 15 million triplets are examined; the result holds at most maxTuples of them. (The
    // benchmark runs the 4,096-row case, 10⁹ triplets, in a release build.)
    let n = 1024
    var rng = RandomSource(seed: 1)
    var s = Matrix<Float>(rows: n, columns: n)
    s.apply { _ in rng.uniform(Float.self) * 2 }
    let labels = (0..<n).map { $0 % 64 }
    var miner = TripletMarginMiner<Float>(margin: 0.2, type: .semihard, maxTuples: 10_000, seed: 1)
    var t = Tuples.none
    miner.mine(scores: s, labels: labels, into: &t)
    #expect(t.triplets.count == 10_000)
    #expect(t.triplets.capacity < 20_000)
    #expect(miner.statistics.lastCount == 10_000)
  }
}

/// Golden/batch_easy_hard.json: PML's `BatchEasyHardMiner` on one batch, every strategy pair it
/// accepts, Euclidean and cosine, and two cases with allowed ranges
/// (Benchmarks/Scripts/golden_batch_easy_hard.py, PML 2.9.0, float64).
@Suite("BatchEasyHardMiner reproduces PML's index sets (Golden/batch_easy_hard.json)")
struct BatchEasyHardGoldenTests {
  struct Case: CustomStringConvertible, @unchecked Sendable {
    let values: [String: Any]
    var description: String { values["name"] as! String }
    func pairs(_ key: String) -> [SIMD2<Int32>] { (values[key] as! [[Int]]).map { SIMD2(Int32($0[0]), Int32($0[1])) } }
    func range(_ key: String) -> ClosedRange<Double>? {
      (values[key] as? [NSNumber]).map { $0[0].doubleValue...$0[1].doubleValue }
    }
  }

  nonisolated(unsafe) static let file: [String: Any] = {
    let url = Bundle.module.url(forResource: "Golden/batch_easy_hard", withExtension: "json")!
    return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
  }()
  static let cases = (file["cases"] as! [[String: Any]]).map(Case.init)

  @Test("every strategy pair, in PML's order", arguments: cases)
  func golden(_ c: Case) {
    let x = Matrix((Self.file["embeddings"] as! [[NSNumber]]).map { $0.map(\.doubleValue) })
    let labels = (Self.file["labels"] as! [NSNumber]).map(\.intValue)
    let distance: Distance = c.values["distance"] as! String == "cosine" ? .cosine : .euclidean
    var miner = BatchEasyHardMiner<Double>(
      positive: EasyHardStrategy(rawValue: c.values["pos_strategy"] as! String)!,
      negative: EasyHardStrategy(rawValue: c.values["neg_strategy"] as! String)!,
      allowedPositiveRange: c.range("allowed_pos_range"), allowedNegativeRange: c.range("allowed_neg_range"), distance: distance)
    var w = DistanceWorkspace<Double>(), scores = Matrix<Double>(), t = Tuples.none
    distance.scores(x, x, sameSet: true, into: &scores, workspace: &w)
    miner.mine(scores: scores, labels: labels, into: &t)
    #expect(t.positivePairs == c.pairs("pos_pairs"), "\(c): positive pairs")
    #expect(t.negativePairs == c.pairs("neg_pairs"), "\(c): negative pairs")
  }

  @Test("the strategy pairs PML refuses are refused, with its reason")
  func refusals() {
    #expect(BatchEasyHardMiner<Double>.refusal(positive: .semihard, negative: .semihard) != nil)
    #expect(BatchEasyHardMiner<Double>.refusal(positive: .all, negative: .semihard) != nil)
    #expect(BatchEasyHardMiner<Double>.refusal(positive: .semihard, negative: .all) != nil)
    #expect(BatchEasyHardMiner<Double>.refusal(positive: .easy, negative: .semihard) == nil)
  }

  @Test("sampler conformance: batch-easy-hard, every accepted strategy pair", arguments: EasyHardStrategy.allCases)
  func conformance(_ positive: EasyHardStrategy) {
    for negative in EasyHardStrategy.allCases where BatchEasyHardMiner<Double>.isValid(positive: positive, negative: negative) {
      let failures = SamplerConformance.failures(BatchEasyHardMiner<Double>(positive: positive, negative: negative))
      #expect(failures.isEmpty, "\(positive)/\(negative): \(failures)")
    }
  }
}

/// Golden/more_miners.json: PML's `AngularMiner` (on unit-length rows) and `HDCMiner`
/// (Benchmarks/Scripts/golden_more_miners.py, PML 2.9.0, float64); and the packaged-triplets miner.
@Suite("AngularMiner, HDCMiner and packaged triplets reproduce PML's index sets (Golden/more_miners.json)")
struct MoreMinerTests {
  nonisolated(unsafe) static let file: [String: Any] = {
    let url = Bundle.module.url(forResource: "Golden/more_miners", withExtension: "json")!
    return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
  }()
  static func matrix(_ key: String) -> Matrix<Double> { Matrix((file[key] as! [[NSNumber]]).map { $0.map(\.doubleValue) }) }
  static var labels: [Int] { (file["labels"] as! [NSNumber]).map(\.intValue) }
  static func golden(_ name: String) -> [String: Any] { (file["cases"] as! [[String: Any]]).first { $0["name"] as! String == name }! }
  static func mine<S: TupleSampler>(_ sampler: S, _ x: Matrix<Double>) -> Tuples where S.Scalar == Double {
    var s = sampler, w = DistanceWorkspace<Double>(), scores = Matrix<Double>(), t = Tuples.none
    s.distance.scores(x, x, sameSet: true, into: &scores, workspace: &w)
    s.mine(scores: scores, labels: labels, into: &t)
    return t
  }
  static func rows(_ v: Any?) -> [[Int32]] { (v as! [[Int]]).map { $0.map(Int32.init) }.sorted { $0.lexicographicallyPrecedes($1) } }

  @Test("AngularMiner at 20° and 35°: the same triplets", arguments: [20, 35])
  func angular(_ angle: Int) {
    let t = Self.mine(AngularMiner<Double>(angleDegrees: Double(angle)), Self.matrix("unit_embeddings"))
    let found = t.triplets.map { [$0.x, $0.y, $0.z] }.sorted { $0.lexicographicallyPrecedes($1) }
    #expect(found == Self.rows(Self.golden("angular_\(angle)")["triplets"]))
  }

  @Test("HDCMiner: the hardest half (Euclidean) and the hardest 30% (cosine) of each list", arguments: ["hdc_default", "hdc_0.3_cosine"])
  func hdc(_ name: String) {
    let c = Self.golden(name)
    let distance: Distance = c["distance"] as! String == "cosine" ? .cosine : .euclidean
    let t = Self.mine(HDCMiner<Double>(filterPercentage: (c["filter_percentage"] as! NSNumber).doubleValue, distance: distance), Self.matrix("embeddings"))
    let sorted = { (p: [SIMD2<Int32>]) in p.map { [$0.x, $0.y] }.sorted { $0.lexicographicallyPrecedes($1) } }
    #expect(sorted(t.positivePairs) == Self.rows(c["pos_pairs"]))
    #expect(sorted(t.negativePairs) == Self.rows(c["neg_pairs"]))
  }

  @Test("HDCMiner on long lists of tied scores (zeros of both signs among them) keeps exactly a stable sort's hardest pairs")
  func hdcTies() {
    func check<T: DMLScalar>(_: T.Type) {
      let n = 120
      let labels = (0..<n).map { $0 % 2 }  // both lists long: 7,080 positives, 7,200 negatives
      var rng = RandomSource(seed: 9)
      var scores = Matrix<T>(rows: n, columns: n)
      // Mostly zeros, −0 among them (as a cosine can be): the hardest half ends among ties.
      for a in 0..<n { for j in 0..<n where j != a { scores[a, j] = [T(0), T(0.5), -T(0), T(1), T(0)][Int(rng.next() % 5)] } }
      var miner = HDCMiner<T>()
      var t = Tuples.none
      miner.mine(scores: scores, labels: labels, into: &t)
      for positive in [true, false] {
        // The list in row-major order, stably sorted by hardness (far positives, near negatives).
        var list: [(T, SIMD2<Int32>)] = []
        for a in 0..<n {
          for j in 0..<n where j != a && (labels[j] == labels[a]) == positive { list.append((positive ? -scores[a, j] : scores[a, j], SIMD2(Int32(a), Int32(j)))) }
        }
        let keep = Int((0.5 * Double(list.count)).rounded(.up))
        let expected = list.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.prefix(keep).map(\.element.1)
        let found = positive ? t.positivePairs : t.negativePairs
        let order = { (p: [SIMD2<Int32>]) in p.map { [$0.x, $0.y] }.sorted { $0.lexicographicallyPrecedes($1) } }
        #expect(found.count == keep && order(found) == order(expected), "\(T.self) \(positive ? "positives" : "negatives")")
      }
      // Not vacuous: both lists are long enough for the radix passes (the positives' zeros are −0).
      #expect(t.positivePairs.count > 3000 && t.negativePairs.count > 3000)
    }
    check(Double.self)
    check(Float.self)
  }

  @Test("packaged triplets: rows 3i, 3i + 1, 3i + 2, whole triplets only")
  func packaged() {
    var miner = PackagedTripletsMiner<Double>(), t = Tuples.none
    miner.mine(scores: Matrix(rows: 8, columns: 8), labels: Array(0..<8), into: &t)
    #expect(t.triplets == [SIMD3(0, 1, 2), SIMD3(3, 4, 5)])
  }

  @Test("sampler conformance: HDC and angular")
  func conformance() {
    #expect(SamplerConformance.failures(HDCMiner<Double>()).isEmpty)
    #expect(SamplerConformance.failures(AngularMiner<Double>()).isEmpty)
  }
}

@Suite("UniformHistogramMiner: even draws over the score range, seeded")
struct UniformHistogramMinerTests {
  @Test("every non-empty bin gives its draws, each drawn pair lies in its list, and a seed repeats the draws")
  func bins() {
    var rng = RandomSource(seed: 4)
    var x = Matrix<Double>(rows: 24, columns: 6)
    x.apply { _ in rng.normal() }
    let labels = (0..<24).map { $0 % 4 }
    var w = DistanceWorkspace<Double>(), scores = Matrix<Double>()
    Distance.euclidean.scores(x, x, sameSet: true, into: &scores, workspace: &w)
    func run(seed: UInt64) -> Tuples {
      var miner = UniformHistogramMiner<Double>(bins: 5, positivesPerBin: 3, negativesPerBin: 2, seed: seed)
      var t = Tuples.none
      miner.mine(scores: scores, labels: labels, into: &t)
      return t
    }
    let t = run(seed: 1)
    #expect(t.positivePairs.allSatisfy { $0.x != $0.y && labels[Int($0.x)] == labels[Int($0.y)] })
    #expect(t.negativePairs.allSatisfy { labels[Int($0.x)] != labels[Int($0.y)] })
    // Count the non-empty bins of each list by hand: draws = bins × per-bin count.
    func nonEmptyBins(_ positive: Bool) -> Int {
      var values: [Double] = []
      for a in 0..<24 { for j in 0..<24 where j != a && (labels[j] == labels[a]) == positive { values.append(scores[a, j]) } }
      let (lo, hi) = (values.min()!, values.max()!)
      return Set(values.map { min(4, Int(((($0 - lo) / ((hi - lo) / 5))).rounded(.down))) }).count
    }
    #expect(t.positivePairs.count == 3 * nonEmptyBins(true))
    #expect(t.negativePairs.count == 2 * nonEmptyBins(false))
    let again = run(seed: 1), other = run(seed: 2)
    #expect(again.positivePairs == t.positivePairs && again.negativePairs == t.negativePairs)
    #expect(other.positivePairs != t.positivePairs || other.negativePairs != t.negativePairs)
    #expect(SamplerConformance.failures(UniformHistogramMiner<Double>(bins: 5, positivesPerBin: 3, negativesPerBin: 2), deterministic: false).isEmpty)
  }
}

@Suite("The uniform-histogram miner at non-finite scores")
struct UniformHistogramNonFiniteTests {
  @Test("NaN and infinite scores do not trap the binning")
  func nonFinite() {
    var scores = Matrix<Double>(rows: 4, columns: 4, repeating: 0.5)
    scores[0, 1] = .nan
    scores[1, 2] = .infinity
    var miner = UniformHistogramMiner<Double>(bins: 5), t = Tuples.none
    miner.mine(scores: scores, labels: [0, 0, 1, 1], into: &t)
    #expect(t.positivePairs.count > 0 && t.negativePairs.count > 0)
  }
}

@Suite("HDC's selection of the hardest pairs")
struct HDCSelectionTests {
  @Test("the rank-k value as a sort would give it: random values, many ties, one value, radix passes over large lists")
  func select() {
    var rng = RandomSource(seed: 3)
    let large = (0..<20_000).map { _ in Double(rng.index(below: 5000)) / 7 - 300 }  // radix passes, negatives and ties
    let spread = (0..<9000).map { _ in rng.normal() * 1e-3 + 1 }  // one exponent: several 16-bit passes
    for values in [(0..<500).map { _ in Double(rng.index(below: 1000)) }, [Double](repeating: 2, count: 300) + [1, 3], [7.0], large, spread,
      [Double](repeating: -0.5, count: 10_000)] {
      let sorted = values.sorted()
      for rank in [0, values.count / 3, values.count - 1] {
        var copy = values
        #expect(HDCMiner<Double>.select(&copy, rank: rank) == sorted[rank])
      }
    }
  }

  @Test("equal distances: ties kept in row order, exactly the fraction asked")
  func ties() {
    var miner = HDCMiner<Double>(filterPercentage: 0.5), t = Tuples.none
    miner.mine(scores: Matrix(rows: 6, columns: 6), labels: [0, 0, 0, 1, 1, 1], into: &t)
    #expect(t.positivePairs.count == 6 && t.negativePairs.count == 9)
    #expect(t.positivePairs.first == SIMD2(0, 1) && t.negativePairs.first == SIMD2(0, 3))
  }
}
