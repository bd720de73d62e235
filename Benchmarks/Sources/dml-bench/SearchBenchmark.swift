import MetricLearning

/// Issue 5: exact k-NN (k = 10) of 10,000 queries against 10,000 references of dimension 128,
/// beside faiss IndexFlatL2's figures from shared/BENCHMARKS.md; then 100,000 × 100,000 with the
/// peak memory, which stays at the block buffers (the full matrix would be 40 GB).
enum SearchBenchmark {
  static func run(large: Bool) {
    print("== Exact k-NN, k = 10, dimension 128, Float32, unnormalised Euclidean (as IndexFlatL2), \(ComputeContext.automatic.threads) threads")
    print("OpenBLAS core: \(BLAS.coreName)")
    let x = LossBenchmark.unitBatch(10_000, 128, seed: 1)
    let y = LossBenchmark.unitBatch(10_000, 128, seed: 2)
    _ = try! nearestNeighbors(queries: x, references: y, k: 10)  // warm-up
    var times: [Double] = []
    for _ in 0..<3 {
      let t = Timing.now()
      _ = try! nearestNeighbors(queries: x, references: y, k: 10)
      times.append(Double(Timing.now() - t) / 1e9)
    }
    let ms = times.sorted()[1] * 1e3
    print("10,000 × 10,000: \(ms.fixed(0)) ms (median of 3)")
    print("  faiss IndexFlatL2 (BENCHMARKS.md, same kind of machine): 1078 ms with Prescott kernels → \((1078 / ms).fixed(2))x its throughput;")
    print("  430 ms with SkylakeX kernels on an AVX-512 machine → \((430 / ms).fixed(2))x (target ≥ 0.8x)")
    guard large else { return }
    let before = LossBenchmark.peakResidentMB()
    let big = LossBenchmark.unitBatch(100_000, 128, seed: 3)
    let t = Timing.now()
    let result = try! nearestNeighbors(queries: big, references: big, k: 10, excludeSelf: true)
    let seconds = Double(Timing.now() - t) / 1e9
    print("100,000 × 100,000 (self excluded): \(seconds.fixed(1)) s; peak memory \(before.fixed(0)) → \(LossBenchmark.peakResidentMB().fixed(0)) MB (inputs 51 MB; result \(result.indices.count / 250_000) MB)")
  }
}
