import Foundation
import MetricLearning

/// Issue 7: our side of the side-by-side comparison. Every case has the name that
/// Benchmarks/Scripts/pml_reference.py gives the same work through PML, torch, numpy or faiss;
/// `dml-bench cases` prints one JSON object, case name → median milliseconds (plus
/// `_openblas_core` and `_blas_threads`), which
/// Benchmarks/Scripts/compare.py interleaves with the reference's rounds.
///
/// Inputs match the reference's: unit vectors of dimension 128, labels `i / 4` (so 64 classes at
/// 256 rows and 256 at 1,024), proxies and class weights one per class. Losses run forward and
/// backward with their miner; miners include computing their distance matrix, as PML's do.
enum ComparisonCases {
  static let kinds = ["gemm", "distance", "loss", "miner", "network", "knn", "read"]
  static let gemmShapes: [(m: Int, n: Int, k: Int)] = [
    (128, 512, 784), (128, 128, 512), (100_352, 32, 9), (25_088, 64, 288), (128, 128, 3136), (1024, 1024, 1024),
  ]
  static let quickLoss = "triplet + semihard miner"
  /// `--only TEXT`: time only the cases whose name contains TEXT, in the selected kinds (for
  /// profiling one case).
  nonisolated(unsafe) static var only: String?

  static func ms(_ name: String, _ body: () -> Void, trials: Int, into out: inout [String: Double]) {
    if let only, !name.contains(only) { return }
    out[name] = Timing.median(trials: trials, body) * 1e3
  }

  static func run(_ arguments: [String]) -> Int32 {
    let quick = arguments.contains("--quick")
    var selected = kinds
    var trials = 7
    var i = 0
    only = nil
    while i < arguments.count {
      switch arguments[i] {
      case "--kinds" where i + 1 < arguments.count:
        selected = arguments[i + 1].split(separator: ",").map(String.init)
        i += 1
      case "--trials" where i + 1 < arguments.count:
        guard let t = Int(arguments[i + 1]), t > 0 else {
          FileHandle.standardError.write(Data("dml-bench cases: --trials needs a positive integer, got \(arguments[i + 1])\n".utf8))
          return 2
        }
        trials = t
        i += 1
      case "--quick": break
      case "--only" where i + 1 < arguments.count:
        only = arguments[i + 1]
        i += 1
      default:
        FileHandle.standardError.write(Data("dml-bench cases: unknown argument \(arguments[i])\n".utf8))
        return 2
      }
      i += 1
    }
    if quick { trials = 3 }
    var out: [String: Double] = [:]
    for kind in selected {
      switch kind {
      case "gemm": gemm(quick: quick, trials: trials, into: &out)
      case "distance": distances(quick: quick, trials: trials, into: &out)
      case "loss": losses(quick: quick, trials: trials, into: &out)
      case "miner": miners(quick: quick, trials: trials, into: &out)
      case "network": networks(quick: quick, trials: trials, into: &out)
      case "knn": knn(quick: quick, into: &out)
      case "read":
        do { try read(quick: quick, into: &out) } catch {
          FileHandle.standardError.write(Data("dml-bench cases: \(error)\n".utf8))
          return 1
        }
      default:
        FileHandle.standardError.write(Data("dml-bench cases: unknown kind \(kind); known: \(kinds.joined(separator: ", "))\n".utf8))
        return 2
      }
    }
    var object: [String: Any] = out
    object["_openblas_core"] = BLAS.coreName
    object["_blas_threads"] = ComputeContext.automatic.threads
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    return 0
  }


  static func gemm(quick: Bool, trials: Int, into out: inout [String: Double]) {
    for s in quick ? Array(gemmShapes.prefix(1)) : gemmShapes {
      var rng = RandomSource(seed: 0)
      var a = Matrix<Float>(rows: s.m, columns: s.k), b = Matrix<Float>(rows: s.k, columns: s.n)
      a.apply { _ in rng.normal() }
      b.apply { _ in rng.normal() }
      var c = Matrix<Float>(rows: s.m, columns: s.n)
      ms("gemm \(s.m)x\(s.n)x\(s.k)", { MetricLearning.gemm(a, b, into: &c) }, trials: trials, into: &out)
    }
  }

  static func distances(quick: Bool, trials: Int, into out: inout [String: Double]) {
    let all: [(String, Distance)] = [
      ("euclidean", .euclidean), ("squared-euclidean", .squaredEuclidean), ("cosine", .cosine), ("dot", .dotProduct),
    ]
    for n in quick ? [256] : [256, 1024] {
      let x = LossBenchmark.unitBatch(n, 128, seed: 1)
      for (name, distance) in quick ? Array(all.prefix(1)) : all {
        var w = DistanceWorkspace<Float>()
        var s = Matrix<Float>()
        ms("distance \(name) \(n)", { distance.scores(x, x, sameSet: true, into: &s, workspace: &w) }, trials: trials, into: &out)
      }
    }
  }

  static func losses(quick: Bool, trials: Int, into out: inout [String: Double]) {
    for n in quick ? [256] : [256, 1024] {
      let x = LossBenchmark.unitBatch(n, 128, seed: 1)
      let labels = (0..<n).map { $0 / 4 }
      let classes = n / 4
      let ctx = LossContext(classes: classes, embeddingDimension: 128, seed: 2)

      func plain<L: EmbeddingLoss>(_ name: String, _ loss: L) where L.Scalar == Float {
        guard !quick || name == quickLoss else { return }
        var l = loss
        ms("loss \(name) \(n)", { _ = l.evaluate(x, labels: labels, tuples: nil) }, trials: trials, into: &out)
      }
      func mined<L: PairwiseLoss, S: TupleSampler>(_ name: String, _ loss: L, _ sampler: S)
      where L.Scalar == Float, S.Scalar == Float {
        guard !quick || name == quickLoss else { return }
        var evaluator = LossEvaluator(loss)
        var s = sampler
        var tuples = Tuples.none
        ms("loss \(name) \(n)", { _ = evaluator.evaluate(x, labels: labels, sampler: &s, tuples: &tuples) }, trials: trials, into: &out)
      }
      /// A registered loss by its command-line text, as `dml train --loss` builds it.
      func registered(_ name: String, _ text: String) {
        guard !quick || name == quickLoss else { return }
        plain(name, try! LossRegistry.standard.make(text, context: ctx).loss)
      }

      plain("contrastive", LossEvaluator(ContrastiveLoss<Float>()))
      mined("triplet + semihard miner", TripletMarginLoss<Float>(margin: 0.2), TripletMarginMiner<Float>(margin: 0.2, type: .semihard))
      mined("triplet + batch-hard miner", TripletMarginLoss<Float>(margin: 0.2), BatchHardMiner<Float>())
      plain("proxy-nca", LossEvaluator(ProxyNCALoss(proxies: Proxies<Float>(classes: classes, dimension: 128, seed: 3, group: 1))))
      plain("proxy-anchor", LossEvaluator(ProxyAnchorLoss(proxies: Proxies<Float>(classes: classes, dimension: 128, seed: 3, group: 1))))
      mined("multi-similarity + miner", MultiSimilarityLoss<Float>(), MultiSimilarityMiner<Float>())
      plain(
        "center + cross-entropy",
        WeightedSum(
          LossEvaluator(SoftmaxLoss(weights: ClassWeights<Float>(classes: classes, dimension: 128, seed: 4))),
          LossEvaluator(try! CenterLoss<Float>.make(context: ctx)), secondWeight: 0.01))
      registered("softmax", "softmax")
      registered("normalized-softmax", "normalized-softmax")
      registered("arcface", "arcface")
      registered("cosface", "cosface")
      registered("uniformity", "uniformity")
      registered("p2s-grad", "p2s-grad")
      registered("circle", "circle")
      registered("large-margin-softmax", "large-margin-softmax")
      registered("sphereface", "sphereface")
      registered("dynamic-soft-margin", "dynamic-soft-margin")
      registered("manifold", "manifold")
      registered("decoupled-contrastive", "decoupled-contrastive")
      // VICReg reads two views per sample: rows 2i and 2i + 1 share label i (PML: embeddings and ref_emb).
      if !quick {
        var vicreg = try! LossRegistry.standard.make("vicreg", context: ctx).loss
        let views = (0..<n).map { $0 / 2 }
        ms("loss vicreg \(n)", { _ = vicreg.evaluate(x, labels: views, tuples: nil) }, trials: trials, into: &out)
      }
      // PML's implementations of these build matrices of positive × negative pairs (or N³ for
      // PNP and Smooth-AP, N² × d for the SNR distance): at 1,024 rows several would need tens of GB, so they
      // are compared at 256 only.
      if n == 256 {
        registered("lifted-structure", "lifted-structure")
        registered("generalized-lifted-structure", "generalized-lifted-structure")
        registered("ntxent", "ntxent")
        registered("nca", "nca")
        registered("intra-pair-variance", "intra-pair-variance")
        registered("tuplet-margin", "tuplet-margin")
        registered("angular", "angular")
        registered("npairs", "npairs")
        registered("ranked-list", "ranked-list")
        registered("histogram", "histogram")
        registered("tcm", "tcm")
        registered("fast-ap", "fast-ap")
        registered("margin", "margin")
        registered("snr-contrastive", "snr-contrastive")
        registered("smooth-ap", "smooth-ap")
      }
    }
  }

  static func miners(quick: Bool, trials: Int, into out: inout [String: Double]) {
    for n in quick ? [256] : [256, 1024] {
      let x = LossBenchmark.unitBatch(n, 128, seed: 5)
      let labels = (0..<n).map { $0 / 4 }
      func time<S: TupleSampler>(_ name: String, _ make: () -> S) where S.Scalar == Float {
        guard !quick || name == "semihard" else { return }
        var sampler = make()
        var scores = Matrix<Float>(), ws = DistanceWorkspace<Float>()
        var t = Tuples.none
        ms("miner \(name) \(n)", {
          sampler.distance.scores(x, x, sameSet: true, into: &scores, workspace: &ws)
          sampler.mine(scores: scores, labels: labels, into: &t)
        }, trials: trials, into: &out)
      }
      time("semihard") { TripletMarginMiner<Float>(margin: 0.2, type: .semihard) }
      time("triplet-margin all") { TripletMarginMiner<Float>(margin: 0.2, type: .all) }
      time("batch-hard") { BatchHardMiner<Float>() }
      time("multi-similarity") { MultiSimilarityMiner<Float>() }
      time("pair-margin") { PairMarginMiner<Float>() }
      time("distance-weighted") { DistanceWeightedMiner<Float>(dimension: 128) }
      time("facenet-semihard") { FaceNetSemiHardMiner<Float>() }
      time("batch-easy-hard") { BatchEasyHardMiner<Float>() }
      time("hdc") { HDCMiner<Float>() }
      time("uniform-histogram") { UniformHistogramMiner<Float>(seed: 1) }
      if n == 256 { time("angular") { AngularMiner<Float>() } }  // PML materialises every triplet
    }
  }

  static func networks(quick: Bool, trials: Int, into out: inout [String: Double]) {
    func time<N: EmbeddingNetwork>(_ name: String, _ net: inout N) where N.Scalar == Float {
      var rng = RandomSource(seed: 1)
      var batch = Matrix<Float>(rows: 128, columns: net.inputFeatures)
      batch.apply { _ in rng.normal() }
      var gradient = Matrix<Float>()
      ms("network \(name) forward+backward 128", {
        net.forward(batch, mode: .training, compute: .automatic)
        gradient.assign(net.embeddings)  // the stand-in gradient: d = embeddings
        net.backward(gradient, compute: .automatic)
      }, trials: trials, into: &out)
    }
    var mlp = MLP<Float>.mlp(seed: 0)
    time("mlp", &mlp)
    guard !quick else { return }
    var conv = ConvNetS<Float>.convNetS(seed: 0)
    time("convnet-s", &conv)
  }

  /// Exact k-NN as faiss IndexFlatL2 computes it: unnormalised Euclidean, k = 10.
  static func knn(quick: Bool, into out: inout [String: Double]) {
    let name = "knn 10000x10000x128 k=10"
    if let only, !name.contains(only) { return }
    let x = LossBenchmark.unitBatch(10_000, 128, seed: 1)
    let y = LossBenchmark.unitBatch(10_000, 128, seed: 2)
    _ = try! nearestNeighbors(queries: x, references: y, k: 10)
    var times: [Double] = []
    for _ in 0..<(quick ? 1 : 3) {
      let t = Timing.now()
      _ = try! nearestNeighbors(queries: x, references: y, k: 10)
      times.append(Double(Timing.now() - t) / 1e6)
    }
    out[name] = times.sorted()[times.count / 2]
  }

  /// The 60,000 training images and labels, gzipped IDX, normalised.
  static func read(quick: Bool, into out: inout [String: Double]) throws {
    let name = "read fashion-mnist train"
    if let only, !name.contains(only) { return }
    var times: [Double] = []
    for _ in 0..<(quick ? 3 : 5) {
      let t = Timing.now()
      _ = try FashionMNIST.load(train: true)
      times.append(Double(Timing.now() - t) / 1e6)
    }
    out[name] = times.sorted()[times.count / 2]
  }
}
