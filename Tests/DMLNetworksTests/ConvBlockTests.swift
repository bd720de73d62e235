import DMLNetworks
import DMLTesting
import Testing

/// The fused `ConvBlock` against the same layers chained (`Conv2D → ReLU → MaxPool2D`), on its
/// three paths: direct (one input channel, stride 1), ReLU and pooling fused over a GEMM
/// convolution, and the chained layers themselves (BatchNorm on).
@Suite("ConvBlock equals the chained layers")
struct ConvBlockTests {
  /// input channels, height, width, kernel, stride, padding, output channels, pool size, BatchNorm
  typealias Config = (Int, Int, Int, Int, Int, Int, Int, Int, Bool)
  static let configs: [Config] = [
    (1, 7, 6, 3, 1, 1, 10, 2, false),  // direct, odd height, 8 + 2 channels
    (1, 6, 6, 3, 1, 0, 9, 3, false),  // direct, no padding, 3×3 pooling
    (1, 8, 8, 5, 1, 2, 16, 2, false),  // direct, 5×5 kernel
    (2, 6, 5, 3, 1, 1, 9, 2, false),  // GEMM convolution, fused ReLU and pooling
    (1, 9, 9, 3, 2, 1, 4, 2, false),  // stride 2: GEMM convolution
    (2, 6, 6, 3, 1, 1, 3, 2, true),  // BatchNorm: the chained layers
  ]

  static func pair(_ config: Config, seed: UInt64) -> (ConvBlock<Double>, Chain<Chain<Chain<Conv2D<Double>, Optionally<BatchNorm<Double>>>, ReLU<Double>>, MaxPool2D<Double>>) {
    let (ic, h, w, k, s, p, oc, pool, bn) = config
    var rng = RandomSource(seed: seed)
    var conv = Conv2D<Double>(input: ImageShape(height: h, width: w, channels: ic), outChannels: oc, kernel: k, stride: s, padding: p, rng: &rng)
    conv.bias.value.apply { _ in rng.normal() * 0.3 }
    let block = ConvBlock(conv, batchNorm: bn, poolSize: pool)
    let chained = Chain(Chain(Chain(conv, Optionally(BatchNorm<Double>(channels: oc), enabled: bn)), ReLU<Double>()), MaxPool2D<Double>(input: conv.outputShape, size: pool))
    return (block, chained)
  }

  static func gradients<L: Layer>(_ layer: inout L) -> [Matrix<Double>] where L.Scalar == Double {
    var out: [Matrix<Double>] = []
    layer.forEachParameter { out.append($1.gradient) }
    return out
  }

  static func worst(_ a: Matrix<Double>, _ b: Matrix<Double>) -> Double {
    guard a.rows == b.rows && a.columns == b.columns else { return .infinity }
    var m = 0.0
    for i in 0..<a.rows { for j in 0..<a.columns { m = max(m, abs(a[i, j] - b[i, j])) } }
    return m
  }

  /// Forward, then backward with and without the input gradient, in one chunk and in two.
  static func compare(_ block: inout ConvBlock<Double>, _ chained: inout some Layer<Double>, input x: Matrix<Double>, seed: UInt64, _ what: String) {
    for chunks in [1, 2] {
      do {
        let compute = ComputeContext(threads: chunks, splitsAlways: true)
        var y1 = Matrix<Double>(), y2 = Matrix<Double>()
        block.forward(x, into: &y1, mode: .training, compute: compute)
        chained.forward(x, into: &y2, mode: .training, compute: compute)
        #expect(y1.rows == y2.rows && y1.columns == y2.columns, "\(what): output shape")
        #expect(worst(y1, y2) < 1e-12, "\(what), \(chunks) chunks: outputs differ by \(worst(y1, y2))")
        let g = randomInput(y1.rows, y1.columns, seed: seed)
        for propagate in [true, false] {
          var gx1 = Matrix<Double>(), gx2 = Matrix<Double>()
          block.backward(input: x, output: y1, outputGradient: g, inputGradient: &gx1, propagate: propagate, compute: compute)
          chained.backward(input: x, output: y2, outputGradient: g, inputGradient: &gx2, propagate: propagate, compute: compute)
          if propagate {
            #expect(worst(gx1, gx2) < 1e-12, "\(what), \(chunks) chunks: input gradients differ by \(worst(gx1, gx2))")
          }
          let (p1, p2) = (gradients(&block), gradients(&chained))
          #expect(p1.count == p2.count && p1.count >= 2, "\(what): parameter count")
          for (a, b) in zip(p1, p2) {
            #expect(worst(a, b) < 1e-12, "\(what), \(chunks) chunks, propagate \(propagate): parameter gradients differ by \(worst(a, b))")
          }
        }
      }
    }
  }

  @Test("outputs, input and parameter gradients match, in one chunk and in two", arguments: configs.indices)
  func matchesChain(index: Int) {
    let config = Self.configs[index]
    var (block, chained) = Self.pair(config, seed: UInt64(10 + index))
    let x = randomInput(3, config.0 * config.1 * config.2, seed: UInt64(20 + index))
    Self.compare(&block, &chained, input: x, seed: UInt64(30 + index), "config \(index)")
  }

  @Test("a tied window routes to its first position, and a non-positive one routes nowhere")
  func ties() {
    for config in [Self.configs[0], Self.configs[3]] {
      var (block, chained) = Self.pair(config, seed: 5)
      // Zero weights: every window position of a channel holds its bias, a tie; the negative
      // biases give all-negative windows.
      block.conv.weight.value.apply { _ in 0 }
      chained.first.first.first.weight.value.apply { _ in 0 }
      let x = randomInput(2, config.0 * config.1 * config.2, seed: 6)
      Self.compare(&block, &chained, input: x, seed: 7, "ties, \(config.0) input channels")
    }
  }

  @Test("passes the directional derivative check", arguments: configs.indices)
  func gradientCheck(index: Int) {
    let config = Self.configs[index]
    let (block, _) = Self.pair(config, seed: UInt64(40 + index))
    let x = randomInput(2, config.0 * config.1 * config.2, seed: UInt64(50 + index))
    expectPasses(GradientCheck.layer(block, input: x), "ConvBlock config \(index)")
  }
}
