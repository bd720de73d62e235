import DMLNetworks
import DMLTesting
import Testing

func randomInput(_ rows: Int, _ columns: Int, seed: UInt64) -> Matrix<Double> {
  var rng = RandomSource(seed: seed)
  var m = Matrix<Double>(rows: rows, columns: columns)
  m.apply { _ in rng.normal() }
  return m
}

/// Asserts that a check compared something non-trivial and agreed to `tolerance`.
func expectPasses(
  _ report: GradientCheckReport, tolerance: Double = 1e-6, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(report.checked > 0, "\(what): nothing compared", sourceLocation: sourceLocation)
  #expect(report.maxMagnitude > 1e-3, "\(what): all derivatives ~0", sourceLocation: sourceLocation)
  #expect(report.maxError < tolerance, "\(what): \(report)", sourceLocation: sourceLocation)
}

@Suite("Layer gradients against central differences (Double)")
struct LayerGradientTests {
  static let image = ImageShape(height: 6, width: 5, channels: 2)

  @Test func linear() {
    var rng = RandomSource(seed: 1)
    let layer = Linear<Double>(6, 4, rng: &rng)
    expectPasses(GradientCheck.layer(layer, input: randomInput(5, 6, seed: 2)), "Linear")
  }

  @Test func relu() {
    expectPasses(GradientCheck.layer(ReLU<Double>(), input: randomInput(4, 7, seed: 3)), "ReLU")
  }

  @Test func leakyReLU() {
    expectPasses(
      GradientCheck.layer(LeakyReLU<Double>(slope: 0.1), input: randomInput(4, 7, seed: 4)),
      "LeakyReLU")
  }

  @Test func gelu() {
    expectPasses(GradientCheck.layer(GELU<Double>(), input: randomInput(4, 7, seed: 5)), "GELU")
  }

  @Test(
    "Conv2D", arguments: [(3, 1, 1), (3, 2, 1), (2, 1, 0), (3, 2, 0)])
  func conv(config: (kernel: Int, stride: Int, padding: Int)) {
    var rng = RandomSource(seed: 6)
    let layer = Conv2D<Double>(
      input: Self.image, outChannels: 3, kernel: config.kernel, stride: config.stride,
      padding: config.padding, rng: &rng)
    expectPasses(
      GradientCheck.layer(layer, input: randomInput(2, Self.image.features, seed: 7)),
      "Conv2D \(config)")
  }

  /// 24 × 24 outputs are 576 patch rows, more than a block's 512: each image is its own block, so
  /// a chunk of several images accumulates its parameter gradients block by block.
  @Test("Conv2D over several blocks per chunk: the batch's gradients are the images' summed")
  func convBlocks() {
    var rng = RandomSource(seed: 11)
    let shape = ImageShape(height: 24, width: 24, channels: 2)
    let layer = Conv2D<Double>(input: shape, outChannels: 3, kernel: 3, padding: 1, rng: &rng)
    expectPasses(GradientCheck.layer(layer, input: randomInput(3, shape.features, seed: 12)), "Conv2D, 3 blocks")
    let x = randomInput(4, shape.features, seed: 13)
    let g = randomInput(4, 24 * 24 * 3, seed: 14)
    // One image at a time: its output, input gradient and parameter gradients.
    var single = layer
    var outputs: [[Double]] = [], inputGradients: [[Double]] = [], weightSum = Matrix<Double>(rows: 3, columns: 18), biasSum = Matrix<Double>(rows: 1, columns: 3)
    for i in 0..<4 {
      let xi = Matrix(rows: 1, columns: shape.features, elements: (0..<shape.features).map { x[i, $0] })
      let gi = Matrix(rows: 1, columns: g.columns, elements: (0..<g.columns).map { g[i, $0] })
      var y = Matrix<Double>(), gx = Matrix<Double>()
      single.forward(xi, into: &y, mode: .training, compute: .automatic)
      single.backward(input: xi, output: y, outputGradient: gi, inputGradient: &gx, propagate: true, compute: .automatic)
      outputs.append((0..<y.columns).map { y[0, $0] })
      inputGradients.append((0..<gx.columns).map { gx[0, $0] })
      for r in 0..<3 { for c in 0..<18 { weightSum[r, c] += single.weight.gradient[r, c] } }
      for c in 0..<3 { biasSum[0, c] += single.bias.gradient[0, c] }
    }
    for chunks in [1, 2] {
      do {
        let compute = ComputeContext(threads: chunks, splitsAlways: true)
        var batch = layer
        var y = Matrix<Double>(), gx = Matrix<Double>()
        batch.forward(x, into: &y, mode: .training, compute: compute)
        batch.backward(input: x, output: y, outputGradient: g, inputGradient: &gx, propagate: true, compute: compute)
        var worst = 0.0
        for i in 0..<4 {
          for j in 0..<y.columns { worst = max(worst, abs(y[i, j] - outputs[i][j])) }
          for j in 0..<gx.columns { worst = max(worst, abs(gx[i, j] - inputGradients[i][j])) }
        }
        for r in 0..<3 { for c in 0..<18 { worst = max(worst, abs(batch.weight.gradient[r, c] - weightSum[r, c])) } }
        for c in 0..<3 { worst = max(worst, abs(batch.bias.gradient[0, c] - biasSum[0, c])) }
        #expect(worst < 1e-10, "\(chunks) chunks: off by \(worst)")
        #expect(abs(batch.weight.gradient[0, 0]) > 1e-3, "weight gradient is ~0")
      }
    }
  }

  @Test(
    "Conv2D with one input channel", arguments: [(3, 1, 1), (3, 2, 1), (2, 1, 0), (3, 2, 0), (1, 1, 0), (1, 2, 0)])
  func convSingleChannel(config: (kernel: Int, stride: Int, padding: Int)) {
    var rng = RandomSource(seed: 9)
    let layer = Conv2D<Double>(
      input: ImageShape(height: 6, width: 5, channels: 1), outChannels: 3, kernel: config.kernel,
      stride: config.stride, padding: config.padding, rng: &rng)
    expectPasses(GradientCheck.layer(layer, input: randomInput(2, 30, seed: 10)), "Conv2D 1 channel \(config)")
  }

  @Test("Conv2D's output is the convolution, with one input channel and with two")
  func convForward() {
    for channels in [1, 2] {
      // (1, 1, 0) is pointwise: the input is its own column matrix, without im2col.
      for (k, s, p) in [(3, 1, 1), (3, 2, 0), (2, 1, 0), (1, 1, 0), (1, 2, 0)] {
        var rng = RandomSource(seed: 11)
        let shape = ImageShape(height: 6, width: 5, channels: channels)
        var layer = Conv2D<Double>(input: shape, outChannels: 3, kernel: k, stride: s, padding: p, rng: &rng)
        layer.bias.value = Matrix([[0.1, -0.2, 0.3]])
        let x = randomInput(2, shape.features, seed: 12)
        var y = Matrix<Double>()
        layer.forward(x, into: &y, mode: .training, compute: .automatic)
        let out = layer.outputShape
        var maxError = 0.0
        for b in 0..<2 {
          for oy in 0..<out.height {
            for ox in 0..<out.width {
              for o in 0..<3 {
                var expected = layer.bias.value[0, o]
                for ky in 0..<k {
                  for kx in 0..<k {
                    let iy = oy * s - p + ky, ix = ox * s - p + kx
                    guard iy >= 0 && iy < 6 && ix >= 0 && ix < 5 else { continue }
                    for c in 0..<channels {
                      expected += x[b, (iy * 5 + ix) * channels + c] * layer.weight.value[o, (ky * k + kx) * channels + c]
                    }
                  }
                }
                maxError = max(maxError, abs(y[b, (oy * out.width + ox) * 3 + o] - expected))
              }
            }
          }
        }
        #expect(y.rows == 2 && y.columns == out.features)
        #expect(maxError < 1e-12, "channels \(channels), kernel \(k), stride \(s), padding \(p): \(maxError)")
      }
    }
  }

  @Test func maxPool() {
    let layer = MaxPool2D<Double>(input: ImageShape(height: 6, width: 4, channels: 3), size: 2)
    expectPasses(GradientCheck.layer(layer, input: randomInput(2, 72, seed: 8)), "MaxPool2D")
  }

  @Test("max pooling over 16 channels (the vector path), with ties in every lane")
  func maxPoolWide() {
    let layer = MaxPool2D<Double>(input: ImageShape(height: 4, width: 4, channels: 16), size: 2)
    expectPasses(GradientCheck.layer(layer, input: randomInput(2, 256, seed: 20)), "MaxPool2D 16 channels")
    var pool = layer
    let zeros = Matrix<Double>(rows: 1, columns: 256)  // all tied: each window's first pixel wins
    var y = Matrix<Double>(), gx = Matrix<Double>()
    pool.forward(zeros, into: &y, mode: .training, compute: .automatic)
    pool.backward(input: zeros, output: y, outputGradient: Matrix(rows: 1, columns: 64, repeating: 1), inputGradient: &gx, propagate: true, compute: .automatic)
    for py in 0..<4 {
      for px in 0..<4 {
        let first = py % 2 == 0 && px % 2 == 0
        #expect((0..<16).allSatisfy { gx[0, (py * 4 + px) * 16 + $0] == (first ? 1 : 0) }, "pixel \(py),\(px)")
      }
    }
  }

  @Test func maxPoolOverlapping() {
    let layer = MaxPool2D<Double>(input: ImageShape(height: 5, width: 5, channels: 2), size: 3, stride: 2)
    expectPasses(GradientCheck.layer(layer, input: randomInput(2, 50, seed: 9)), "MaxPool2D 3/2")
  }

  @Test("max pooling routes the gradient to the first maximum of a window, as PyTorch does")
  func maxPoolTies() {
    var pool = MaxPool2D<Double>(input: ImageShape(height: 2, width: 4, channels: 1), size: 2)
    // Windows: [1 3 / 3 0] (tie between positions 1 and 2), [5 5 / 5 5] (all tied).
    let x = Matrix<Double>([[1, 3, 5, 5, 3, 0, 5, 5]])
    var y = Matrix<Double>(), gx = Matrix<Double>()
    pool.forward(x, into: &y, mode: .training, compute: .automatic)
    #expect(y == Matrix([[3, 5]]))
    pool.backward(
      input: x, output: y, outputGradient: Matrix([[10, 20]]), inputGradient: &gx, propagate: true, compute: .automatic)
    #expect(gx == Matrix([[0, 10, 20, 0, 0, 0, 0, 0]]))
  }

  @Test func avgPool() {
    let layer = AvgPool2D<Double>(input: ImageShape(height: 6, width: 4, channels: 3), size: 2)
    expectPasses(GradientCheck.layer(layer, input: randomInput(2, 72, seed: 10)), "AvgPool2D")
  }

  @Test func globalAvgPool() {
    let layer = GlobalAvgPool<Double>(input: ImageShape(height: 3, width: 4, channels: 5))
    expectPasses(GradientCheck.layer(layer, input: randomInput(3, 60, seed: 11)), "GlobalAvgPool")
  }

  @Test("BatchNorm 1-D and 2-D, training and inference", arguments: [ForwardMode.training, .inference])
  func batchNorm(mode: ForwardMode) {
    var bn1 = BatchNorm<Double>(channels: 5)
    // Non-trivial affine parameters and running statistics.
    bn1.scale.value.apply { _ in 1.5 }
    bn1.shift.value.apply { _ in -0.3 }
    bn1.runningMean = [0.1, -0.2, 0.3, 0, 0.5]
    bn1.runningVariance = [1.2, 0.8, 2, 1, 0.5]
    expectPasses(GradientCheck.layer(bn1, input: randomInput(6, 5, seed: 12), mode: mode), "BatchNorm1d")
    let bn2 = BatchNorm<Double>(channels: 3)
    expectPasses(GradientCheck.layer(bn2, input: randomInput(2, 4 * 4 * 3, seed: 13), mode: mode), "BatchNorm2d")
  }

  @Test("BatchNorm on an empty batch: an empty output and zero parameter gradients")
  func batchNormEmpty() {
    var bn = BatchNorm<Double>(channels: 3)
    var y = Matrix<Double>(rows: 2, columns: 2, repeating: 7), gx = Matrix<Double>()
    let empty = Matrix<Double>(rows: 0, columns: 12)
    bn.forward(empty, into: &y, mode: .inference, compute: .automatic)
    #expect(y.rows == 0 && y.columns == 12)
    bn.scale.gradient = Matrix(rows: 1, columns: 3, repeating: 5)
    bn.backward(input: empty, output: y, outputGradient: empty, inputGradient: &gx, propagate: true, compute: .automatic)
    #expect(gx.rows == 0 && bn.scale.gradient.elements == [0, 0, 0] && bn.shift.gradient.elements == [0, 0, 0])
  }

  @Test("BatchNorm normalises each channel and tracks running statistics like PyTorch")
  func batchNormStatistics() {
    var bn = BatchNorm<Double>(channels: 2, momentum: 0.1)
    let x = Matrix<Double>([[1, 10], [2, 20], [3, 30], [6, 40]])
    let y = bn(x, mode: .training)
    for c in 0..<2 {
      let column = (0..<4).map { y[$0, c] }
      let mean = column.reduce(0, +) / 4
      let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
      #expect(abs(mean) < 1e-12)
      #expect(abs(variance - 1) < 1e-4)  // ε = 1e-5 in the denominator
    }
    // Running mean 0.9·0 + 0.1·3 = 0.3; unbiased variance of (1,2,3,6) is 14/3.
    #expect(abs(bn.runningMean[0] - 0.3) < 1e-15)
    #expect(abs(bn.runningVariance[0] - (0.9 + 0.1 * 14.0 / 3.0)) < 1e-15)
  }

  @Test func dropout() {
    var rng = RandomSource(seed: 14)
    let layer = Dropout<Double>(probability: 0.3, rng: &rng)
    expectPasses(GradientCheck.layer(layer, input: randomInput(4, 10, seed: 15)), "Dropout")
    var d = layer
    let x = Matrix<Double>(rows: 100, columns: 100, repeating: 1)
    let y = d(x, mode: .training)
    let kept = y.elements.filter { $0 != 0 }
    #expect(abs(Double(kept.count) / 10000 - 0.7) < 0.03)
    #expect(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-12 })
    #expect(d(x, mode: .inference) == x)
  }

  @Test func l2Normalize() {
    expectPasses(GradientCheck.layer(L2Normalize<Double>(), input: randomInput(4, 6, seed: 16)), "L2Normalize")
    var l = L2Normalize<Double>()
    let y = l(Matrix([[3, 4], [0, 0]]))
    #expect(y == Matrix([[0.6, 0.8], [0, 0]]))
  }

  @Test("zero rows keep a finite L2 gradient")
  func l2NormalizeZero() {
    var l = L2Normalize<Double>()
    let x = Matrix<Double>([[0, 0, 0]])
    var y = Matrix<Double>(), g = Matrix<Double>()
    l.forward(x, into: &y, mode: .training, compute: .automatic)
    l.backward(input: x, output: y, outputGradient: Matrix([[1, 2, 3]]), inputGradient: &g, propagate: true, compute: .automatic)
    #expect(g.isFinite && y.isFinite)
  }

  @Test("composition: Chain, Stack, Optionally, Sequential, Flatten")
  func composition() {
    var rng = RandomSource(seed: 17)
    let body = sequential {
      Linear<Double>(5, 8, rng: &rng)
      GELU<Double>()
      Stack([Linear<Double>(8, 8, rng: &rng), Linear<Double>(8, 6, rng: &rng)])
      Optionally(BatchNorm<Double>(channels: 6), enabled: true)
      Flatten<Double>()
      Optionally(LeakyReLU<Double>(), enabled: false)
      L2Normalize<Double>()
    }
    #expect(body.outputFeatures(forInput: 5) == 6)
    #expect(body.parameters.count == 10)  // BatchNorm adds its running statistics, untrained
    #expect(body.parameters.filter(\.trainable).count == 8)
    expectPasses(GradientCheck.layer(body, input: randomInput(4, 5, seed: 18)), "Sequential")
    expectPasses(GradientCheck.layer(Stack<ReLU<Double>>([]), input: randomInput(2, 3, seed: 19)), "empty Stack")
    // An optional pair of layers takes two positions of the sequence, so the next layer is 3.
    var numbered = sequential {
      Linear<Double>(5, 6, rng: &rng)
      Optionally(Chain(Linear<Double>(6, 6, rng: &rng), ReLU<Double>()), enabled: true)
      Linear<Double>(6, 2, rng: &rng)
    }
    var names: [String] = []
    numbered.forEachParameter { name, _ in names.append(name) }
    #expect(names == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"])
  }

  @Test("Residual: x + body(x), gradients through both paths, the body's names under `body`")
  func residual() {
    var rng = RandomSource(seed: 23)
    let block = Residual {
      Linear<Double>(6, 9, rng: &rng)
      ReLU<Double>()
      Linear<Double>(9, 6, rng: &rng)
    }
    expectPasses(GradientCheck.layer(block, input: randomInput(5, 6, seed: 24)), "Residual")
    // In a sequence, as element 1: `1.body.0.weight`, … (PyTorch's names for such a module).
    var net = sequential {
      Linear<Double>(4, 6, rng: &rng)
      block
    }
    var names: [String] = []
    net.forEachParameter { name, _ in names.append(name) }
    #expect(names == ["0.weight", "0.bias", "1.body.0.weight", "1.body.0.bias", "1.body.2.weight", "1.body.2.bias"])
    // The output is the input plus the body's output, exactly.
    var b = block, body = block.body
    let x = randomInput(3, 6, seed: 25)
    var y = Matrix<Double>(), f = Matrix<Double>()
    b.forward(x, into: &y, mode: .inference, compute: .automatic)
    body.forward(x, into: &f, mode: .inference, compute: .automatic)
    f.add(x)
    #expect(y == f)
    expectPasses(GradientCheck.layer(net, input: randomInput(4, 4, seed: 26)), "Linear then Residual")
  }
}

/// The layers that split a batch over the cores (`BatchParallelism`) give what the unsplit pass
/// gives: the same output and input gradient, and the same parameter gradients up to the order
/// of the per-chunk sums. Three uneven chunks of seven images, forced, so that the split runs
/// whatever this machine's thread count.
@Suite("Layers split over the batch agree with the unsplit pass (Double)")
struct BatchSplitTests {
  struct Pass: Equatable {
    var output = Matrix<Double>(), inputGradient = Matrix<Double>()
    var parameterGradients: [Matrix<Double>] = []
  }

  static func run<L: Layer>(_ layer: L, input: Matrix<Double>, chunks: Int) -> Pass
  where L.Scalar == Double {
    let compute = ComputeContext(threads: chunks, splitsAlways: true)
    var l = layer
    var pass = Pass()
    l.forward(input, into: &pass.output, mode: .training, compute: compute)
    var seed = RandomSource(seed: 31)
    var g = Matrix<Double>(rows: pass.output.rows, columns: pass.output.columns)
    g.apply { _ in seed.normal() }
    l.backward(input: input, output: pass.output, outputGradient: g, inputGradient: &pass.inputGradient, propagate: true, compute: compute)
    l.forEachParameter { pass.parameterGradients.append($1.gradient) }
    return pass
  }

  static func maxDifference(_ a: Matrix<Double>, _ b: Matrix<Double>) -> Double {
    precondition(a.rows == b.rows && a.columns == b.columns, "shapes differ")
    var d = 0.0
    for i in 0..<a.rows { for j in 0..<a.columns { d = max(d, abs(a[i, j] - b[i, j])) } }
    return d
  }

  @Test(
    "Linear, Conv2D, ReLU, MaxPool2D, BatchNorm and residual blocks: 1 chunk against 3",
    arguments: ["linear", "conv", "conv1", "pointwise", "relu", "pool", "batchnorm", "residual"])
  func agree(layerName: String) {
    var rng = RandomSource(seed: 30)
    let shape = ImageShape(height: 8, width: 6, channels: 3)
    let x = randomInput(7, shape.features, seed: 32)
    let (one, three): (Pass, Pass)
    switch layerName {
    case "conv":
      let conv = Conv2D<Double>(input: shape, outChannels: 5, kernel: 3, padding: 1, rng: &rng)
      (one, three) = (Self.run(conv, input: x, chunks: 1), Self.run(conv, input: x, chunks: 3))
    case "conv1":
      let single = ImageShape(height: 8, width: 6, channels: 1)
      let conv = Conv2D<Double>(input: single, outChannels: 4, kernel: 3, stride: 2, rng: &rng)
      let x1 = randomInput(7, single.features, seed: 33)
      (one, three) = (Self.run(conv, input: x1, chunks: 1), Self.run(conv, input: x1, chunks: 3))
    case "pointwise":
      let conv = Conv2D<Double>(input: shape, outChannels: 5, kernel: 1, rng: &rng)
      (one, three) = (Self.run(conv, input: x, chunks: 1), Self.run(conv, input: x, chunks: 3))
    case "batchnorm":
      // 40 channels: three pieces of channels (16, 16, 8), each summed over every row.
      let wide = ImageShape(height: 2, width: 3, channels: 40)
      let xw = randomInput(7, wide.features, seed: 34)
      let bn = BatchNorm<Double>(channels: 40)
      (one, three) = (Self.run(bn, input: xw, chunks: 1), Self.run(bn, input: xw, chunks: 3))
      // The same sums in the same order: equal to the last bit.
      #expect(one == three, "BatchNorm depends on the thread count")
    case "residual":
      // A BasicBlock with the projection: the sum and rectifier, and BatchNorm, split too.
      let (block, _) = ResNetBuilder.basicBlock(input: shape, planes: 4, stride: 2, rng: &rng) as (BasicBlock<Double>, ImageShape)
      (one, three) = (Self.run(block, input: x, chunks: 1), Self.run(block, input: x, chunks: 3))
    case "linear":
      let linear = Linear<Double>(shape.features, 6, rng: &rng)
      (one, three) = (Self.run(linear, input: x, chunks: 1), Self.run(linear, input: x, chunks: 3))
    case "relu":
      (one, three) = (Self.run(ReLU<Double>(), input: x, chunks: 1), Self.run(ReLU<Double>(), input: x, chunks: 3))
    default:
      let pool = MaxPool2D<Double>(input: shape, size: 2)
      (one, three) = (Self.run(pool, input: x, chunks: 1), Self.run(pool, input: x, chunks: 3))
    }
    #expect(one.output.rows == 7 && one.output.columns > 0)
    #expect(Self.maxDifference(one.output, three.output) < 1e-12, "\(layerName): outputs differ")
    #expect(Self.maxDifference(one.inputGradient, three.inputGradient) < 1e-12, "\(layerName): input gradients differ")
    #expect(one.parameterGradients.count == three.parameterGradients.count)
    for (a, b) in zip(one.parameterGradients, three.parameterGradients) {
      #expect(Self.maxDifference(a, b) < 1e-12, "\(layerName): parameter gradients differ")
    }
    // Not vacuous: the passes computed something.
    #expect(one.output.withUnsafeBufferPointer { $0.contains { $0 != 0 } })
    #expect(one.inputGradient.withUnsafeBufferPointer { $0.contains { $0 != 0 } })
  }
}
