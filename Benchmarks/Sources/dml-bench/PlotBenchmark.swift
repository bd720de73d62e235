import Foundation
import MetricLearning

/// Issue 9: t-SNE (Barnes-Hut, theta 0.5, 1,000 iterations) of 10,000 points of dimension 128
/// must finish in under a minute on 2 cores. The points are the 10,000 Fashion-MNIST test images
/// embedded by an untrained MLP (784 → 512 → 128): realistic structure, no training needed.
/// scikit-learn's Barnes-Hut t-SNE runs on the same points in the same run, with the same
/// settings (perplexity 30, PCA start, learning rate "auto", exaggeration 12, 1,000 iterations).
enum PlotBenchmark {
  static func run() {
    print("== t-SNE of 10,000 × 128 (Fashion-MNIST test set through an untrained MLP), \(TSNE().threads) threads")
    do {
      let test = try FashionMNIST.load(train: false)
      var net: MLP<Float> = .mlp(inputFeatures: 784, seed: 0)
      let x = net.embed(test.features)
      var t = Timing.now()
      let p = try TSNE().affinities(x)
      let affinitySeconds = Double(Timing.now() - t) / 1e9
      t = Timing.now()
      let y = try TSNE().embed(x)
      let seconds = Double(Timing.now() - t) / 1e9
      print("affinities (k-NN of 90, perplexity 30): \(affinitySeconds.fixed(2)) s, \(p.values.count) non-zeros")
      print("whole t-SNE: \(seconds.fixed(1)) s (target < 60 s); KL divergence \(TSNE.divergence(y, p).fixed(3))")
      let file = FileManager.default.temporaryDirectory.appendingPathComponent("dml-bench-tsne-\(getpid()).npy").path
      try NPY.write(x, to: file)
      defer { try? FileManager.default.removeItem(atPath: file) }
      if let reference = sklearn(file, threads: TSNE().threads) {
        print("scikit-learn \(reference.version) TSNE(barnes_hut): \(reference.seconds.fixed(1)) s, KL divergence \(reference.kl.fixed(3))"
          + " → ours is \((reference.seconds / seconds).fixed(2))x its speed")
      }
      t = Timing.now()
      _ = try PCA(fitting: x, count: 2).project(x)
      print("PCA of the same points: \((Double(Timing.now() - t) / 1e6).fixed(0)) ms")
    } catch {
      print("t-SNE benchmark failed: \(error)")
    }
  }

  /// Runs Scripts/sklearn_tsne.py on the points in `file`.
  static func sklearn(_ file: String, threads: Int) -> (version: String, seconds: Double, kl: Double)? {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Scripts/sklearn_tsne.py").standardized.path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, file, "\(threads)"]
    var env = ProcessInfo.processInfo.environment
    env["OPENBLAS_CORETYPE"] = nil
    env["OMP_NUM_THREADS"] = "\(threads)"
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let seconds = json["seconds"] as? Double, let kl = json["kl"] as? Double
    else {
      print("scikit-learn reference failed (python3 -m pip install scikit-learn)")
      return nil
    }
    return (json["sklearn"] as? String ?? "?", seconds, kl)
  }
}
