import Foundation
import MallocCounter
import MetricLearning

/// Issue 2's benchmark: GEMM GFLOP/s beside numpy's matmul on the same shapes in the same run,
/// forward and backward time per batch of 128 for MLP and ConvNet-S, and heap allocations per
/// training step after warm-up.
enum FoundationBenchmark {
  static let shapes: [(m: Int, n: Int, k: Int)] = [(128, 512, 784), (128, 128, 512), (1024, 1024, 1024)]

  static func run(quick: Bool) {
    print("== swift-metric-learning foundation benchmark")
    print("OpenBLAS core: \(BLAS.coreName)   (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"))")
    print("OpenBLAS config: \(BLAS.configuration)")
    if let advice = BLAS.advice { print("note: \(advice)") }
    let trials = quick ? 3 : 7

    print("\n-- GEMM, Float32, C = A·B (m×k · k×n), GFLOP/s: best of alternating rounds of medians")
    print(pad("m×n×k", 16) + pad("threads", 9) + pad("ours", 9) + pad("numpy", 9) + pad("ratio", 8))
    var ratios: [Double] = []
    for threads in [1, 2] {
      let compute = ComputeContext(threads: threads)
      // Alternate rounds of ours and numpy's and keep each side's best, so that a burst of load
      // from another tenant of this shared machine does not land on one side only.
      var ours = [Double](repeating: 0, count: shapes.count)
      var reference: NumpyResult?
      for _ in 0..<(quick ? 1 : 3) {
        for (i, s) in shapes.enumerated() { ours[i] = max(ours[i], gemmGflops(s.m, s.n, s.k, trials: trials, compute: compute)) }
        if let r = numpyGflops(threads: threads, trials: trials) {
          if var best = reference {
            best.gflops = zip(best.gflops, r.gflops).map { max($0, $1) }
            reference = best
          } else {
            reference = r
          }
        }
      }
      for (i, s) in shapes.enumerated() {
        let np = reference?.gflops[i]
        let ratio = np.map { ours[i] / $0 }
        if let ratio { ratios.append(ratio) }
        print(
          pad("\(s.m)×\(s.n)×\(s.k)", 16) + pad("\(threads)", 9) + pad(ours[i].fixed(1), 9)
            + pad(np.map { $0.fixed(1) } ?? "n/a", 9) + pad(ratio.map { $0.fixed(2) + "x" } ?? "n/a", 8))
      }
      if threads == 2, let reference {
        print("numpy \(reference.version), its OpenBLAS core: \(reference.core)")
      }
    }
    if let worst = ratios.min() {
      print("lowest ratio ours/numpy: \(worst.fixed(2))x (target ≥ 0.90x)")
    }

    for threads in [1, 2] {
      let compute = ComputeContext(threads: threads)
      print("\n-- Networks, Float32, batch 128, \(compute), median ms")
      print(
        pad("network", 12) + pad("forward", 10) + pad("backward", 10) + pad("Adam", 10)
          + pad("step", 10) + pad("images/s", 10) + pad("allocs/step", 13))
      var mlp = MLP<Float>.mlp(seed: 0)
      report("MLP", &mlp, trials: trials, compute: compute)
      var conv = ConvNetS<Float>.convNetS(seed: 0)
      report("ConvNet-S", &conv, trials: trials, compute: compute)
    }
    print("(step = forward + backward + Adam update; the loss gradient is a stand-in, d = embeddings;")
    print(" allocs/step counts every malloc in the process, Dispatch's among them when a step splits over threads.)")
  }

  static func gemmGflops(_ m: Int, _ n: Int, _ k: Int, trials: Int, compute: ComputeContext) -> Double {
    var rng = RandomSource(seed: 0)
    var a = Matrix<Float>(rows: m, columns: k), b = Matrix<Float>(rows: k, columns: n)
    a.apply { _ in rng.normal() }
    b.apply { _ in rng.normal() }
    var c = Matrix<Float>(rows: m, columns: n)
    let seconds = Timing.median(trials: trials) { gemm(a, b, into: &c, compute: compute) }
    return 2 * Double(m * n * k) / seconds / 1e9
  }

  struct NumpyResult {
    var version: String
    var core: String
    var gflops: [Double]
  }

  /// Runs Scripts/numpy_gemm.py with `threads` OpenBLAS threads and without this process's
  /// OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, which slow numpy's newer OpenBLAS.
  static func numpyGflops(threads: Int, trials: Int) -> NumpyResult? {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Scripts/numpy_gemm.py").standardized.path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    let shapeJSON = "[" + shapes.map { "[\($0.m),\($0.n),\($0.k)]" }.joined(separator: ",") + "]"
    process.arguments = ["python3", script, shapeJSON, "\(trials)"]
    var env = ProcessInfo.processInfo.environment
    env["OPENBLAS_CORETYPE"] = nil
    env["OPENBLAS_L2_SIZE"] = nil
    env["OPENBLAS_NUM_THREADS"] = "\(threads)"
    env["OMP_NUM_THREADS"] = "\(threads)"
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    do { try process.run() } catch {
      print("numpy reference unavailable: \(error)")
      return nil
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let results = json["results"] as? [[String: Any]]
    else {
      print("numpy reference failed (is numpy installed? python3 -m pip install numpy)")
      return nil
    }
    return NumpyResult(
      version: json["numpy"] as? String ?? "?", core: json["core"] as? String ?? "?",
      gflops: results.map { ($0["gflops"] as? Double) ?? .nan })
  }

  static func report<N: EmbeddingNetwork>(_ name: String, _ net: inout N, trials: Int, compute: ComputeContext)
  where N.Scalar == Float {
    var rng = RandomSource(seed: 1)
    var batch = Matrix<Float>(rows: 128, columns: net.inputFeatures)
    batch.apply { _ in rng.normal() }
    var gradient = Matrix<Float>()
    var optimizer = Adam<Float>(learningRate: 1e-4)
    optimizer.compute = compute

    func step() {
      net.forward(batch, mode: .training, compute: compute)
      gradient.assign(net.embeddings)
      net.backward(gradient, compute: compute)
      optimizer.step(&net)
    }
    for _ in 0..<3 { step() }  // warm-up: buffers and optimizer state reach their size
    let forward = Timing.median(trials: trials) { net.forward(batch, mode: .training, compute: compute) }
    gradient.assign(net.embeddings)
    let backward = Timing.median(trials: trials) { net.backward(gradient, compute: compute) }
    let update = Timing.median(trials: trials) { optimizer.step(&net) }
    let full = Timing.median(trials: trials) { step() }

    let steps = 20
    let before = dml_allocation_count()
    for _ in 0..<steps { step() }
    let allocations = Double(dml_allocation_count() - before) / Double(steps)
    var phases: String?
    if allocations > 0 {
      // Where they come from, phase by phase.
      var start = dml_allocation_count()
      net.forward(batch, mode: .training, compute: compute)
      let f = dml_allocation_count() - start
      start = dml_allocation_count()
      net.backward(gradient, compute: compute)
      let b = dml_allocation_count() - start
      start = dml_allocation_count()
      optimizer.step(&net)
      let u = dml_allocation_count() - start
      phases = "  allocations by phase: forward \(f), backward \(b), update \(u)"
    }

    print(
      pad(name, 12) + pad((forward * 1e3).fixed(2), 10) + pad((backward * 1e3).fixed(2), 10)
        + pad((update * 1e3).fixed(2), 10)
        + pad((full * 1e3).fixed(2), 10) + pad((128 / full).fixed(0), 10) + pad(allocations.fixed(2), 13))
    if let phases { print(phases) }
  }
}
