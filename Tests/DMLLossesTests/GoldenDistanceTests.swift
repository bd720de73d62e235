import DMLLosses
import Testing

@Suite("Distances match pytorch-metric-learning (Golden/distances.json)")
struct GoldenDistanceTests {
  static let cases: [(String, Distance)] = [
    ("lp_p2_power1_normalized", .euclidean),
    ("lp_p2_power1_unnormalized", Distance(.euclidean, normalizesEmbeddings: false)),
    ("lp_p2_power2_normalized", .squaredEuclidean),
    ("cosine_similarity", .cosine),
    ("dot_product_unnormalized", .dotProduct),
  ]

  @Test("scores and gradients to 1e-9", arguments: cases)
  func distance(name: String, distance: Distance) {
    let c = GoldenCase.distances.first { $0.name == name }!
    let q = c.matrix("query"), r = c.matrix("reference")
    var w = DistanceWorkspace<Double>()
    var scores = Matrix<Double>(), gq = Matrix<Double>(), gr = Matrix<Double>()

    distance.scores(q, q, sameSet: true, into: &scores, workspace: &w)
    expectClose(scores, c.output("matrix_self"), "\(name) self matrix")
    distance.backward(
      q, q, scores: scores, scoreGradient: c.matrix("cotangent_self"), workspace: &w,
      queryGradient: &gq, referenceGradient: &gr)
    gq.add(gr)  // the query is on both sides
    expectClose(gq, c.output("grad_self"), "\(name) self gradient")
    var combined = Matrix<Double>()
    distance.backwardSameSet(q, scores: scores, scoreGradient: c.matrix("cotangent_self"), workspace: &w, gradient: &combined)
    expectClose(combined, c.output("grad_self"), "\(name) self gradient, one GEMM")

    distance.scores(q, r, into: &scores, workspace: &w)
    expectClose(scores, c.output("matrix_ref"), "\(name) reference matrix")
    distance.backward(
      q, r, scores: scores, scoreGradient: c.matrix("cotangent_ref"), workspace: &w,
      queryGradient: &gq, referenceGradient: &gr)
    expectClose(gq, c.output("grad_query_ref"), "\(name) query gradient")
    expectClose(gr, c.output("grad_reference_ref"), "\(name) reference gradient")
    #expect(distance.isSimilarity == (c.inputs["distance"] as! [String: Any])["is_inverted"] as! Bool)
  }

  @Test("identical rows are exactly 0 apart with a zero, finite gradient")
  func identicalRows() {
    var x = Matrix<Double>(rows: 40, columns: 8)
    var rng = RandomSource(seed: 3)
    x.apply { _ in rng.normal() }
    for k in 0..<8 { x[7, k] = x[3, k] }
    for distance in [Distance.euclidean, Distance(.euclidean, normalizesEmbeddings: false), .squaredEuclidean] {
      var w = DistanceWorkspace<Double>()
      var s = Matrix<Double>(), gq = Matrix<Double>(), gr = Matrix<Double>()
      distance.scores(x, x, sameSet: true, into: &s, workspace: &w)
      #expect(s[3, 7] == 0 && s[7, 3] == 0 && s[5, 5] == 0)
      distance.backward(
        x, x, scores: s, scoreGradient: Matrix(rows: 40, columns: 40, repeating: 1), workspace: &w,
        queryGradient: &gq, referenceGradient: &gr)
      #expect(gq.isFinite && gr.isFinite)
    }
  }
}
