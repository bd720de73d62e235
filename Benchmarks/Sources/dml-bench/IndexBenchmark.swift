import Foundation
import MetricLearning

/// Search at scale: exact search against faiss's flat, IVF, HNSW and IVF-PQ indexes on a million
/// vectors of dimension 128, as an ann-benchmarks-style table: build time, index size, peak memory,
/// queries per second and Recall@10 against exact search, all measured in this run.
///
/// `dml-bench index [--n N] [--queries Q] [--embeddings E.npy]`: without `--embeddings`, a mixture
/// of Gaussians (1,000 centres); with it, those embeddings (a trained model's) replicated with
/// noise up to N rows.
enum IndexBenchmark {
  static func value(_ name: String, in arguments: [String]) -> String? {
    arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
  }

  /// `n` vectors around `centres` (rows), each centre plus Gaussian noise of `spread`.
  static func around(_ centres: Matrix<Float>, n: Int, spread: Float, seed: UInt64) -> Matrix<Float> {
    var rng = RandomSource(seed: seed)
    var x = Matrix<Float>(rows: n, columns: centres.columns)
    for i in 0..<n {
      let c = rng.index(below: centres.rows)
      for j in 0..<centres.columns { x[i, j] = centres[c, j] + spread * rng.normal(Float.self) }
    }
    return x
  }

  static func run(_ arguments: [String]) {
    let n = Int(value("--n", in: arguments) ?? "") ?? 1_000_000
    let q = Int(value("--queries", in: arguments) ?? "") ?? 10_000
    let k = 10
    var centres: Matrix<Float>
    var spread: Float
    var source: String
    if let path = value("--embeddings", in: arguments) {
      let (shape, values) = try! NPY.read(path)
      centres = Matrix(rows: shape[0], columns: shape[1], elements: values)
      spread = 0.02
      source = "\(path) (\(shape[0]) embeddings of a trained model) replicated with N(0, 0.02²) noise"
    } else {
      var rng = RandomSource(seed: 7)
      centres = Matrix(rows: 1_000, columns: 128)
      centres.apply { _ in rng.normal() }
      spread = 0.35
      source = "a mixture of 1,000 Gaussians (centres N(0, 1), spread 0.35)"
    }
    let d = centres.columns
    let base = around(centres, n: n, spread: spread, seed: 1)
    let queries = around(centres, n: q, spread: spread, seed: 2)
    let ids = (0..<Int64(n)).map { $0 }
    print("== Search at scale: \(n) vectors of dimension \(d), \(q) queries, k = \(k), L2; \(ComputeContext.automatic.threads) threads, OpenBLAS \(BLAS.coreName)")
    print("data: \(source)")
    let vectorsMB = Double(n * d * 4) / 1_048_576
    print("the vectors: \(vectorsMB.fixed(0)) MB; process peak before any index: \(LossBenchmark.peakResidentMB().fixed(0)) MB")

    // IVF-PQ first, while the process peak is the data's: its build's extra memory is measured.
    var rows: [String] = []
    func measure(_ kind: String, trainSize: Int?, settings: [IndexSearchParameters], exact: IndexSearchResult?)
      -> (index: any VectorIndex, result: IndexSearchResult?, build: String)
    {
      let peak0 = LossBenchmark.peakResidentMB()
      let t0 = Timing.now()
      var index = try! IndexKind(parsing: kind).make(dimension: d, metric: .l2)
      if !index.isTrained {
        var rng = RandomSource(seed: 3)
        let sample = trainSize.map { base.rows(Array(rng.permutation(n).prefix($0)).sorted()) } ?? base
        try! index.train(sample)
      }
      try! index.add(base, ids: ids)
      let build = Double(Timing.now() - t0) / 1e9
      let size = (index as? FaissIndex).map { Double($0.serializedSize) / 1_048_576 } ?? vectorsMB
      let peak = LossBenchmark.peakResidentMB() - peak0
      var firstResult: IndexSearchResult?
      for p in settings {
        let t = Timing.now()
        let r = try! index.search(queries, k: k, parameters: p)
        let seconds = Double(Timing.now() - t) / 1e9
        if firstResult == nil { firstResult = r }
        let recall = exact.map { IndexTuning.recall(r, exact: $0, k: k) } ?? 1
        let setting = p.nprobe.map { "nprobe \($0)" } ?? p.efSearch.map { "efSearch \($0)" } ?? "-"
        rows.append(
          "| \(kind) | \(setting) | \(build.fixed(1)) | \(size.fixed(0)) | \(peak > 1 ? peak.fixed(0) : "–") | \((Double(q) / seconds).fixed(0)) | \(recall.fixed(4)) |")
        print(rows.last!)
      }
      return (index, firstResult, "\(build.fixed(1)) | \(size.fixed(0)) | \(peak > 1 ? peak.fixed(0) : "–")")
    }
    print("| index | search setting | build s | index MB | peak growth MB | queries/s | Recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    // Exact search is the ground truth; its own row is measured like the others.
    let (pq, _, pqBuild) = measure("ivfpq:nlist=4096,m=16,bits=8", trainSize: 200_000, settings: [], exact: nil)
    let exact = measure("flat", trainSize: nil, settings: [IndexSearchParameters()], exact: nil).result!
    let probes = [1, 4, 16, 64].map { IndexSearchParameters(nprobe: $0) }
    for p in probes {
      let t = Timing.now()
      let r = try! pq.search(queries, k: k, parameters: p)
      let seconds = Double(Timing.now() - t) / 1e9
      rows.append("| ivfpq:nlist=4096,m=16,bits=8 | nprobe \(p.nprobe!) | \(pqBuild) | \((Double(q) / seconds).fixed(0)) | \(IndexTuning.recall(r, exact: exact, k: k).fixed(4)) |")
      print(rows.last!)
    }
    _ = measure("faiss-flat", trainSize: nil, settings: [IndexSearchParameters()], exact: exact)
    _ = measure("ivf:nlist=4096", trainSize: 200_000, settings: probes, exact: exact)
    _ = measure("hnsw:m=32", trainSize: nil, settings: [16, 32, 64, 128, 256].map { IndexSearchParameters(efSearch: $0) }, exact: exact)
  }
}
