import DMLEvaluation
import Foundation
import Testing

/// The cases of Golden/metrics.json (a copy of shared/reference/metrics.json: PML 2.9.0's
/// AccuracyCalculator with faiss 1.7.3 and scikit-learn 1.2.1, float64 inputs rounded to float32).
struct MetricCase: @unchecked Sendable {
  let name: String
  let inputs: [String: Any]
  let outputs: [String: Any]

  static let all: [MetricCase] = {
    let url = Bundle.module.url(forResource: "Golden/metrics", withExtension: "json")!
    let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    return (json["cases"] as! [[String: Any]]).map {
      MetricCase(name: $0["name"] as! String, inputs: $0["inputs"] as! [String: Any], outputs: $0["outputs"] as! [String: Any])
    }
  }()
  static func named(_ n: String) -> MetricCase { all.first { $0.name == n }! }

  func matrix(_ key: String) -> Matrix<Double>? {
    (inputs[key] as? [[NSNumber]]).map { Matrix($0.map { $0.map(\.doubleValue) }) }
  }
  func labels(_ key: String) -> [Int]? { (inputs[key] as? [NSNumber])?.map(\.intValue) }
  func value(_ key: String) -> Double { (outputs[key] as! NSNumber).doubleValue }
  func list(_ key: String) -> [Int] { (outputs[key] as! [NSNumber]).map(\.intValue) }
}

@Suite("Retrieval and clustering metrics match PML (Golden/metrics.json)")
struct GoldenMetricsTests {
  @Test("accuracy metrics and the neighbours behind them", arguments: ["accuracy_single_set", "accuracy_query_reference"])
  func accuracy(name: String) throws {
    let c = MetricCase.named(name)
    let q = c.matrix("query")!, ql = c.labels("query_labels")!
    let r = c.matrix("reference"), rl = c.labels("reference_labels")
    let m = try retrievalMetrics(queries: q, queryLabels: ql, references: r, referenceLabels: rl)
    #expect(m.k == c.inputs["k_resolved"] as! Int)
    for (mine, key) in [
      (m.precisionAt1, "precision_at_1"), (m.rPrecision, "r_precision"),
      (m.mapAtR, "mean_average_precision_at_r"), (m.meanAveragePrecision, "mean_average_precision"),
      (m.meanReciprocalRank, "mean_reciprocal_rank"),
    ] {
      #expect(abs(mine - c.value(key)) < 1e-12, "\(name) \(key): \(mine) vs \(c.value(key))")
    }
    // The very neighbours faiss returned.
    let knn = try nearestNeighbors(queries: q, references: r ?? q, k: m.k, excludeSelf: r == nil)
    let expected = (c.outputs["knn_indices"] as! [[NSNumber]]).map { $0.map(\.intValue) }
    for i in 0..<q.rows { #expect(knn.row(i).map(Int.init) == expected[i], "\(name) query \(i)") }
    // Float32 ranks as Double does except where two references lie within Float32's rounding of
    // each other; a query's AP can then move by at most 1, so MAP@R by at most the share of such
    // queries. (This holds for every input; on this one the share happens to be 0.)
    let f = try retrievalMetrics(
      queries: q.converted(to: Float.self), queryLabels: ql, references: r?.converted(to: Float.self), referenceLabels: rl)
    let bound = Self.nearTieShare(q, ql, r, rl)
    #expect(abs(f.mapAtR - m.mapAtR) <= bound + 1e-12, "Float32 \(f.mapAtR) vs Double \(m.mapAtR), near-tie share \(bound)")
  }

  /// The share of queries whose ranking up to R + 1 holds two Euclidean distances closer than
  /// Float32 can tell apart (a relative 1e-5, well above the rounding of the sums).
  static func nearTieShare(_ q: Matrix<Double>, _ ql: [Int], _ r: Matrix<Double>?, _ rl: [Int]?) -> Double {
    let refs = r ?? q, labels = rl ?? ql
    var ties = 0, counted = 0
    for i in 0..<q.rows {
      var d: [Double] = []
      for j in 0..<refs.rows where r != nil || j != i {
        var s = 0.0
        for t in 0..<q.columns { s += (q[i, t] - refs[j, t]) * (q[i, t] - refs[j, t]) }
        d.append(s.squareRoot())
      }
      let relevant = labels.indices.filter { labels[$0] == ql[i] && (r != nil || $0 != i) }.count
      guard relevant > 0 else { continue }
      counted += 1
      d.sort()
      let top = d.prefix(relevant + 1)
      if zip(top, top.dropFirst()).contains(where: { $1 - $0 <= 1e-5 * Swift.max(1, $1) }) { ties += 1 }
    }
    return counted == 0 ? 0 : Double(ties) / Double(counted)
  }

  @Test("Recall@K", arguments: ["recall_at_k_single_set", "recall_at_k_query_reference"])
  func recall(name: String) throws {
    let c = MetricCase.named(name)
    let m = try retrievalMetrics(
      queries: c.matrix("query")!, queryLabels: c.labels("query_labels")!, references: c.matrix("reference"),
      referenceLabels: c.labels("reference_labels"))
    for k in [1, 2, 4, 8] { #expect(abs(m.recallAt[k]! - c.value("recall_at_\(k)")) < 1e-12, "\(name) R@\(k)") }
  }

  @Test("NMI and AMI on the recorded k-means labels; our k-means is no worse", arguments: ["clustering_single_set", "clustering_query_reference"])
  func clustering(name: String) throws {
    let c = MetricCase.named(name)
    let labels = c.labels("query_labels")!, clusters = c.list("cluster_labels")
    #expect(abs(MutualInformation.normalized(labels, clusters) - c.value("NMI")) < 1e-12)
    #expect(abs(MutualInformation.adjusted(labels, clusters) - c.value("AMI")) < 1e-10)
    let x = c.matrix("query")!
    let k = c.inputs["num_clusters"] as! Int
    #expect(KMeansProperties.failures(try KMeans.fit(x, k: k, seed: 1), x).isEmpty)
  }
}

/// What a k-means result must satisfy on every input: it is a fixed point of Lloyd's iteration.
enum KMeansProperties {
  static func failures(_ result: KMeans, _ x: Matrix<Double>) -> [String] {
    var failures: [String] = []
    let k = result.centroids.rows
    func distance(_ i: Int, _ c: Int) -> Double {
      var s = 0.0
      for t in 0..<x.columns { s += (x[i, t] - result.centroids[c, t]) * (x[i, t] - result.centroids[c, t]) }
      return s
    }
    var total = 0.0
    for i in 0..<x.rows {
      let own = distance(i, result.assignments[i])
      total += own
      for c in 0..<k where distance(i, c) < own - 1e-9 * Swift.max(1, own) {
        failures.append("point \(i) is nearer centroid \(c) than its own \(result.assignments[i])")
      }
    }
    for c in 0..<k {
      let members = result.assignments.indices.filter { result.assignments[$0] == c }
      guard !members.isEmpty else { continue }
      for t in 0..<x.columns {
        let mean = members.reduce(0.0) { $0 + x[$1, t] } / Double(members.count)
        if abs(mean - result.centroids[c, t]) > 1e-9 * Swift.max(1, abs(mean)) {
          failures.append("centroid \(c) is not the mean of its \(members.count) points (column \(t))")
          break
        }
      }
    }
    if abs(total - result.inertia) > 1e-9 * Swift.max(1, total) { failures.append("inertia \(result.inertia), recomputed \(total)") }
    return failures
  }
}

@Suite("Clustering properties on every input")
struct ClusteringPropertyTests {
  @Test("k-means ends at a fixed point of Lloyd's iteration, on random inputs", arguments: [(1, 2), (2, 5), (3, 8), (4, 1)])
  func fixedPoint(seed: UInt64, k: Int) throws {
    var rng = RandomSource(seed: seed)
    var x = Matrix<Double>(rows: 60 + Int(seed) * 17, columns: 3 + Int(seed))
    x.apply { _ in rng.normal() }
    let result = try KMeans.fit(x, k: k, iterations: 1_000, seed: seed)
    #expect(KMeansProperties.failures(result, x).isEmpty, "\(KMeansProperties.failures(result, x).prefix(3))")
  }

  @Test("NMI and AMI are 1 for a clustering that recovers well-separated classes, whatever their order")
  func separated() throws {
    var rng = RandomSource(seed: 9)
    let labels = (0..<40).map { $0 % 4 }
    var x = Matrix<Double>(rows: 40, columns: 4)
    for i in 0..<40 { for t in 0..<4 { x[i, t] = (t == labels[i] ? 100 : 0) + rng.normal() } }
    let scores = try clusteringScores(x, labels: labels)
    #expect(abs(scores.nmi - 1) < 1e-12 && abs(scores.ami - 1) < 1e-12, "\(scores)")
  }
}

@Suite("Metric edge cases")
struct MetricEdgeTests {
  @Test("lone query labels are excluded and counted")
  func lone() throws {
    let x = Matrix<Double>([[0], [0.1], [5], [5.1], [9]])
    let m = try retrievalMetrics(queries: x, queryLabels: [0, 0, 1, 1, 2])
    #expect(m.loneQueries == 1 && m.queries == 4)
    #expect(m.precisionAt1 == 1 && m.mapAtR == 1)
    #expect("\(m)".contains("1 lone queries excluded"))
  }

  @Test("separate query and reference sets: nothing is excluded, a query's twin counts")
  func separate() throws {
    let q = Matrix<Double>([[0], [5]]), r = Matrix<Double>([[0], [5], [0.2], [9]])
    let m = try retrievalMetrics(queries: q, queryLabels: [0, 1], references: r, referenceLabels: [0, 1, 0, 2], k: 2)
    #expect(m.precisionAt1 == 1 && m.queries == 2)
    #expect(abs(m.rPrecision - 1) < 1e-15)
  }

  @Test("ties go to the lower reference index")
  func ties() throws {
    let q = Matrix<Double>([[0, 0]])
    let r = Matrix<Double>([[1, 0], [0, 1], [-1, 0], [0, -1], [2, 2]])
    let knn = try nearestNeighbors(queries: q, references: r, k: 4)
    #expect(Array(knn.row(0)) == [0, 1, 2, 3])
    #expect(knn.scores.elements == [1, 1, 1, 1])
  }

  @Test("bad inputs are clear errors")
  func errors() {
    let x = Matrix<Double>(rows: 3, columns: 2)
    #expect(throws: EvaluationError("the reference set is empty")) {
      try nearestNeighbors(queries: x, references: Matrix(rows: 0, columns: 2), k: 1)
    }
    #expect(throws: EvaluationError("the reference set is empty")) {
      try retrievalMetrics(queries: x, queryLabels: [0, 0, 0], references: Matrix(rows: 0, columns: 2), referenceLabels: [])
    }
    #expect(throws: EvaluationError("3 queries but 2 query labels")) { try retrievalMetrics(queries: x, queryLabels: [0, 1]) }
    #expect(throws: EvaluationError("queries have 2 dimensions, references 3")) {
      try nearestNeighbors(queries: x, references: Matrix(rows: 3, columns: 3), k: 1)
    }
    #expect(throws: EvaluationError("k = 3 must lie in 1...2 for 3 references (self excluded)")) {
      try nearestNeighbors(queries: x, references: x, k: 3, excludeSelf: true)
    }
    var bad = x
    bad[1, 1] = .nan
    #expect(throws: EvaluationError("embeddings contain NaN or infinite values")) {
      try nearestNeighbors(queries: bad, references: x, k: 1)
    }
  }

  @Test("blocked search equals brute force for every distance", arguments: [
    Distance(.euclidean, normalizesEmbeddings: false), .euclidean, .squaredEuclidean, .cosine, .dotProduct, .snr,
    Distance(.snr, normalizesEmbeddings: false),
  ])
  func bruteForce(distance: Distance) throws {
    var rng = RandomSource(seed: 7)
    var x = Matrix<Double>(rows: 70, columns: 5), y = Matrix<Double>(rows: 53, columns: 5)
    x.apply { _ in rng.normal() }
    y.apply { _ in rng.normal() }
    let knn = try nearestNeighbors(queries: x, references: y, k: 6, distance: distance, queryBlock: 16, referenceBlock: 7)
    var w = DistanceWorkspace<Double>()
    var s = Matrix<Double>()
    distance.scores(x, y, into: &s, workspace: &w)
    let order = s.topK(6, largest: distance.isSimilarity)
    #expect(knn.indices == order.indices)
    var diff = knn.scores
    diff.add(order.values, scaledBy: -1)
    #expect(diff.maxAbs() < 1e-9)
    let own = try nearestNeighbors(queries: x, references: x, k: 5, distance: distance, excludeSelf: true, queryBlock: 9, referenceBlock: 11)
    #expect((0..<70).allSatisfy { !own.row($0).contains(Int32($0)) })
  }

  @Test("NMI and AMI: identical, permuted and independent labellings")
  func mutualInformation() {
    let a = [0, 0, 1, 1, 2, 2]
    #expect(abs(MutualInformation.normalized(a, [5, 5, 3, 3, 9, 9]) - 1) < 1e-12)
    #expect(abs(MutualInformation.adjusted(a, [5, 5, 3, 3, 9, 9]) - 1) < 1e-12)
    #expect(MutualInformation.adjusted(a, [0, 1, 0, 1, 0, 1]) < 0.01)
  }
}

@Suite("Multi-label retrieval metrics")
struct MultiLabelMetricsTests {
  static func points(_ n: Int, seed: UInt64) -> Matrix<Double> {
    var rng = RandomSource(seed: seed)
    var x = Matrix<Double>(rows: n, columns: 3)
    x.apply { _ in rng.normal() }
    return x
  }

  @Test("one label per row: the same metrics as the single-label definitions")
  func singleLabelsAgree() throws {
    let x = Self.points(40, seed: 3)
    let labels = (0..<40).map { ($0 * 7) % 5 }
    let single = try retrievalMetrics(queries: x, queryLabels: labels)
    let multi = try multiLabelRetrievalMetrics(x, labelSets: labels.map { [$0] })
    #expect(single == multi, "\(single)\n\(multi)")
  }

  @Test("label sets: relevance is a shared label, R_i the rows sharing one; written out on four points")
  func written() throws {
    // Points on a line: 0, 1, 2, 10. Sets: {a}, {a,b}, {b}, {c}.
    let x = Matrix<Double>(rows: 4, columns: 1, elements: [0, 1, 2, 10])
    let m = try multiLabelRetrievalMetrics(x, labelSets: [[0], [0, 1], [1], [2]], recallAt: [1])
    // Row 3 shares nothing: lone. Row 0: R=1, nearest is row 1 (relevant): AP@R 1.
    // Row 1: R=2 (rows 0 and 2), neighbours 0 then 2 (both at distance 1; both relevant): 1.
    // Row 2: R=1, nearest row 1 (relevant): 1.
    #expect(m.loneQueries == 1 && m.queries == 3)
    #expect(m.mapAtR == 1 && m.precisionAt1 == 1)
    // Move row 2 next to row 0's other side: row 0's nearest is now row 2, which shares nothing.
    let y = Matrix<Double>(rows: 4, columns: 1, elements: [0, 1, -0.5, 10])
    let n = try multiLabelRetrievalMetrics(y, labelSets: [[0], [0, 1], [1], [2]], recallAt: [1])
    // Row 0: R=1, neighbours 2 (no), 1 (yes): P@1 0, AP@R 0. Row 1: R=2, neighbours 0 (1.0), 2 (1.5): both relevant: 1.
    // Row 2: R=1, neighbours 0 (0.5, no), 1 (1.5, yes): 0.
    #expect(abs(n.mapAtR - 1.0 / 3) < 1e-12 && abs(n.precisionAt1 - 1.0 / 3) < 1e-12, "\(n)")
  }
}
