import DMLNetworks
import DMLTesting
import Foundation
import Testing

@Suite("Built-in networks")
struct NetworkTests {
  @Test("MLP and ConvNet-S have the benchmark shapes")
  func shapes() {
    var mlp = MLP<Float>.mlp()
    #expect(mlp.inputFeatures == 784 && mlp.embeddingDimension == 128)
    #expect(mlp.parameterCount == 784 * 512 + 512 + 512 * 128 + 128)
    var conv = ConvNetS<Float>.convNetS()
    #expect(conv.inputFeatures == 784 && conv.embeddingDimension == 128)
    #expect(conv.parameterCount == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (3136 * 128 + 128))
    var rng = RandomSource(seed: 1)
    var x = Matrix<Float>(rows: 3, columns: 784)
    x.apply { _ in rng.normal() }
    for embeddings in [mlp.embed(x), conv.embed(x)] {
      #expect(embeddings.rows == 3 && embeddings.columns == 128)
      #expect(embeddings.rowNorms().allSatisfy { abs($0 - 1) < 1e-5 })
    }
    let unnormalized = MLP<Float>.mlp(hidden: [64, 32], embeddingDimension: 16, normalize: false)
    #expect(unnormalized.embeddingDimension == 16 && unnormalized.parameters.count == 6)
  }

  @Test("the same seed gives the same network; He initialisation has the right scale")
  func initialisation() {
    let a = MLP<Double>.mlp(seed: 3), b = MLP<Double>.mlp(seed: 3), c = MLP<Double>.mlp(seed: 4)
    #expect(a.parameters[0].value == b.parameters[0].value)
    #expect(a.parameters[0].value != c.parameters[0].value)
    let w = a.parameters[0].value
    let variance = w.dot(w) / Double(w.count)
    #expect(abs(variance - 2.0 / 784) / (2.0 / 784) < 0.02)
  }

  @Test("whole networks pass directional derivative checks", arguments: [false, true])
  func directional(batchNorm: Bool) {
    let mlp = MLP<Double>.mlp(inputFeatures: 12, hidden: [10, 8], embeddingDimension: 5, batchNorm: batchNorm, seed: 1)
    let r1 = GradientCheck.network(mlp, input: randomInput(6, 12, seed: 2))
    expectPasses(r1, "MLP batchNorm=\(batchNorm)")
    let conv = ConvNetS<Double>.convNetS(
      input: ImageShape(height: 8, width: 8, channels: 2), channels: [3, 4], embeddingDimension: 5,
      batchNorm: batchNorm, seed: 3)
    let r2 = GradientCheck.network(conv, input: randomInput(3, 128, seed: 4))
    expectPasses(r2, "ConvNet-S batchNorm=\(batchNorm)")
  }

  @Test("LocalNet passes the directional derivative check; with identity it starts as the shifted input", arguments: [1, 3])
  func localNet(mix: Int) {
    let net = LocalNet<Double>.localNet(
      input: ImageShape(height: 6, width: 5, channels: 1), channels: 3, kernel: 3, mixKernel: mix, outChannels: 2, seed: 7)
    #expect(net.embeddingDimension == 60)
    expectPasses(GradientCheck.network(net, input: randomInput(3, 30, seed: 8)), "LocalNet mix \(mix)")
    var identity = LocalNet<Double>.localNet(
      input: ImageShape(height: 6, width: 5, channels: 1), channels: 3, kernel: 3, mixKernel: mix, normalize: false, identity: true,
      shift: 1, seed: 7)
    var x = randomInput(2, 30, seed: 9)
    x.apply { abs($0) * 0.5 }  // inputs ≥ 0, so filter 0's ReLU passes them all
    let e = identity.embed(x)
    // Filter 0 passes x + 1 through (inputs are above −1 here); the others add a tenth-scale part.
    var worst = 0.0
    for i in 0..<2 { for j in 0..<30 { worst = max(worst, abs(e[i, j] - (x[i, j] + 1))) } }
    #expect(worst < 0.1, "identity start off by \(worst)")
    // With the other filters silenced, the start is exactly the shifted input, whatever the mix size.
    let inner = identity.body.first
    var filters = inner.first.first
    let mixer = inner.second
    for r in 1..<3 { for j in 0..<filters.weight.value.columns { filters.weight.value[r, j] = 0 }; filters.bias.value[0, r] = -10 }
    var exact = LocalNet<Double>(
      inputFeatures: 30, body: Chain(Chain(Chain(filters, ReLU()), mixer), Optionally(L2Normalize<Double>(), enabled: false)))
    let f = exact.embed(x)
    var worstExact = 0.0
    for i in 0..<2 { for j in 0..<30 { worstExact = max(worstExact, abs(f[i, j] - (x[i, j] + 1))) } }
    #expect(worstExact < 1e-12, "silenced identity start off by \(worstExact)")
  }

  @Test("Float and Double networks agree")
  func floatDouble() {
    var d = ConvNetS<Double>.convNetS(input: ImageShape(height: 8, width: 8, channels: 1), channels: [4, 4], embeddingDimension: 6, seed: 5)
    var f = ConvNetS<Float>.convNetS(input: ImageShape(height: 8, width: 8, channels: 1), channels: [4, 4], embeddingDimension: 6, seed: 5)
    let x = randomInput(4, 64, seed: 6)
    var diff = f.embed(x.converted()).converted(to: Double.self)
    diff.add(d.embed(x), scaledBy: -1)
    #expect(diff.maxAbs() < 1e-5)
  }
}

/// The golden case from pytorch-metric-learning 2.9.0 (Tests/DMLNetworksTests/Golden/network.json,
/// a copy of shared/reference/network.json): `Linear(8→16) → ReLU → Linear(16→4) → L2-normalise`
/// with given weights, one forward and one backward pass under `TripletMarginLoss(margin=0.2)`.
@Suite("Golden network values from PyTorch")
struct GoldenNetworkTests {
  struct Case {
    var inputs: [String: Any]
    var outputs: [String: Any]

    func matrix(_ key: String, in dict: [String: Any]) -> Matrix<Double> {
      let rows = (dict[key] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
      return Matrix(rows)
    }
    func vector(_ key: String, in dict: [String: Any]) -> Matrix<Double> {
      let v = (dict[key] as! [NSNumber]).map(\.doubleValue)
      return Matrix(rows: 1, columns: v.count, elements: v)
    }
  }

  static func load() throws -> Case {
    let url = try #require(Bundle.module.url(forResource: "Golden/network", withExtension: "json"))
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    let c = (json["cases"] as! [[String: Any]]).first { $0["name"] as? String == "mlp_triplet" }!
    return Case(inputs: c["inputs"] as! [String: Any], outputs: c["outputs"] as! [String: Any])
  }

  static func expectClose(
    _ a: Matrix<Double>, _ b: Matrix<Double>, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(a.rows * a.columns == b.rows * b.columns, "\(what): shape", sourceLocation: sourceLocation)
    var worst = 0.0
    for (x, y) in zip(a.elements, b.elements) {
      worst = max(worst, abs(x - y) / max(1e-12 / 1e-9, abs(y)))
    }
    #expect(worst < 1e-9, "\(what): relative error \(worst)", sourceLocation: sourceLocation)
    #expect(b.maxAbs() > 0, "\(what): golden all zero", sourceLocation: sourceLocation)
  }

  @Test("forward values and weight gradients match to 1e-9")
  func mlpTriplet() throws {
    let c = try Self.load()
    let first = Linear(weight: c.matrix("layer1_weight", in: c.inputs), bias: c.vector("layer1_bias", in: c.inputs))
    let second = Linear(weight: c.matrix("layer2_weight", in: c.inputs), bias: c.vector("layer2_bias", in: c.inputs))
    var net = Network(
      inputFeatures: 8, body: sequential { first; ReLU<Double>(); second; L2Normalize<Double>() })
    let x = c.matrix("input", in: c.inputs)
    net.forward(x, mode: .training, compute: .automatic)
    Self.expectClose(net.embeddings, c.matrix("embeddings", in: c.outputs), "embeddings")
    var hidden = first
    Self.expectClose(hidden(x), c.matrix("hidden_preactivation", in: c.outputs), "hidden")
    var partial = Network(inputFeatures: 8, body: sequential { first; ReLU<Double>(); second })
    partial.forward(x, mode: .training, compute: .automatic)
    Self.expectClose(partial.embeddings, c.matrix("output_before_normalize", in: c.outputs), "pre-normalize")

    // The loss's gradient comes from the golden file until the loss module computes it.
    net.backward(c.matrix("grad_embeddings", in: c.outputs), compute: .automatic)
    let p = net.parameters
    Self.expectClose(p[0].gradient, c.matrix("grad_layer1_weight", in: c.outputs), "grad W1")
    Self.expectClose(p[1].gradient, c.vector("grad_layer1_bias", in: c.outputs), "grad b1")
    Self.expectClose(p[2].gradient, c.matrix("grad_layer2_weight", in: c.outputs), "grad W2")
    Self.expectClose(p[3].gradient, c.vector("grad_layer2_bias", in: c.outputs), "grad b2")
  }
}

/// A layer that scales by a seeded weight it does not declare: the state checks must fail it.
struct HiddenScale<Scalar: DMLScalar>: Layer, ParameterFree {
  var scale: Scalar
  init(seed: UInt64) {
    var rng = RandomSource(seed: seed)
    scale = 1 + Scalar(rng.normal(Double.self)) / 10
  }
  func outputFeatures(forInput n: Int) -> Int { n }
  mutating func forward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    output.assign(input)
    output.apply { $0 * scale }
  }
  mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>, inputGradient: inout Matrix<Scalar>,
    propagate: Bool, compute: ComputeContext
  ) {
    if propagate {
      inputGradient.assign(outputGradient)
      inputGradient.apply { $0 * scale }
    }
  }
}

@Suite("Learned state of networks: named, moving, restorable")
struct NetworkStateTests {
  static var input: Matrix<Double> {
    var rng = RandomSource(seed: 11)
    var x = Matrix<Double>(rows: 6, columns: 64)
    x.apply { _ in rng.normal() }
    return x
  }

  @Test("MLP names follow torch.nn.Sequential: blocks, then the head; BatchNorm's statistics included")
  func names() {
    let mlp: MLP<Double> = .mlp(inputFeatures: 8, hidden: [16, 16], embeddingDimension: 4, batchNorm: true)
    #expect(mlp.namedParameters(prefix: ["network"]).map(\.name) == [
      "network.0.0.0.weight", "network.0.0.0.bias",
      "network.0.0.1.weight", "network.0.0.1.bias", "network.0.0.1.running_mean", "network.0.0.1.running_var",
      "network.0.1.0.weight", "network.0.1.0.bias",
      "network.0.1.1.weight", "network.0.1.1.bias", "network.0.1.1.running_mean", "network.0.1.1.running_var",
      "network.1.weight", "network.1.bias",
    ])
    // Switching BatchNorm off removes its tensors and renames nothing else.
    let plain: MLP<Double> = .mlp(inputFeatures: 8, hidden: [16, 16], embeddingDimension: 4, batchNorm: false)
    #expect(plain.namedParameters().map(\.name) == ["0.0.0.weight", "0.0.0.bias", "0.1.0.weight", "0.1.0.bias", "1.weight", "1.bias"])
    let conv: ConvNetS<Double> = .convNetS(input: ImageShape(height: 8, width: 8, channels: 1), channels: [2, 3], embeddingDimension: 4)
    #expect(conv.namedParameters().map(\.name) == ["0.0.0.weight", "0.0.0.bias", "0.1.0.weight", "0.1.0.bias", "1.weight", "1.bias"])
  }

  @Test("every built-in network, BatchNorm on and off: every tensor moves and restores by name", arguments: [false, true])
  func builtIn(batchNorm: Bool) {
    let x = Self.input
    var failures = StateConformance.networkFailures(input: x) { seed in
      MLP<Double>.mlp(inputFeatures: 64, hidden: [8, 8], embeddingDimension: 4, batchNorm: batchNorm, seed: seed)
    }
    failures += StateConformance.networkFailures(input: x) { seed in
      ConvNetS<Double>.convNetS(input: ImageShape(height: 8, width: 8, channels: 1), channels: [2, 3], embeddingDimension: 4, batchNorm: batchNorm, seed: seed)
    }
    if !batchNorm {
      failures += StateConformance.networkFailures(input: x) { seed in
        LocalNet<Double>.localNet(input: ImageShape(height: 8, width: 8, channels: 1), channels: 2, kernel: 3, mixKernel: 3, seed: seed)
      }
    }
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("a layer with a weight it does not declare fails the state checks")
  func hiddenState() {
    let failures = StateConformance.networkFailures(input: Self.input) { seed in
      var rng = RandomSource(seed: seed)
      return Network(inputFeatures: 64, body: Chain(Linear<Double>(64, 4, rng: &rng), HiddenScale<Double>(seed: seed)))
    }
    #expect(failures.contains { $0.contains("holds state it does not declare") }, "\(failures)")
  }
}
