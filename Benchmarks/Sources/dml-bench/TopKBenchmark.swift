import Foundation
import MetricLearning

/// Exact search at MAP@R's k: 10,000 queries against 10,000 references of dimension 128, k = 1,000
/// (evaluation retrieves each class's size in neighbours), beside faiss's IndexFlatL2 (through the
/// library's faiss backend, ids mapped and distances rooted as ours) in the same run.
enum TopKBenchmark {
  static func run(_ arguments: [String]) {
    let n = 10_000, k = Int(IndexBenchmark.value("--k", in: arguments) ?? "") ?? 1_000
    let x = LossBenchmark.unitBatch(n, 128, seed: 1), y = LossBenchmark.unitBatch(n, 128, seed: 2)
    print("== Exact k-NN at large k: \(n) × \(n), dimension 128, k = \(k), L2; \(ComputeContext.automatic.threads) threads, OpenBLAS \(BLAS.coreName)")
    func median(_ body: () -> Void) -> Double {
      body()  // warm-up
      var times: [Double] = []
      for _ in 0..<3 {
        let t = Timing.now()
        body()
        times.append(Double(Timing.now() - t) / 1e9)
      }
      return times.sorted()[1]
    }
    let ours = median { _ = try! nearestNeighbors(queries: x, references: y, k: k) }
    var flat = try! FaissIndex(factory: "Flat", dimension: 128, metric: .l2)
    try! flat.add(y, ids: (0..<Int64(n)).map { $0 })
    let faiss = median { _ = try! flat.search(x, k: k) }
    print("ours: \((ours * 1e3).fixed(0)) ms; faiss IndexFlatL2: \((faiss * 1e3).fixed(0)) ms (median of 3) → ours at \((faiss / ours).fixed(2))x faiss's throughput")
    // The same neighbours.
    let a = try! nearestNeighbors(queries: x.rows(Array(0..<50)), references: y, k: k)
    let b = try! flat.search(x.rows(Array(0..<50)), k: k)
    let same = (0..<(50 * k)).filter { Int64(a.indices[$0]) == b.ids[$0] }.count
    print("the same neighbour at the same rank: \(same) of \(50 * k) (ties aside)")
  }
}
