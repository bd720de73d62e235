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
    // Float32, as faiss computed them, gives the same.
    let f = try retrievalMetrics(
      queries: q.converted(to: Float.self), queryLabels: ql, references: r?.converted(to: Float.self), referenceLabels: rl)
    #expect(abs(f.mapAtR - c.value("mean_average_precision_at_r")) < 1e-12)
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
    let theirs = KMeans.inertia(x, clusters, k: k).inertia
    let ours = try KMeans.fit(x, k: k, seed: 1)
    #expect(ours.inertia <= theirs * (1 + 1e-9), "our inertia \(ours.inertia) vs faiss's \(theirs)")
    let scores = try clusteringScores(x, labels: labels)
    #expect(scores.nmi > 0.5 && scores.ami > 0.4)
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
    Distance(.euclidean, normalizesEmbeddings: false), .euclidean, .squaredEuclidean, .cosine, .dotProduct,
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
