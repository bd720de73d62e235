import MetricLearning

/// Per-layer forward and backward times of ConvNet-S's layers at batch 128, to see where a step
/// goes.
enum LayerProfile {
  static func run() {
    print("== ConvNet-S layers, Float32, batch 128, \(ComputeContext.automatic.threads) threads, median ms")
    var rng = RandomSource(seed: 0)
    let s1 = ImageShape(height: 28, width: 28, channels: 1)
    let conv1 = Conv2D<Float>(input: s1, outChannels: 32, kernel: 3, padding: 1, rng: &rng)
    let pool1 = MaxPool2D<Float>(input: conv1.outputShape)
    let conv2 = Conv2D<Float>(input: pool1.outputShape, outChannels: 64, kernel: 3, padding: 1, rng: &rng)
    let pool2 = MaxPool2D<Float>(input: conv2.outputShape)
    time("conv1 1→32", conv1, inputs: s1.features)
    time("relu 28²×32", ReLU<Float>(), inputs: conv1.outputShape.features)
    time("pool1", pool1, inputs: conv1.outputShape.features)
    time("conv2 32→64", conv2, inputs: pool1.outputShape.features)
    time("pool2", pool2, inputs: conv2.outputShape.features)
    time("linear 3136→128", Linear<Float>(3136, 128, rng: &rng), inputs: 3136)
  }

  static func time<L: Layer>(_ name: String, _ layer: L, inputs: Int) where L.Scalar == Float {
    var l = layer
    var rng = RandomSource(seed: 1)
    var x = Matrix<Float>(rows: 128, columns: inputs)
    x.apply { _ in rng.normal() }
    var y = Matrix<Float>(), gx = Matrix<Float>()
    let f = Timing.median(trials: 5) { l.forward(x, into: &y, mode: .training, compute: .automatic) }
    let g = y
    let b = Timing.median(trials: 5) {
      l.backward(input: x, output: y, outputGradient: g, inputGradient: &gx, propagate: true, compute: .automatic)
    }
    print(pad(name, 18) + pad((f * 1e3).fixed(2), 10) + pad((b * 1e3).fixed(2), 10))
  }
}
