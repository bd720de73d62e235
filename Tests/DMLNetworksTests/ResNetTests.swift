import DMLNetworks
import DMLTraining
import DMLTesting
import Foundation
import Testing

/// torchvision's ResNet-18, -34 and -50 in float64 against the library's, parameter for
/// parameter: Golden/resnet_golden.py sets every weight from an integer hash (so that nothing
/// large is stored) and records the embeddings and every parameter gradient's digest.
@Suite("ResNet against torchvision (float64 golden values)")
struct ResNetGoldenTests {
  /// The generator's `u(k, i)`: exact in Double.
  static func u(_ k: Int, _ n: Int) -> [Double] {
    let m: UInt64 = 1 << 32
    let offset: UInt64 = UInt64(k) &* 40503 &+ 12345
    var out = [Double](repeating: 0, count: n)
    for i in 0..<n {
      let h: UInt64 = (UInt64(i) &* 2_654_435_761 &+ offset) % m
      out[i] = Double(h) / Double(m) - 0.5
    }
    return out
  }

  /// A tensor's values as the generator sets them, in torch's layout.
  static func initial(_ name: String, shape: [Int], k: Int) -> [Double] {
    let n = shape.reduce(1, *)
    let v = u(k, n)
    if name.hasSuffix("running_mean") { return v.map { 0.2 * $0 } }
    if name.hasSuffix("running_var") { return v.map { 1 + 0.5 * ($0 + 0.5) } }
    if shape.count == 1 && (name.contains("bn") || name.contains("downsample.1")) {
      return name.hasSuffix("weight") ? v.map { 1 + 0.2 * $0 } : v.map { 0.2 * $0 }
    }
    if shape.count == 1 { return v.map { 0.2 * $0 } }
    let fanIn = Double(n / shape[0])
    return v.map { $0 * 2 * (3 / fanIn).squareRoot() }
  }

  struct Golden: Decodable {
    struct Mode: Decodable {
      var embedding: [Double]
      var gradients: [String: [Double]]
      var running_after: [String: [Double]]
    }
    var names: [[Value]]
    var modes: [String: Mode]
    enum Value: Decodable {
      case text(String), shape([Int]), number(Int)
      init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s) } else if let a = try? c.decode([Int].self) { self = .shape(a) } else { self = .number(try c.decode(Int.self)) }
      }
    }
    /// (name, torch shape, k) of each tensor.
    var tensors: [(String, [Int], Int)] {
      names.map { entry in
        guard case .text(let n) = entry[0], case .shape(let s) = entry[1], case .number(let k) = entry[2] else { fatalError("golden layout") }
        return (n, s, k)
      }
    }
  }

  static func golden(_ name: String) throws -> Golden {
    let url = try #require(Bundle.module.url(forResource: "Golden/\(name)", withExtension: "json"))
    return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
  }

  /// The NHWC rows of the generator's NCHW input (k = 1000), 4 images of 3×64×64.
  static func input() -> Matrix<Double> {
    let x = u(1000, 4 * 3 * 64 * 64)
    var rows = Matrix<Double>(rows: 4, columns: 64 * 64 * 3)
    for b in 0..<4 {
      for c in 0..<3 {
        for y in 0..<64 {
          for xx in 0..<64 { rows[b, (y * 64 + xx) * 3 + c] = x[((b * 3 + c) * 64 + y) * 64 + xx] }
        }
      }
    }
    return rows
  }

  func check<N: EmbeddingNetwork>(_ network: inout N, golden g: Golden, mode: String) throws where N.Scalar == Double {
    // Every tensor of torchvision's state dict, by name and shape, and nothing else.
    let ours = network.namedParameters()
    #expect(ours.map(\.name) == g.tensors.map(\.0), "the parameter names differ from torchvision's")
    var tensors: [String: (shape: [Int], values: [Float])] = [:]
    for (name, shape, k) in g.tensors { tensors[name] = (shape, Self.initial(name, shape: shape, k: k).map { Float($0) }) }
    // Set in Double (the file path goes through Float): the values themselves.
    network.forEachParameter { name, p in
      guard let (_, shape, k) = g.tensors.first(where: { $0.0 == name }) else { return }
      let values = TorchWeights.fromTorch(Self.initial(name, shape: shape, k: k), torchShape: shape)
      p.value = Matrix(rows: p.value.rows, columns: p.value.columns, elements: values)
    }
    let want = try #require(g.modes[mode])
    network.forward(Self.input(), mode: .training, compute: .automatic)
    let e = network.embeddings
    var worst = 0.0
    for (a, b) in zip(e.elements, want.embedding) { worst = Swift.max(worst, abs(a - b) / Swift.max(1e-12, abs(b))) }
    #expect(worst < 1e-9, "\(mode): embeddings differ from torch by \(worst) relative")
    let r = Self.u(2000, e.rows * e.columns)
    network.backward(Matrix(rows: e.rows, columns: e.columns, elements: r), compute: .automatic)
    var checked = 0
    for (j, (name, shape, _)) in g.tensors.enumerated() {
      guard let digest = want.gradients[name], let p = network.namedParameters().first(where: { $0.name == name })?.parameter else { continue }
      let torchGradient = TorchWeights.toTorch(p.gradient.elements, shape: p.shape).values
      #expect(TorchWeights.toTorch(p.gradient.elements, shape: p.shape).shape == shape)
      let h = Self.u(3000 + j, torchGradient.count)
      let projection = zip(torchGradient, h).reduce(0) { $0 + $1.0 * $1.1 }
      let norm = torchGradient.reduce(0) { $0 + $1 * $1 }.squareRoot()
      // Relative to the gradient's size: the projection's scale is ‖g‖·‖h‖.
      let scale = norm * Double(h.count).squareRoot() * 0.29 + 1e-300
      #expect(abs(projection - digest[0]) <= 1e-9 * scale, "\(mode) \(name): projection \(projection), torch \(digest[0])")
      #expect(abs(norm - digest[1]) <= 1e-9 * Swift.max(norm, 1e-300), "\(mode) \(name): norm \(norm), torch \(digest[1])")
      checked += 1
    }
    #expect(checked == want.gradients.count && checked > 50)
    // The running statistics after one training step (batch statistics) or unchanged (frozen).
    for (name, p) in network.namedParameters() where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
      guard let ref = want.running_after[name] else { continue }
      let sum = p.value.elements.reduce(0, +)
      #expect(abs(sum - ref[0]) <= 1e-9 * Swift.max(1, abs(ref[0])), "\(mode) \(name): sum \(sum), torch \(ref[0])")
    }
  }

  @Test("ResNet-18: names, shapes, embeddings and every parameter gradient as torch's, in training and with frozen BatchNorm")
  func resnet18() throws {
    let g = try Self.golden("resnet18")
    for (mode, frozen) in [("train", false), ("frozen", true)] {
      var network: Network<ResNetBody<BasicBlock<Double>>> = ResNetBuilder.basic(
        .resnet18, input: ImageShape(height: 64, width: 64, channels: 3), embedding: 8, normalize: false, frozenBatchNorm: frozen)
      try check(&network, golden: g, mode: mode)
    }
  }

  @Test("ResNet-34: names, shapes, embeddings and every parameter gradient as torch's, in training and with frozen BatchNorm")
  func resnet34() throws {
    let g = try Self.golden("resnet34")
    for (mode, frozen) in [("train", false), ("frozen", true)] {
      var network: Network<ResNetBody<BasicBlock<Double>>> = ResNetBuilder.basic(
        .resnet34, input: ImageShape(height: 64, width: 64, channels: 3), embedding: 8, normalize: false, frozenBatchNorm: frozen)
      try check(&network, golden: g, mode: mode)
    }
  }

  @Test("ResNet-50: names, shapes, embeddings and every parameter gradient as torch's, in training and with frozen BatchNorm")
  func resnet50() throws {
    let g = try Self.golden("resnet50")
    for (mode, frozen) in [("train", false), ("frozen", true)] {
      var network: Network<ResNetBody<Bottleneck<Double>>> = ResNetBuilder.bottleneckNetwork(
        .resnet50, input: ImageShape(height: 64, width: 64, channels: 3), embedding: 8, normalize: false, frozenBatchNorm: frozen)
      try check(&network, golden: g, mode: mode)
    }
  }
}

@Suite("PyTorch state dicts in and out")
struct TorchWeightsTests {
  static func small() -> Network<ResNetBody<BasicBlock<Float>>> {
    ResNetBuilder.basic(.resnet18, input: ImageShape(height: 32, width: 32, channels: 3), embedding: 4, seed: 3)
  }

  @Test("export then import restores every parameter; torch's layouts and num_batches_tracked on the way")
  func roundTrip() throws {
    let source = Self.small()
    let (tensors, integers) = TorchWeights.export(source, steps: 7)
    #expect(tensors.first { $0.name == "conv1.weight" }?.shape == [64, 3, 7, 7])
    #expect(tensors.first { $0.name == "layer2.0.downsample.0.weight" }?.shape == [128, 64, 1, 1])
    #expect(integers.count == 20 && integers.allSatisfy { $0.values == [7] && $0.name.hasSuffix("num_batches_tracked") })
    var dict = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, (shape: $0.shape, values: $0.values)) })
    dict["bn1.num_batches_tracked"] = ([], [0])
    var target = ResNetBuilder.basic(.resnet18, input: ImageShape(height: 32, width: 32, channels: 3), embedding: 4, seed: 99) as Network<ResNetBody<BasicBlock<Float>>>
    #expect(target.namedParameters().map(\.parameter.value) != source.namedParameters().map(\.parameter.value))
    let report = try TorchWeights.load(dict, into: &target, newPrefixes: ["fc."])
    #expect(report.loaded.count == 102 && report.new.isEmpty && report.ignored == ["bn1.num_batches_tracked"])
    #expect(target.namedParameters().map(\.parameter.value) == source.namedParameters().map(\.parameter.value))
  }

  @Test("a missing, extra, misshapen or non-finite tensor is a named error and changes nothing; the head may be new")
  func errors() throws {
    let (tensors, _) = TorchWeights.export(Self.small())
    let base = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, (shape: $0.shape, values: $0.values)) })
    var net = Self.small()
    let before = net.namedParameters().map(\.parameter.value)
    var missing = base
    missing["layer3.1.bn2.bias"] = nil
    var extra = base
    extra["layer5.0.conv1.weight"] = ([1], [0])
    var misshapen = base
    misshapen["layer1.0.conv1.weight"] = ([64, 64, 1, 1], Array(repeating: 0, count: 64 * 64))
    var nan = base
    nan["bn1.weight"] = ([64], Array(repeating: .nan, count: 64))
    for (dict, message) in [
      (missing, "layer3.1.bn2.bias is missing"), (extra, "layer5.0.conv1.weight is not a parameter of the network"),
      (misshapen, "layer1.0.conv1.weight has shape [64, 64, 1, 1] in w.safetensors, the network's is [64, 64, 3, 3]"),
      (nan, "bn1.weight holds NaN or infinite values"),
    ] {
      do {
        _ = try TorchWeights.load(dict, into: &net, newPrefixes: ["fc."], source: "w.safetensors")
        Issue.record("loaded: \(message)")
      } catch {
        #expect("\(error)".contains(message), "\(error)")
      }
      #expect(net.namedParameters().map(\.parameter.value) == before)
    }
    // An ImageNet head: replaced, reported as new; allowed missing and extra tensors.
    var imagenet = base
    imagenet["fc.weight"] = ([1000, 512], Array(repeating: 0, count: 512_000))
    imagenet["fc.bias"] = nil
    let r = try TorchWeights.load(imagenet, into: &net, newPrefixes: ["fc."])
    #expect(r.new == ["fc.weight", "fc.bias"] && r.replaced == ["fc.weight"] && r.loaded.count == 100)
    var both = missing
    both["layer5.0.conv1.weight"] = ([1], [0])
    let lenient = try TorchWeights.load(both, into: &net, allowMissing: true, allowExtra: true)
    #expect(lenient.new == ["layer3.1.bn2.bias"] && lenient.ignored == ["layer5.0.conv1.weight"])
  }

  @Test("max pooling with padding leaves the padded positions out, as PyTorch's −∞")
  func paddedPool() {
    var pool = MaxPool2D<Double>(input: ImageShape(height: 4, width: 4, channels: 1), size: 3, stride: 2, padding: 1)
    #expect(pool.outputShape == ImageShape(height: 2, width: 2, channels: 1))
    let x = Matrix<Double>(rows: 1, columns: 16, elements: (0..<16).map { -Double($0) - 1 })
    var y = Matrix<Double>()
    pool.forward(x, into: &y, mode: .training, compute: .automatic)
    // All negative: zero padding would give 0; −∞ padding gives the window's own maximum.
    #expect(y.elements == [-1, -2, -5, -6])
  }
}

@Suite("The fine-tuning article's snippet")
struct FineTuningArticleTests {
  @Test("a state dict into ResNet-18 and back out")
  func article() throws {
    let path = ScratchSpace.path("resnet18-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(atPath: path) }
    // A torchvision-like file: ResNet-18 with an ImageNet head of 1,000 classes.
    let source: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(.resnet18, input: ImageShape(height: 64, width: 64, channels: 3), embedding: 1000)
    let exported = TorchWeights.export(source)
    try Checkpoint.safetensors(exported.tensors, integers: exported.integers).write(to: URL(fileURLWithPath: path))

    var network: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(
      .resnet18, input: ImageShape(height: 64, width: 64, channels: 3), embedding: 128, frozenBatchNorm: true)
    let report = try TorchWeights.load(try Checkpoint.readSafetensors(path), into: &network, newPrefixes: ["fc."])
    // report.loaded: 100 tensors; report.new: ["fc.weight", "fc.bias"]
    let (tensors, integers) = TorchWeights.export(network, steps: 1000)
    let file = Checkpoint.safetensors(tensors, integers: integers)  // load_state_dict(strict=True) takes it

    #expect(report.loaded.count == 100 && report.new == ["fc.weight", "fc.bias"])
    #expect(tensors.count == 102 && integers.count == 20 && file.count > 40_000_000)
  }
}

@Suite("ResNet layers against central differences (Double)")
struct ResNetGradientTests {
  @Test("the stem's 7×7 stride-2 padded convolution without bias")
  func stemConvolution() {
    var rng = RandomSource(seed: 21)
    let conv = Conv2D<Double>(input: ImageShape(height: 9, width: 9, channels: 3), outChannels: 4, kernel: 7, stride: 2, padding: 3, bias: false, rng: &rng)
    #expect(conv.outputShape == ImageShape(height: 5, width: 5, channels: 4))
    #expect(conv.namedParameters().map(\.name) == ["weight"])
    expectPasses(GradientCheck.layer(conv, input: randomInput(2, 9 * 9 * 3, seed: 22)), "Conv 7x7/2 pad 3")
  }

  @Test("max pooling 3×3 stride 2 with padding 1")
  func paddedMaxPool() {
    let pool = MaxPool2D<Double>(input: ImageShape(height: 7, width: 6, channels: 3), size: 3, stride: 2, padding: 1)
    expectPasses(GradientCheck.layer(pool, input: randomInput(2, 7 * 6 * 3, seed: 23)), "MaxPool 3x3/2 pad 1")
  }

  @Test("BatchNorm with frozen statistics: running ones used and kept in training")
  func frozenBatchNorm() {
    var bn = BatchNorm<Double>(channels: 3)
    bn.frozen = true
    bn.runningMean = [0.2, -0.1, 0.4]
    bn.runningVariance = [1.5, 0.7, 2]
    bn.scale.value.apply { _ in 1.3 }
    expectPasses(GradientCheck.layer(bn, input: randomInput(3, 4 * 4 * 3, seed: 24), mode: .training), "frozen BatchNorm")
    var copy = bn
    var y = Matrix<Double>()
    copy.forward(randomInput(3, 48, seed: 25), into: &y, mode: .training, compute: .automatic)
    #expect(copy.runningMean == [0.2, -0.1, 0.4] && copy.runningVariance == [1.5, 0.7, 2])
  }

  @Test("BasicBlock and Bottleneck, with and without the downsample projection")
  func blocks() {
    let shape = ImageShape(height: 6, width: 6, channels: 4)
    for stride in [1, 2] {
      var rng = RandomSource(seed: 26)
      let (basic, _) = ResNetBuilder.basicBlock(input: shape, planes: stride == 1 ? 4 : 6, stride: stride, rng: &rng) as (BasicBlock<Double>, ImageShape)
      #expect((basic.shortcut != nil) == (stride == 2))
      expectPasses(GradientCheck.layer(basic, input: randomInput(3, shape.features, seed: 27), mode: .training), tolerance: 1e-5, "BasicBlock stride \(stride)")
      let (bottleneck, out) = ResNetBuilder.bottleneck(input: shape, planes: 2, stride: stride, rng: &rng) as (Bottleneck<Double>, ImageShape)
      #expect(out.channels == 8 && bottleneck.shortcut != nil)
      expectPasses(GradientCheck.layer(bottleneck, input: randomInput(3, shape.features, seed: 28), mode: .training), tolerance: 1e-5, "Bottleneck stride \(stride)")
    }
  }
}
