import DMLLosses
import Foundation
import Testing

@Suite("Distances match pytorch-metric-learning (Golden/distances.json)")
struct GoldenDistanceTests {
  static let cases: [(String, Distance)] = [
    ("lp_p2_power1_normalized", .euclidean),
    ("lp_p2_power1_unnormalized", Distance(.euclidean, normalizesEmbeddings: false)),
    ("lp_p2_power2_normalized", .squaredEuclidean),
    ("cosine_similarity", .cosine),
    ("dot_product_unnormalized", .dotProduct),
    // Golden/snr.json, from Benchmarks/Scripts/golden_snr.py.
    ("snr_normalized", .snr),
    ("snr_unnormalized", Distance(.snr, normalizesEmbeddings: false)),
    // Golden/lp_distances.json, from Benchmarks/Scripts/golden_lp_distance.py.
    ("lp_p1_power1_normalized", .lp(p: 1)),
    ("lp_p3_power2_normalized", .lp(p: 3, power: 2)),
    ("lp_p1.5_power1_unnormalized", .lp(p: 1.5, normalizesEmbeddings: false)),
    ("lp_p2_power3_normalized", .lp(p: 2, power: 3)),
    ("lp_p4_power0.5_unnormalized", .lp(p: 4, power: 0.5, normalizesEmbeddings: false)),
    // Golden/poincare.json, from Benchmarks/Scripts/golden_poincare.py (hyptorch's formulas in torch).
    ("poincare_hypvit", .poincare()),
    ("poincare_unit_c_no_clip", .poincare(curvature: 1, clipRadius: 0)),
    ("poincare_projected", .poincare(curvature: 1, clipRadius: 0)),
    ("poincare_small_rows", .poincare(curvature: 0.5, clipRadius: 3)),
  ]

  @Test("scores and gradients to 1e-9", arguments: cases.filter { $0.0 != "poincare_projected" })
  func distance(name: String, distance: Distance) {
    let c = (GoldenCase.distances + GoldenCase.snr + GoldenCase.lpDistances + GoldenCase.poincare).first { $0.name == name }!
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

  /// A miner's few pairs give a score gradient with few non-zeros, which the backward passes
  /// multiply entry by entry instead of by GEMM. By linearity, its gradient must equal the GEMM
  /// path's gradient of (dense + sparse) minus that of (dense).
  @Test("a sparse score gradient gives the GEMM path's gradient", arguments: cases)
  func sparseGradient(name: String, distance: Distance) {
    var rng = RandomSource(seed: 11)
    var x = Matrix<Double>(rows: 40, columns: 8), r = Matrix<Double>(rows: 30, columns: 8)
    x.apply { _ in rng.normal() }
    r.apply { _ in rng.normal() }
    for (reference, sameSet) in [(x, true), (r, false)] {
      let m = reference.rows
      var sparse = Matrix<Double>(rows: 40, columns: m, repeating: 0), dense = sparse
      dense.apply { _ in rng.normal() }
      for k in 0..<(40 * m / 20) { sparse[(k * 7) % 40, (k * 13 + 1) % m] = rng.normal() }  // 1 entry in 20
      var both = dense
      both.add(sparse)
      var w = DistanceWorkspace<Double>(), scores = Matrix<Double>()
      distance.scores(x, reference, sameSet: sameSet, into: &scores, workspace: &w)
      /// The query's gradient, then (two sets) the reference's.
      func gradients(_ g: Matrix<Double>) -> [Matrix<Double>] {
        var gq = Matrix<Double>(), gr = Matrix<Double>()
        if sameSet {
          distance.backwardSameSet(x, scores: scores, scoreGradient: g, workspace: &w, gradient: &gq)
          return [gq]
        }
        distance.backward(x, reference, scores: scores, scoreGradient: g, workspace: &w, queryGradient: &gq, referenceGradient: &gr)
        return [gq, gr]
      }
      let (withBoth, withDense, got) = (gradients(both), gradients(dense), gradients(sparse))
      for (k, side) in got.enumerated() {
        var expected = withBoth[k]
        expected.add(withDense[k], scaledBy: -1)
        #expect(side.isFinite && side.rows == expected.rows && side.columns == 8)
        let worst = (0..<side.count).map { abs(side.elements[$0] - expected.elements[$0]) }.max()!
        #expect(worst < 1e-9, "\(name) sameSet \(sameSet) side \(k): \(worst)")
        #expect(side.elements.contains { $0 != 0 }, "\(name): the sparse gradient is not all zero")
      }
    }
  }

  /// Center loss reads one score per row; `scores(_:_:onlyColumns:...)` computes just those.
  @Test("own-class scores equal the full matrix's entries, with the same gradients", arguments: cases)
  func ownClassScores(name: String, distance: Distance) {
    var rng = RandomSource(seed: 5)
    var x = Matrix<Double>(rows: 12, columns: 6), r = Matrix<Double>(rows: 4, columns: 6)
    x.apply { _ in rng.normal() }
    r.apply { _ in rng.normal() }
    let labels = (0..<12).map { ($0 * 5) % 4 }
    var full = Matrix<Double>(), only = Matrix<Double>(), wFull = DistanceWorkspace<Double>(), wOnly = wFull
    distance.scores(x, r, into: &full, workspace: &wFull)
    distance.scores(x, r, onlyColumns: labels, into: &only, workspace: &wOnly)
    var g = Matrix<Double>(rows: 12, columns: 4, repeating: 0)
    for i in 0..<12 {
      for j in 0..<4 {
        if j == labels[i] {
          #expect(abs(only[i, j] - full[i, j]) <= 1e-12 * Swift.max(1, abs(full[i, j])), "\(name) [\(i), \(j)]")
          g[i, j] = rng.normal()
        } else {
          #expect(only[i, j] == 0)
        }
      }
    }
    var gq = [Matrix<Double>(), Matrix<Double>()], gr = gq
    distance.backward(x, r, scores: full, scoreGradient: g, workspace: &wFull, queryGradient: &gq[0], referenceGradient: &gr[0])
    distance.backward(x, r, scores: only, scoreGradient: g, workspace: &wOnly, queryGradient: &gq[1], referenceGradient: &gr[1])
    for (a, b) in [(gq[0], gq[1]), (gr[0], gr[1])] {
      #expect((0..<a.count).allSatisfy { abs(a.elements[$0] - b.elements[$0]) <= 1e-10 }, "\(name) gradients")
    }
    #expect(gq[1].elements.contains { $0 != 0 })
  }

  @Test("SNR: an anchor without signal (all features equal) gives large finite scores and a finite gradient")
  func snrFlatAnchor() {
    var x = Matrix<Double>(rows: 6, columns: 5)
    var rng = RandomSource(seed: 4)
    x.apply { _ in rng.normal() }
    for k in 0..<5 { x[2, k] = 0.7 }
    for distance in [Distance.snr, Distance(.snr, normalizesEmbeddings: false)] {
      var w = DistanceWorkspace<Double>()
      var s = Matrix<Double>(), g = Matrix<Double>()
      distance.scores(x, x, sameSet: true, into: &s, workspace: &w)
      #expect(s.isFinite && s[2, 2] == 0 && s[2, 0] > 1e6, "\(distance): \(s[2, 0])")
      distance.backwardSameSet(x, scores: s, scoreGradient: Matrix(rows: 6, columns: 6, repeating: 1e-9), workspace: &w, gradient: &g)
      #expect(g.isFinite)
    }
  }

  @Test("identical rows are exactly 0 apart with a zero, finite gradient")
  func identicalRows() {
    var x = Matrix<Double>(rows: 40, columns: 8)
    var rng = RandomSource(seed: 3)
    x.apply { _ in rng.normal() }
    for k in 0..<8 { x[7, k] = x[3, k] }
    for distance in [Distance.euclidean, Distance(.euclidean, normalizesEmbeddings: false), .squaredEuclidean, .snr] {
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

  @Test("losses on an Lp distance: PML's TripletMarginLoss on LpDistance(p=1) and ContrastiveLoss on LpDistance(p=3, power=2), value and gradient to 1e-9")
  func lossesOnLpDistances() {
    for c in GoldenCase.lpDistances where c.outputs["loss"] != nil {
      let d = c.inputs["distance"] as! [String: Any]
      let distance = Distance.lp(p: GoldenCase.number(d["p"]!), power: GoldenCase.number(d["power"]!))
      func run<L: PairwiseLoss>(_ loss: L) -> (Double, Matrix<Double>) where L.Scalar == Double {
        var e = LossEvaluator(loss)
        return (e.evaluate(c.matrix("embeddings"), labels: c.labels, tuples: nil).total, e.embeddingGradient)
      }
      let (total, gradient) =
        c.name.hasPrefix("triplet")
        ? run(TripletMarginLoss<Double>(margin: c.hyper("margin"), distance: distance))
        : run(ContrastiveLoss<Double>(positiveMargin: c.hyper("pos_margin"), negativeMargin: c.hyper("neg_margin"), distance: distance))
      expectClose(total, c.scalar("loss"), "\(c.name) loss")
      expectClose(gradient, c.output("grad_embeddings"), "\(c.name) grad_embeddings")
    }
  }

  @Test("Lp distances by name: l1, l3^2, l1.5; p = 2 with power 1 or 2 are the Euclidean kinds; bad forms refused")
  func parsing() {
    #expect(Distance(parsing: "l1") == .lp(p: 1))
    #expect(Distance(parsing: "l3^2") == .lp(p: 3, power: 2))
    #expect(Distance(parsing: "l2") == .euclidean && Distance(parsing: "l2^2") == .squaredEuclidean)
    #expect(Distance(parsing: "l2^3")?.kind == .lp)
    #expect(Distance(parsing: "poincare") == .poincare() && Distance(parsing: "poincare/1") == .poincare(curvature: 1))
    #expect(Distance(parsing: "poincare/0.5/0") == .poincare(curvature: 0.5, clipRadius: 0))
    #expect(Distance.poincare(curvature: 0.5, clipRadius: 0).description == "poincare/0.5/0.0" && Distance.poincare().description == "poincare")
    for bad in ["poincare/0", "poincare/-1", "poincare/1/-2", "poincare/1/2/3", "poincare/x", "poincarex"] {
      #expect(Distance(parsing: bad) == nil, "\(bad)")
    }
    for bad in ["l0.5", "l", "l1^0", "l1^-1", "linf", "l1^2^3", "lnan", "l1^inf", "manhattan"] {
      #expect(Distance(parsing: bad) == nil, "\(bad)")
    }
    #expect(Distance.lp(p: 3, power: 2).description == "l3^2" && Distance.lp(p: 1.5, normalizesEmbeddings: false).description == "l1.5(unnormalized)")
    // A distance written before Lp distances (no p, no power) still decodes.
    let old = try? JSONDecoder().decode(Distance.self, from: Data(#"{"kind":"euclidean","normalizesEmbeddings":true}"#.utf8))
    #expect(old == .euclidean)
    let lp = try? JSONDecoder().decode(Distance.self, from: JSONEncoder().encode(Distance.lp(p: 3, power: 2)))
    #expect(lp == .lp(p: 3, power: 2))
    #expect((try? JSONDecoder().decode(Distance.self, from: Data(#"{"kind":"lp","normalizesEmbeddings":true,"p":0.5,"power":1}"#.utf8))) == nil)
  }

  @Test("the Poincaré ball's edge: rows projected to norm (1 − 10⁻³)/√c, scores to 1e-9 and gradients to 1e-9 of their largest")
  func poincareAtTheEdge() {
    // 1/(1 − c‖u‖²) ≈ 500 there, and the distances ≈ 15: rounding differs from torch's Möbius form
    // by up to 1e-10 of the largest gradient (7e-11 absolute), beyond 1e-9 of the smallest entries.
    let c = GoldenCase.poincare.first { $0.name == "poincare_projected" }!
    let distance = Distance.poincare(curvature: 1, clipRadius: 0)
    let (q, r) = (c.matrix("query"), c.matrix("reference"))
    var w = DistanceWorkspace<Double>()
    var scores = Matrix<Double>(), gq = Matrix<Double>(), gr = Matrix<Double>()
    func close(_ a: Matrix<Double>, _ e: Matrix<Double>, _ what: String) {
      let scale = e.elements.map(abs).max()!
      let worst = zip(a.elements, e.elements).map { abs($0 - $1) }.max()!
      #expect(worst <= 1e-9 * scale, "\(what): \(worst) against \(scale)")
    }
    distance.scores(q, q, sameSet: true, into: &scores, workspace: &w)
    expectClose(scores, c.output("matrix_self"), "self matrix")
    var combined = Matrix<Double>()
    distance.backwardSameSet(q, scores: scores, scoreGradient: c.matrix("cotangent_self"), workspace: &w, gradient: &combined)
    close(combined, c.output("grad_self"), "self gradient")
    distance.scores(q, r, into: &scores, workspace: &w)
    expectClose(scores, c.output("matrix_ref"), "reference matrix")
    distance.backward(q, r, scores: scores, scoreGradient: c.matrix("cotangent_ref"), workspace: &w, queryGradient: &gq, referenceGradient: &gr)
    close(gq, c.output("grad_query_ref"), "query gradient")
    close(gr, c.output("grad_reference_ref"), "reference gradient")
    // Every row was projected: the ball points all have the edge's norm.
    let ball = distance.preparedRows(q)
    for i in 0..<ball.rows {
      let norm = (0..<ball.columns).reduce(0.0) { $0 + ball[i, $1] * ball[i, $1] }.squareRoot()
      #expect(abs(norm - 0.999) < 1e-12)
    }
  }

  @Test("blocks of rows (PML's BatchedDistance) give the rows of the whole matrix, for every kind", arguments: cases)
  func blocks(name: String, distance: Distance) {
    var rng = RandomSource(seed: 17)
    var q = Matrix<Double>(rows: 23, columns: 6), r = Matrix<Double>(rows: 9, columns: 6)
    q.apply { _ in rng.normal() }
    r.apply { _ in rng.normal() }
    var whole = Matrix<Double>(), w = DistanceWorkspace<Double>()
    distance.scores(q, r, into: &whole, workspace: &w)
    var seen = 0
    distance.forEachBlock(q, r, blockRows: 5) { block, rows in
      #expect(block.rows == rows.count && block.columns == 9)
      for (k, i) in rows.enumerated() {
        for j in 0..<9 { #expect(abs(block[k, j] - whole[i, j]) <= 1e-12 * max(1, abs(whole[i, j])), "\(name) [\(i), \(j)]") }
      }
      seen += rows.count
    }
    #expect(seen == 23)
  }
}
