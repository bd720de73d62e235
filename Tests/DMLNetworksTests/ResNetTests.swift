import DMLNetworks
import DMLTesting
import Foundation
import Testing

/// torchvision's ResNet-18 and ResNet-50 in float64 against the library's, parameter for
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
