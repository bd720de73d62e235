import ArgumentParser
import Foundation
import MetricLearning

/// Builds the components the specifications name.
enum Builders {
  /// The built-in networks, as their concrete types.
  enum AnyNetwork {
    case mlp(MLP<Float>)
    case convNet(ConvNetS<Float>)
    case local(LocalNet<Float>)

    var embeddingDimension: Int {
      switch self {
      case .mlp(let n): return n.embeddingDimension
      case .convNet(let n): return n.embeddingDimension
      case .local(let n): return n.embeddingDimension
      }
    }
  }

  /// Refuses a network whose parameters alone (weights, their gradients and two Adam moments:
  /// 16 bytes a scalar) would take more than half of this machine's memory, before allocating
  /// any of it: an allocation that large ends the process instead of failing.
  static func checkSize(_ text: String, parameters: Double) throws {
    let bytes = parameters * 16, limit = Double(ProcessInfo.processInfo.physicalMemory) / 2
    guard bytes <= limit else {
      throw ValidationError(
        String(format: "--network %@: %.3g parameters would need %.1f GiB for training, over half of this machine's %.1f GiB",
          text, parameters, bytes / 1_073_741_824, 2 * limit / 1_073_741_824))
    }
  }

  static func network(_ text: String, inputFeatures: Int, imageShape: (height: Int, width: Int, channels: Int)?, seed: UInt64)
    throws -> AnyNetwork
  {
    let (spec, v) = try Components.find(Components.networks, text, kind: "network")
    // The embedding width, for the networks that declare one (LocalNet's follows from the image).
    func embedding() throws -> Int {
      let e = try v.integer("embedding")
      guard e > 0 else { throw ValidationError("--network \(text): embedding must be positive") }
      return e
    }
    switch spec.name {
    case "mlp":
      let hidden = try v.integer("hidden"), depth = try v.integer("depth")
      guard hidden >= 0, depth >= 0 else { throw ValidationError("--network \(text): hidden and depth must be ≥ 0") }
      let widths = [Double(inputFeatures)] + Array(repeating: Double(hidden), count: hidden == 0 ? 0 : depth) + [Double(try embedding())]
      try checkSize(text, parameters: zip(widths, widths.dropFirst()).reduce(0) { $0 + ($1.0 + 1) * $1.1 })
      return .mlp(MLP<Float>.mlp(
        inputFeatures: inputFeatures, hidden: hidden == 0 ? [] : Array(repeating: hidden, count: depth),
        embeddingDimension: try embedding(), normalize: try v.boolean("normalize"), batchNorm: try v.boolean("batchnorm"), seed: seed))
    default:
      guard let s = imageShape, s.height * s.width * s.channels == inputFeatures, s.height >= 4, s.width >= 4 else {
        throw ValidationError("--network \(spec.name) needs image data (Fashion-MNIST); this data has \(inputFeatures) flat features")
      }
      if spec.name == "local" {
        let channels = try v.integer("channels"), kernel = try v.integer("kernel"), mix = try v.integer("mix")
        let out = try v.integer("out"), shift = try v.real("shift")
        let side = Swift.min(s.height, s.width)
        guard channels > 0, out > 0, kernel > 0, kernel % 2 == 1, kernel <= side, mix > 0, mix % 2 == 1, mix <= side else {
          throw ValidationError(
            "--network \(text): channels and out must be positive, and kernel and mix odd and at most the image size")
        }
        // Parameters, plus a batch of 128 images' full-resolution maps counted at a quarter (4 bytes each).
        let pixels = Double(s.height * s.width)
        try checkSize(text, parameters: Double(channels) * Double(kernel * kernel * s.channels + 1) + Double(out) * Double(mix * mix * channels + 1)
          + 128 * pixels * Double(channels + out) / 2)
        return .local(LocalNet<Float>.localNet(
          input: ImageShape(height: s.height, width: s.width, channels: s.channels), channels: channels, kernel: kernel,
          mixKernel: mix, outChannels: out, normalize: try v.boolean("normalize"), identity: try v.string("init") == "identity",
          shift: Float(shift), seed: seed))
      }
      let width = try v.integer("width")
      guard width > 0 else { throw ValidationError("--network \(text): width must be positive") }
      let w = Double(width), pixels = Double(s.height * s.width)
      try checkSize(text, parameters: w * Double(9 * s.channels + 1) + 2 * w * (9 * w + 1)
        + (pixels / 16 * 2 * w + 1) * Double(try embedding()) + 128 * pixels * 3 * w / 2)
      return .convNet(ConvNetS<Float>.convNetS(
        input: ImageShape(height: s.height, width: s.width, channels: s.channels), channels: [width, 2 * width],
        embeddingDimension: try embedding(), normalize: try v.boolean("normalize"), batchNorm: try v.boolean("batchnorm"), seed: seed))
    }
  }

  static func loss(_ texts: [String], context: LossContext) throws -> (AnyEmbeddingLoss<Float>, usesTuples: Bool) {
    let registry = CommandRegistry.losses
    var parts: [(AnyEmbeddingLoss<Float>, Float)] = []
    var usesTuples = false
    for text in texts {
      parts.append(try registry.make(text, context: context))
      let name = try HyperparameterValues(parsing: text).component
      usesTuples = usesTuples || (registry.factories[name]?.usesTuples ?? false)
    }
    guard !parts.isEmpty else { throw ValidationError("at least one --loss is needed") }
    if parts.count == 1 && parts[0].1 == 1 { return (parts[0].0, usesTuples) }
    // Several losses (or one with a weight): a weighted sum whose part k names its parameters
    // `loss.k.…` when there are several.
    return (AnyEmbeddingLoss(MultipleLosses(parts.map(\.0), weights: parts.map(\.1))), usesTuples)
  }

  static func sampler(_ text: String, embedding: Int, seed: UInt64) throws -> AnyTupleSampler<Float> {
    let (spec, v) = try Components.find(Components.allMiners, text, kind: "miner")
    if let registered = CommandRegistry.miners.first(where: { $0.name == spec.name }), !Components.miners.contains(where: { $0.name == spec.name }) {
      return try registered.make(v, embedding, seed)
    }
    func cap() throws -> Int? { let m = try v.integer("max"); return m > 0 ? m : nil }
    switch spec.name {
    case "none": return AnyTupleSampler(NoMining<Float>())
    case "semihard": return AnyTupleSampler(TripletMarginMiner<Float>(margin: Float(try v.real("margin")), type: .semihard, maxTuples: try cap(), seed: seed))
    case "triplet-margin":
      return AnyTupleSampler(TripletMarginMiner<Float>(
        margin: Float(try v.real("margin")), type: TripletType(rawValue: try v.string("type"))!, maxTuples: try cap(), seed: seed))
    case "batch-hard": return AnyTupleSampler(BatchHardMiner<Float>())
    case "facenet-semihard": return AnyTupleSampler(FaceNetSemiHardMiner<Float>())
    case "multi-similarity": return AnyTupleSampler(MultiSimilarityMiner<Float>(epsilon: Float(try v.real("epsilon"))))
    case "pair-margin":
      return AnyTupleSampler(PairMarginMiner<Float>(positiveMargin: Float(try v.real("pos_margin")), negativeMargin: Float(try v.real("neg_margin"))))
    default:
      guard embedding > 3 else { throw ValidationError("--miner distance-weighted needs an embedding dimension above 3") }
      return AnyTupleSampler(DistanceWeightedMiner<Float>(
        dimension: embedding, cutoff: Float(try v.real("cutoff")), nonzeroLossCutoff: Float(try v.real("nonzero_loss_cutoff")), seed: seed))
    }
  }

  enum AnyOptimizer {
    case adam(Adam<Float>)
    case sgd(SGD<Float>)
  }

  static func optimizer(_ text: String) throws -> AnyOptimizer {
    let (spec, v) = try Components.find(Components.optimizers, text, kind: "optimizer")
    let lr = try v.real("lr", "positive") { $0 > 0 }
    let proxy = try v.real("proxy_lr", "positive") { $0 > 0 }
    let decay = try v.real("weight_decay", "non-negative") { $0 >= 0 }
    let first = try v.real("first_lr", "in [0, 1]") { $0 >= 0 && $0 <= 1 }
    // Group 0: the network; 1: proxies and class weights; 2: the network's first layer.
    let groups = [ParameterGroup(), ParameterGroup(learningRate: proxy), ParameterGroup(learningRate: lr * first)]
    switch spec.name {
    case "adam": return .adam(Adam(learningRate: lr, weightDecay: decay, groups: groups))
    case "adamw": return .adam(Adam.adamW(learningRate: lr, weightDecay: decay, groups: groups))
    default:
      let momentum = try v.real("momentum", "in [0, 1)") { $0 >= 0 && $0 < 1 }, nesterov = try v.boolean("nesterov")
      guard !nesterov || momentum > 0 else { throw SpecificationError("sgd: nesterov=true needs momentum > 0 (momentum=\(momentum))") }
      return .sgd(SGD(learningRate: lr, momentum: momentum, nesterov: nesterov, weightDecay: decay, groups: groups))
    }
  }

  static func batchSampler(_ text: String, labels: [Int], seed: UInt64) throws -> any BatchSampler {
    let (spec, v) = try Components.find(Components.batches, text, kind: "batch sampler")
    let size = try v.integer("size")
    guard size >= 2 else { throw ValidationError("--batch \(text): size must be at least 2") }
    guard size <= labels.count else { throw ValidationError("--batch \(text): size \(size) exceeds the \(labels.count) training samples") }
    if spec.name == "shuffled" { return ShuffledBatchSampler(count: labels.count, batchSize: size, seed: seed) }
    if spec.name == "views" {
      let views = try v.integer("views")
      guard views >= 2, size % views == 0 else { throw ValidationError("--batch \(text): size \(size) must be a multiple of views = \(views) ≥ 2") }
      return ViewsBatchSampler(count: labels.count, batchSize: size, views: views, seed: seed)
    }
    let m = try v.integer("m")
    guard m >= 1, size % m == 0 else { throw ValidationError("--batch \(text): size \(size) must be a multiple of m = \(m)") }
    return MPerClassSampler(labels: labels, m: m, batchSize: size, seed: seed)
  }

  static func schedule(_ text: String, stepsPerEpoch: Int, epochs: Int) throws -> any LearningRateSchedule {
    let (spec, v) = try Components.find(Components.schedules, text, kind: "schedule")
    switch spec.name {
    case "constant": return ConstantSchedule()
    case "cosine": return CosineSchedule(totalSteps: Swift.max(1, stepsPerEpoch * epochs), minimumFactor: try v.real("min"))
    default: return StepSchedule(stepSize: Swift.max(1, try v.integer("every") * stepsPerEpoch), gamma: try v.real("gamma"))
    }
  }

}
