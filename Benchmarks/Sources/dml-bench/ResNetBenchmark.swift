import DMLNetworks
import Foundation

/// `dml-bench resnet [--batch 32] [--sizes 112,224] [--threads 2]
/// [--networks resnet18,resnet50] [--trials 3]`: forward + backward of ResNet-18
/// and ResNet-50 (training mode, embedding head of 512) per batch, median seconds, images/s and
/// GFLOP/s (torchvision's multiply-add counts × 2 × 3 for forward and backward);
/// Benchmarks/Scripts/torch_resnet.py measures torch the same way.
enum ResNetBenchmark {
  static func run(_ args: [String]) {
    func option(_ name: String) -> String? { args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
    let batch = option("--batch").flatMap(Int.init) ?? 32
    let sizes = (option("--sizes") ?? "112,224").split(separator: ",").compactMap { Int($0) }
    let threads = option("--threads").flatMap(Int.init) ?? 2
    let networks = Set((option("--networks") ?? "resnet18,resnet50").split(separator: ",").map(String.init))
    let trials = option("--trials").flatMap(Int.init) ?? 3
    let compute = ComputeContext(threads: threads)
    print("network,size,batch,seconds,images_per_second,gflops")
    for size in sizes {
      let shape = ImageShape(height: size, width: size, channels: 3)
      var rng = RandomSource(seed: 1)
      let x = Matrix<Float>(rows: batch, columns: shape.features, elements: (0..<(batch * shape.features)).map { _ in rng.uniform(Float.self) - 0.5 })
      let g = Matrix<Float>(rows: batch, columns: 512, elements: (0..<(batch * 512)).map { _ in rng.uniform(Float.self) - 0.5 })
      // torchvision's multiply-adds at 224×224 (1.82 G and 4.11 G), scaled by the pixels.
      let scale = Double(size * size) / (224 * 224)
      if networks.contains("resnet18") {
      var r18: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(.resnet18, input: shape, embedding: 512, normalize: false)
      report("resnet18", size, batch, 1.82e9 * scale, trials: trials) {
        r18.forward(x, mode: .training, compute: compute)
        r18.backward(g, compute: compute)
      }
      }
      if networks.contains("resnet50") {
      var r50: Network<ResNetBody<Bottleneck<Float>>> = ResNetBuilder.bottleneckNetwork(.resnet50, input: shape, embedding: 512, normalize: false)
      report("resnet50", size, batch, 4.11e9 * scale, trials: trials) {
        r50.forward(x, mode: .training, compute: compute)
        r50.backward(g, compute: compute)
      }
      }
    }
  }

  static func report(_ name: String, _ size: Int, _ batch: Int, _ macsPerImage: Double, trials: Int, _ body: () -> Void) {
    let seconds = Timing.median(trials: trials, trialSeconds: 0.01, body)
    let flops = macsPerImage * 2 * 3 * Double(batch)
    print("\(name),\(size),\(batch),\(seconds.fixed(3)),\((Double(batch) / seconds).fixed(1)),\((flops / seconds / 1e9).fixed(1))")
  }
}
