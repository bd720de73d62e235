import MetricLearning

/// The parts of a 256 × 256 × 128 Euclidean score matrix, to see where its time goes.
enum DistanceProfile {
  static func run() {
    let x = LossBenchmark.unitBatch(256, 128, seed: 1)
    var s = Matrix<Float>(), w = DistanceWorkspace<Float>()
    var c = Matrix<Float>()
    let gemmTime = Timing.median { gemm(x, x, transposeB: true, into: &c) }
    let full = Timing.median { Distance.euclidean.scores(x, x, sameSet: true, into: &s, workspace: &w) }
    let cosine = Timing.median { Distance.cosine.scores(x, x, sameSet: true, into: &s, workspace: &w) }
    var g = Matrix<Float>(rows: 256, columns: 256, repeating: 0.001), gq = Matrix<Float>(), gr = Matrix<Float>()
    Distance.euclidean.scores(x, x, sameSet: true, into: &s, workspace: &w)
    let back = Timing.median {
      Distance.euclidean.backward(x, x, scores: s, scoreGradient: g, workspace: &w, queryGradient: &gq, referenceGradient: &gr)
    }
    g[0, 0] = 0
    print("gemm \((gemmTime * 1e3).fixed(3)) ms, euclidean \((full * 1e3).fixed(3)), cosine \((cosine * 1e3).fixed(3)), euclidean backward \((back * 1e3).fixed(3))")
  }
}
