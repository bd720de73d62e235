import DMLNetworks
import DMLTraining
import Foundation
import Testing

/// A container with one parameter, for driving optimizers by hand.
struct Single: ParameterContainer {
  typealias Scalar = Double
  var p: Parameter<Double>
  init(_ values: [Double], decays: Bool = true, group: Int = 0) {
    p = Parameter(
      name: "w", shape: [values.count], value: Matrix(rows: 1, columns: values.count, elements: values),
      group: group, decays: decays)
  }
  mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Double { visitor.visit(&p) }
  mutating func setGradient(_ g: [Double]) {
    p.gradient = Matrix(rows: 1, columns: g.count, elements: g)
  }
  var values: [Double] { p.value.elements }
}

@Suite("Optimizers follow PyTorch's update rules")
struct OptimizerTests {
  // Reference trajectories by hand from torch.optim's documented algorithms.
  @Test("SGD, plain and with momentum, Nesterov and weight decay")
  func sgd() {
    var plain = SGD<Double>(learningRate: 0.1)
    var c = Single([1, -2])
    c.setGradient([0.5, 1])
    plain.step(&c)
    #expect(c.values == [1 - 0.05, -2 - 0.1] as [Double])

    var momentum = SGD<Double>(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01)
    var m = Single([1])
    var b = 0.0, theta = 1.0
    for (i, g) in [0.5, -0.2, 0.3].enumerated() {
      m.setGradient([g])
      momentum.step(&m)
      let d = g + 0.01 * theta
      b = i == 0 ? d : 0.9 * b + d
      theta -= 0.1 * b
      #expect(abs(m.values[0] - theta) < 1e-15)
    }

    var nesterov = SGD<Double>(learningRate: 0.1, momentum: 0.9, nesterov: true)
    var n = Single([1])
    b = 0
    theta = 1
    for (i, g) in [0.5, -0.2, 0.3].enumerated() {
      n.setGradient([g])
      nesterov.step(&n)
      b = i == 0 ? g : 0.9 * b + g
      theta -= 0.1 * (g + 0.9 * b)
      #expect(abs(n.values[0] - theta) < 1e-15)
    }
  }

  @Test("a frozen parameter (a warm-up's backbone) is held still by SGD and Adam, and learns again when thawed")
  func frozen() {
    var sgd = SGD<Double>(learningRate: 0.1, momentum: 0.9)
    var adam = Adam<Double>(learningRate: 0.01)
    var a = Single([0.5]), b = Single([0.5])
    a.p.frozen = true
    b.p.frozen = true
    for _ in 0..<3 {
      a.setGradient([0.2])
      b.setGradient([0.2])
      sgd.step(&a)
      adam.step(&b)
    }
    #expect(a.values == [0.5] && b.values == [0.5])
    #expect(a.p.trainable && b.p.trainable)
    a.p.frozen = false
    b.p.frozen = false
    sgd.step(&a)
    adam.step(&b)
    // Thawed: the first step of each, as if the frozen steps had not happened.
    #expect(abs(a.values[0] - (0.5 - 0.1 * 0.2)) < 1e-15)
    #expect(abs(b.values[0] - (0.5 - 0.01)) < 1e-9)
  }

  @Test("Adam and AdamW trajectories", arguments: [false, true])
  func adam(decoupled: Bool) {
    var opt = Adam<Double>(learningRate: 0.01, weightDecay: 0.1, decoupled: decoupled)
    var c = Single([0.7])
    var m = 0.0, v = 0.0, theta = 0.7
    for (t, g) in [0.3, -0.1, 0.25, 0.05].enumerated() {
      c.setGradient([g])
      opt.step(&c)
      var grad = g
      if decoupled { theta *= 1 - 0.01 * 0.1 } else { grad += 0.1 * theta }
      m = 0.9 * m + 0.1 * grad
      v = 0.999 * v + 0.001 * grad * grad
      let step = Double(t + 1)
      let mHat = m / (1 - pow(0.9, step)), vHat = v / (1 - pow(0.999, step))
      theta -= 0.01 * mHat / (vHat.squareRoot() + 1e-8)
      #expect(abs(c.values[0] - theta) < 1e-12, "step \(t)")
    }
    #expect(c.values[0] != 0.7)
  }

  @Test(
    "Adam's chunked update equals the element-wise rule on every element, chunk tails included, on 1 core or split over 3",
    arguments: [false, true], [1, 3])
  func adamChunks(decoupled: Bool, cores: Int) {
    // 1,300 elements: two whole chunks of 512 and a tail; some gradients are zero. Split over 3
    // (forced; 1,300 elements are below the size that splits on its own), every piece has a tail.
    let n = 1300
    var rng = RandomSource(seed: 11)
    let start = (0..<n).map { _ in rng.normal(Double.self) }
    var opt = Adam<Double>(learningRate: 0.003, weightDecay: 0.05, decoupled: decoupled)
    opt.compute = ComputeContext(threads: cores, splitsAlways: true)
    var c = Single(start)
    var theta = start, m = [Double](repeating: 0, count: n), v = [Double](repeating: 0, count: n)
    for t in 1...3 {
      let g = (0..<n).map { i in i % 7 == 0 ? 0 : rng.normal(Double.self) }
      c.setGradient(g)
      opt.step(&c)
      let stepSize = 0.003 / (1 - pow(0.9, Double(t))), rootBias2 = (1 - pow(0.999, Double(t))).squareRoot()
      for i in 0..<n {
        var grad = g[i]
        if decoupled { theta[i] *= 1 - 0.003 * 0.05 } else { grad += 0.05 * theta[i] }
        m[i] = 0.9 * m[i] + (1 - 0.9) * grad
        v[i] = 0.999 * v[i] + (1 - 0.999) * grad * grad
        theta[i] -= stepSize * m[i] / (v[i].squareRoot() / rootBias2 + 1e-8)
      }
      let worst = zip(c.values, theta).map { abs($0 - $1) }.max()!
      #expect(worst < 1e-14, "step \(t): worst difference \(worst)")
    }
  }

  @Test("parameter groups get their own learning rate; non-decaying parameters skip decay")
  func groups() {
    var opt = SGD<Double>(
      learningRate: 0.1, weightDecay: 0.5,
      groups: [ParameterGroup(), ParameterGroup(learningRate: 1.0)])
    var base = Single([1], decays: false)
    var proxies = Single([1], group: 1)
    base.setGradient([1])
    proxies.setGradient([1])
    opt.step(&base, scope: "base")
    opt.step(&proxies, scope: "proxies")
    #expect(base.values == [0.9])  // no decay: 1 − 0.1·1
    #expect(proxies.values == [-0.5])  // 1 − 1.0·(1 + 0.5·1)
    opt.learningRateScale = 0.5
    base.setGradient([1])
    opt.step(&base)
    #expect(abs(base.values[0] - 0.85) < 1e-15)
  }

  @Test("schedules: constant, step, cosine, warm-up")
  func schedules() {
    #expect(ConstantSchedule().factor(at: 100) == 1)
    let step = StepSchedule(stepSize: 10, gamma: 0.5)
    #expect(step.factor(at: 9) == 1 && step.factor(at: 10) == 0.5 && step.factor(at: 25) == 0.25)
    let cosine = CosineSchedule(totalSteps: 100, minimumFactor: 0.1)
    #expect(cosine.factor(at: 0) == 1)
    #expect(abs(cosine.factor(at: 50) - 0.55) < 1e-12)
    #expect(abs(cosine.factor(at: 100) - 0.1) < 1e-12 && abs(cosine.factor(at: 500) - 0.1) < 1e-12)
    let warm = WarmupSchedule(warmupSteps: 4, then: StepSchedule(stepSize: 2, gamma: 0.1))
    #expect([0, 1, 2, 3].map { warm.factor(at: $0) } == [0.25, 0.5, 0.75, 1])
    #expect(warm.factor(at: 4) == 1 && abs(warm.factor(at: 6) - 0.1) < 1e-15)
  }
}

@Suite("Training a network end to end")
struct TrainingSmokeTests {
  @Test("Adam drives a regression loss down on MLP and ConvNet-S")
  func lossDecreases() {
    var rng = RandomSource(seed: 4)
    var x = Matrix<Double>(rows: 16, columns: 64)
    x.apply { _ in rng.normal() }
    var target = Matrix<Double>(rows: 16, columns: 4)
    target.apply { _ in rng.normal() }

    func train<N: EmbeddingNetwork>(_ network: N) -> (Double, Double) where N.Scalar == Double {
      var net = network
      var opt = Adam<Double>(learningRate: 1e-2)
      var first = 0.0, last = 0.0
      for step in 0..<60 {
        net.forward(x, mode: .training, compute: .automatic)
        var grad = net.embeddings
        grad.add(target, scaledBy: -1)
        let loss = grad.dot(grad) / 2
        if step == 0 { first = loss }
        last = loss
        net.backward(grad, compute: .automatic)
        opt.step(&net)
      }
      return (first, last)
    }
    let mlp = train(MLP<Double>.mlp(inputFeatures: 64, hidden: [32], embeddingDimension: 4, normalize: false, seed: 1))
    #expect(mlp.1 < 0.1 * mlp.0, "MLP loss \(mlp.0) -> \(mlp.1)")
    let conv = train(ConvNetS<Double>.convNetS(
      input: ImageShape(height: 8, width: 8, channels: 1), channels: [4, 8], embeddingDimension: 4,
      normalize: false, batchNorm: true, seed: 2))
    #expect(conv.1 < 0.1 * conv.0, "ConvNet-S loss \(conv.0) -> \(conv.1)")
  }
}
