import DMLCore
import DMLKernels
import DMLNetworks
import DMLSamplers
import DMLTraining
import Foundation

/// What a network factory knows of the data: the width of an input row, its image shape when
/// the rows are images, and the seed of the initial weights.
public struct NetworkContext: Sendable {
  /// Features of one input row.
  public var inputFeatures: Int
  /// The rows' image shape (`nil` for flat features).
  public var imageShape: ImageShape?
  /// The seed of the initial weights.
  public var seed: UInt64
  /// Whether a network reads the pretrained weights its text names (`weights=FILE`); false when a
  /// checkpoint's parameters replace them anyway.
  public var loadsWeights = true
  /// Where a network reports what it did beyond being built (which pretrained tensors it loaded,
  /// which parameters are new).
  public var report: (@Sendable (String) -> Void)?
  /// A context; see the properties.
  public init(inputFeatures: Int, imageShape: ImageShape? = nil, seed: UInt64 = 0) {
    self.inputFeatures = inputFeatures
    self.imageShape = imageShape
    self.seed = seed
  }
}

/// The hyperparameters of the ResNets.
let resNetSpecs = [
  HyperparameterSpec("embedding", .integer, default: "512", "embedding dimension (the fc layer's outputs)", range: .atLeast(1)),
  HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
  HyperparameterSpec("frozen_bn", .boolean, default: "false", "BatchNorm statistics frozen (running ones, in training too)"),
  HyperparameterSpec("head_bn", .boolean, default: "false", "BatchNorm after the embedding layer (named fc.0 and fc.1, as nn.Sequential(Linear, BatchNorm1d))"),
  HyperparameterSpec("weights", .text, default: "", "a safetensors file of a torchvision state dict (dml import-weights, or Benchmarks/Scripts/export_torchvision.py)"),
  HyperparameterSpec("strict", .boolean, default: "true", "every tensor must fit, but the head (fc); false: missing and extra tensors allowed"),
]

/// ResNet `depth` from its hyperparameters: torchvision's layers on the data's images, the
/// embedding head `fc`, and the pretrained weights of `weights=` checked name by name.
func resNet(_ depth: ResNetDepth, _ v: HyperparameterValues, _ c: NetworkContext) throws -> AnyEmbeddingNetwork<Float> {
  let name = "resnet\(depth.rawValue)"
  let s = try imageShape(name, c)
  guard s.height >= 32 && s.width >= 32 else { throw SpecificationError("\(name) needs images of at least 32x32; these are \(s.width)x\(s.height)") }
  let embedding = try v.integer("embedding"), normalize = try v.boolean("normalize"), frozen = try v.boolean("frozen_bn")
  let headBN = try v.boolean("head_bn")
  let weights = try v.string("weights"), strict = try v.boolean("strict")
  func load<C: ParameterContainer>(_ network: inout C) throws {
    guard !weights.isEmpty, c.loadsWeights else { return }
    let tensors: [String: (shape: [Int], values: [Float])]
    do { tensors = try Checkpoint.readSafetensors(weights) } catch { throw SpecificationError("\(name): weights=\(weights): \(error)") }
    do {
      let r = try TorchWeights.load(tensors, into: &network, newPrefixes: ["fc."], allowMissing: !strict, allowExtra: !strict, source: weights)
      let unused = r.ignored.filter { !$0.hasSuffix("num_batches_tracked") }
      c.report?(
        "\(name): loaded \(r.loaded.count) tensors from \(weights); new: \(r.new.isEmpty ? "none" : r.new.joined(separator: ", "))"
          + (r.replaced.isEmpty ? "" : " (the file's \(r.replaced.joined(separator: ", ")) have another shape)")
          + (unused.isEmpty ? "" : "; not used: " + unused.joined(separator: ", ")))
    } catch let e as WeightImportError {
      throw SpecificationError("\(name): \(e.description)")
    }
  }
  if depth.isBottleneck {
    var n: Network<ResNetBody<Bottleneck<Float>>> = ResNetBuilder.bottleneckNetwork(
      depth, input: s, embedding: embedding, normalize: normalize, headBatchNorm: headBN, frozenBatchNorm: frozen, seed: c.seed)
    try load(&n)
    return AnyEmbeddingNetwork(n)
  }
  var n: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(
    depth, input: s, embedding: embedding, normalize: normalize, headBatchNorm: headBN, frozenBatchNorm: frozen, seed: c.seed)
  try load(&n)
  return AnyEmbeddingNetwork(n)
}

/// What a miner factory knows: the embedding dimension and the seed of its random choices.
public struct MinerContext: Sendable {
  /// The embedding dimension of the network.
  public var embeddingDimension: Int
  /// The seed of the miner's random choices.
  public var seed: UInt64
  /// A context; see the properties.
  public init(embeddingDimension: Int, seed: UInt64 = 0) {
    self.embeddingDimension = embeddingDimension
    self.seed = seed
  }
}

/// What a batch sampler factory knows: the training labels and the seed.
public struct BatchContext: Sendable {
  /// The label of every training sample.
  public var labels: [Int]
  /// The seed of the batches.
  public var seed: UInt64
  /// The super-class of every training sample (`--super-classes`), for hierarchical batches; `nil`
  /// when the data has none.
  public var superLabels: [Int]?
  /// A context; see the properties.
  public init(labels: [Int], seed: UInt64 = 0, superLabels: [Int]? = nil) {
    self.labels = labels
    self.seed = seed
    self.superLabels = superLabels
  }
}

/// What a schedule factory knows: the length of the run.
public struct ScheduleContext: Sendable {
  /// Batches per epoch.
  public var stepsPerEpoch: Int
  /// Epochs of the run.
  public var epochs: Int
  /// A context; see the properties.
  public init(stepsPerEpoch: Int, epochs: Int) {
    self.stepsPerEpoch = stepsPerEpoch
    self.epochs = epochs
  }
}

/// What an optimizer factory knows (nothing yet: an optimizer is made from its hyperparameters).
public struct OptimizerContext: Sendable {
  /// The empty context.
  public init() {}
}

/// Networks by name; each is made type-erased, specialised where it is registered.
public typealias NetworkRegistry = ComponentRegistry<AnyEmbeddingNetwork<Float>, NetworkContext>
/// Miners (tuple samplers) by name.
public typealias MinerRegistry = ComponentRegistry<AnyTupleSampler<Float>, MinerContext>
/// Batch samplers by name.
public typealias BatchSamplerRegistry = ComponentRegistry<any BatchSampler, BatchContext>
/// Optimizers by name.
public typealias OptimizerRegistry = ComponentRegistry<AnyOptimizer<Float>, OptimizerContext>
/// Learning-rate schedules by name.
public typealias ScheduleRegistry = ComponentRegistry<any LearningRateSchedule, ScheduleContext>

/// Refuses a network whose parameters alone (weights, their gradients and two Adam moments: 16
/// bytes a scalar) would take more than half of this machine's memory, before allocating any of
/// it: an allocation that large ends the process instead of failing.
func checkSize(_ component: String, parameters: Double) throws {
  let bytes = parameters * 16, limit = Double(ProcessInfo.processInfo.physicalMemory) / 2
  guard bytes <= limit else {
    throw SpecificationError(
      String(format: "%@: %.3g parameters would need %.1f GiB for training, over half of this machine's %.1f GiB",
        component, parameters, bytes / 1_073_741_824, 2 * limit / 1_073_741_824))
  }
}

/// The image shape a convolutional network needs, or an error naming the network.
func imageShape(_ name: String, _ context: NetworkContext) throws -> ImageShape {
  guard let s = context.imageShape, s.height * s.width * s.channels == context.inputFeatures, s.height >= 4, s.width >= 4 else {
    throw SpecificationError("\(name) needs image data (Fashion-MNIST); this data has \(context.inputFeatures) flat features")
  }
  return s
}

extension ComponentRegistry where Product == AnyEmbeddingNetwork<Float>, Context == NetworkContext {
  /// The built-in networks: `mlp`, `local`, `convnet-s`, `resnet18`, `resnet34` and `resnet50`.
  public static var standard: NetworkRegistry {
    NetworkRegistry(kind: "network", [
      ComponentFactory("mlp", summary: "Linear → ReLU blocks → Linear (784 → 512 → 128)", hyperparameters: [
        HyperparameterSpec("hidden", .integer, default: "512", "width of the hidden layer (0: none)", range: .nonNegative),
        HyperparameterSpec("depth", .integer, default: "1", "number of hidden layers", range: .nonNegative),
        HyperparameterSpec("embedding", .integer, default: "128", "embedding dimension", range: .atLeast(1)),
        HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
        HyperparameterSpec("batchnorm", .boolean, default: "false", "BatchNorm before each ReLU"),
      ]) { v, c in
        let hidden = try v.integer("hidden"), depth = try v.integer("depth"), embedding = try v.integer("embedding")
        // Input → hidden, (depth − 1) × hidden → hidden, hidden → embedding (or input → embedding),
        // and each layer's own bookkeeping counted as 64 scalars.
        let (x, h, e) = (Double(c.inputFeatures), Double(hidden), Double(embedding))
        try checkSize(
          "mlp",
          parameters: hidden == 0 || depth == 0 ? (x + 1) * e : (x + 1) * h + Double(depth - 1) * (h + 1) * h + (h + 1) * e + 64 * Double(depth))
        return AnyEmbeddingNetwork(MLP<Float>.mlp(
          inputFeatures: c.inputFeatures, hidden: hidden == 0 ? [] : Array(repeating: hidden, count: depth), embeddingDimension: embedding,
          normalize: try v.boolean("normalize"), batchNorm: try v.boolean("batchnorm"), seed: c.seed))
      },
      ComponentFactory(
        "local", summary: "Conv k×k (1→C) → ReLU → Conv m×m (C→out), full resolution, no projection (28·28·out dims)",
        hyperparameters: [
          HyperparameterSpec("channels", .integer, default: "8", "local filters", range: .atLeast(1)),
          HyperparameterSpec("kernel", .integer, default: "5", "filter size k (odd)", range: .atLeast(1)),
          HyperparameterSpec("mix", .integer, default: "1", "size m of the mixing filter (odd)", range: .atLeast(1)),
          HyperparameterSpec("out", .integer, default: "1", "output maps per pixel", range: .atLeast(1)),
          HyperparameterSpec("init", .choice(["random", "identity"]), default: "random", "identity: start as the (shifted) input"),
          HyperparameterSpec("shift", .real, default: "1", "identity: bias of the pass-through filter (inputs below −shift are cut)"),
          HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
        ]
      ) { v, c in
        let s = try imageShape("local", c)
        let channels = try v.integer("channels"), kernel = try v.integer("kernel"), mix = try v.integer("mix"), out = try v.integer("out")
        let side = Swift.min(s.height, s.width)
        guard kernel % 2 == 1, kernel <= side, mix % 2 == 1, mix <= side else {
          throw SpecificationError("local: channels and out must be positive, and kernel and mix odd and at most the image size")
        }
        // Parameters, plus a batch of 128 images' full-resolution maps counted at a quarter (4 bytes each).
        let pixels = Double(s.height * s.width)
        try checkSize("local", parameters: Double(channels) * Double(kernel * kernel * s.channels + 1)
          + Double(out) * Double(mix * mix * channels + 1) + 128 * pixels * Double(channels + out) / 2)
        return AnyEmbeddingNetwork(LocalNet<Float>.localNet(
          input: s, channels: channels, kernel: kernel, mixKernel: mix, outChannels: out, normalize: try v.boolean("normalize"),
          identity: try v.string("init") == "identity", shift: Float(try v.real("shift")), seed: c.seed))
      },
      ComponentFactory("convnet-s", summary: "2 × (Conv3×3 → ReLU → MaxPool2) → Linear (1→32→64, 3136 → 128)", hyperparameters: [
        HyperparameterSpec("width", .integer, default: "32", "channels of the first block (doubled after)", range: .atLeast(1)),
        HyperparameterSpec("embedding", .integer, default: "128", "embedding dimension", range: .atLeast(1)),
        HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
        HyperparameterSpec("batchnorm", .boolean, default: "false", "BatchNorm after each convolution"),
      ]) { v, c in
        let s = try imageShape("convnet-s", c)
        let width = try v.integer("width"), embedding = try v.integer("embedding")
        let w = Double(width), pixels = Double(s.height * s.width)
        try checkSize("convnet-s", parameters: w * Double(9 * s.channels + 1) + 2 * w * (9 * w + 1)
          + (pixels / 16 * 2 * w + 1) * Double(embedding) + 128 * pixels * 3 * w / 2)
        return AnyEmbeddingNetwork(ConvNetS<Float>.convNetS(
          input: s, channels: [width, 2 * width], embeddingDimension: embedding, normalize: try v.boolean("normalize"),
          batchNorm: try v.boolean("batchnorm"), seed: c.seed))
      },
      ComponentFactory("resnet18", summary: "torchvision's ResNet-18 (basic blocks 2-2-2-2, 11.2M) → fc embedding; weights= a torchvision state dict",
        hyperparameters: resNetSpecs) { v, c in try resNet(.resnet18, v, c) },
      ComponentFactory("resnet34", summary: "torchvision's ResNet-34 (basic blocks 3-4-6-3, 21.3M) → fc embedding; weights= a torchvision state dict",
        hyperparameters: resNetSpecs) { v, c in try resNet(.resnet34, v, c) },
      ComponentFactory("resnet50", summary: "torchvision's ResNet-50 (bottlenecks 3-4-6-3, 23.5M) → fc embedding; weights= a torchvision state dict",
        hyperparameters: resNetSpecs) { v, c in try resNet(.resnet50, v, c) },
    ])
  }
}

/// A miner's `max` cap on tuples (`nil` for 0: none).
func cap(_ v: HyperparameterValues) throws -> Int? {
  let m = try v.integer("max")
  return m > 0 ? m : nil
}

/// A batch sampler's `size`, refused when the training set is smaller.
func batchSize(_ v: HyperparameterValues, _ c: BatchContext) throws -> Int {
  let size = try v.integer("size")
  guard size <= c.labels.count else { throw SpecificationError("\(v.component): size \(size) exceeds the \(c.labels.count) training samples") }
  return size
}

extension ComponentRegistry where Product == AnyTupleSampler<Float>, Context == MinerContext {
  /// The built-in miners.
  public static var standard: MinerRegistry {
    return MinerRegistry(kind: "miner", [
      ComponentFactory("none", summary: "no mining: every pair or triplet") { _, _ in AnyTupleSampler(NoMining<Float>()) },
      ComponentFactory("semihard", summary: "PML TripletMarginMiner(type=semihard): 0 < d(a,n) − d(a,p) ≤ margin", hyperparameters: [
        HyperparameterSpec("margin", .real, default: "0.2", "window width", range: .nonNegative),
        HyperparameterSpec("max", .integer, default: "0", "cap on triplets (0: none)", range: .nonNegative),
      ]) { v, c in
        AnyTupleSampler(TripletMarginMiner<Float>(margin: Float(try v.real("margin")), type: .semihard, maxTuples: try cap(v), seed: c.seed))
      },
      ComponentFactory("triplet-margin", summary: "PML TripletMarginMiner", hyperparameters: [
        HyperparameterSpec("margin", .real, default: "0.2", "window width", range: .nonNegative),
        HyperparameterSpec("type", .choice(["all", "hard", "semihard", "easy"]), default: "all", "which triplets"),
        HyperparameterSpec("max", .integer, default: "0", "cap on triplets (0: none)", range: .nonNegative),
      ]) { v, c in
        AnyTupleSampler(TripletMarginMiner<Float>(
          margin: Float(try v.real("margin")), type: TripletType(rawValue: try v.string("type"))!, maxTuples: try cap(v), seed: c.seed))
      },
      ComponentFactory("batch-hard", summary: "hardest positive and negative per anchor (Hermans et al. 2017)") { _, _ in
        AnyTupleSampler(BatchHardMiner<Float>())
      },
      ComponentFactory(
        "batch-easy-hard", summary: "PML BatchEasyHardMiner: one positive and one negative per anchor by strategy",
        hyperparameters: [
          HyperparameterSpec("pos_strategy", .choice(EasyHardStrategy.allCases.map(\.rawValue)), default: "easy", "which positive"),
          HyperparameterSpec("neg_strategy", .choice(EasyHardStrategy.allCases.map(\.rawValue)), default: "semihard", "which negative"),
        ]
      ) { v, _ in
        let positive = EasyHardStrategy(rawValue: try v.string("pos_strategy"))!
        let negative = EasyHardStrategy(rawValue: try v.string("neg_strategy"))!
        if let reason = BatchEasyHardMiner<Float>.refusal(positive: positive, negative: negative) {
          throw SpecificationError("batch-easy-hard: \(reason)")
        }
        return AnyTupleSampler(BatchEasyHardMiner<Float>(positive: positive, negative: negative))
      },
      ComponentFactory("angular", summary: "PML AngularMiner: triplets whose angle at the negative exceeds angle", hyperparameters: [
        HyperparameterSpec("angle", .real, default: "20", "threshold angle in degrees", range: ValueRange(lower: (0, false), upper: (90, false)))
      ]) { v, _ in AnyTupleSampler(AngularMiner<Float>(angleDegrees: try v.real("angle"))) },
      ComponentFactory("hdc", summary: "PML HDCMiner: the hardest fraction of the positive and of the negative pairs", hyperparameters: [
        HyperparameterSpec("filter_percentage", .real, default: "0.5", "fraction of each list kept", range: .leftOpen(0, 1))
      ]) { v, _ in AnyTupleSampler(HDCMiner<Float>(filterPercentage: try v.real("filter_percentage"))) },
      ComponentFactory("uniform-histogram", summary: "PML UniformHistogramMiner: pairs drawn evenly over the score range (seeded)", hyperparameters: [
        HyperparameterSpec("bins", .integer, default: "100", "bins over each list's score range", range: .closed(1, 100_000)),
        HyperparameterSpec("pos_per_bin", .integer, default: "10", "positive pairs drawn per bin", range: .closed(1, 100_000)),
        HyperparameterSpec("neg_per_bin", .integer, default: "10", "negative pairs drawn per bin", range: .closed(1, 100_000)),
      ]) { v, c in
        // Each non-empty bin draws its pairs: bound what a batch can produce (16 bytes a pair).
        let most = try v.integer("bins") * max(try v.integer("pos_per_bin"), try v.integer("neg_per_bin"))
        guard most <= 10_000_000 else {
          throw SpecificationError("uniform-histogram: bins × pairs per bin = \(most) pairs per list and batch; at most 10,000,000")
        }
        return AnyTupleSampler(UniformHistogramMiner<Float>(
          bins: try v.integer("bins"), positivesPerBin: try v.integer("pos_per_bin"), negativesPerBin: try v.integer("neg_per_bin"),
          seed: c.seed))
      },
      ComponentFactory("packaged-triplets", summary: "PML EmbeddingsAlreadyPackagedAsTriplets: rows 3i, 3i+1, 3i+2 are a triplet") { _, _ in
        AnyTupleSampler(PackagedTripletsMiner<Float>())
      },
      ComponentFactory("facenet-semihard", summary: "FaceNet's rule: nearest negative beyond the positive") { _, _ in
        AnyTupleSampler(FaceNetSemiHardMiner<Float>())
      },
      ComponentFactory("multi-similarity", summary: "PML MultiSimilarityMiner", hyperparameters: [
        HyperparameterSpec("epsilon", .real, default: "0.1", "slack ε", range: .nonNegative)
      ]) { v, _ in AnyTupleSampler(MultiSimilarityMiner<Float>(epsilon: Float(try v.real("epsilon")))) },
      ComponentFactory("pair-margin", summary: "PML PairMarginMiner", hyperparameters: [
        HyperparameterSpec("pos_margin", .real, default: "0.2", "positives farther than this", range: .nonNegative),
        HyperparameterSpec("neg_margin", .real, default: "0.8", "negatives closer than this", range: .nonNegative),
      ]) { v, _ in
        AnyTupleSampler(PairMarginMiner<Float>(positiveMargin: Float(try v.real("pos_margin")), negativeMargin: Float(try v.real("neg_margin"))))
      },
      ComponentFactory("distance-weighted", summary: "Wu et al. 2017 distance-weighted sampling (seeded)", hyperparameters: [
        HyperparameterSpec("cutoff", .real, default: "0.5", "distances clipped below", range: .nonNegative),
        HyperparameterSpec("nonzero_loss_cutoff", .real, default: "1.4", "negatives beyond never drawn", range: .positive),
      ]) { v, c in
        guard c.embeddingDimension > 3 else { throw SpecificationError("distance-weighted needs an embedding dimension above 3") }
        return AnyTupleSampler(DistanceWeightedMiner<Float>(
          dimension: c.embeddingDimension, cutoff: Float(try v.real("cutoff")), nonzeroLossCutoff: Float(try v.real("nonzero_loss_cutoff")),
          seed: c.seed))
      },
    ])
  }
}

extension ComponentRegistry where Product == any BatchSampler, Context == BatchContext {
  /// The built-in batch samplers.
  public static var standard: BatchSamplerRegistry {
    BatchSamplerRegistry(kind: "batch sampler", [
      ComponentFactory("m-per-class", summary: "groups of m samples per class (PML MPerClassSampler, larger batches allowed)", hyperparameters: [
        HyperparameterSpec("m", .integer, default: "4", "samples per class group", range: .atLeast(1)),
        HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2)),
      ]) { v, c in
        let size = try batchSize(v, c), m = try v.integer("m")
        guard size % m == 0 else { throw SpecificationError("m-per-class: size \(size) must be a multiple of m = \(m)") }
        return MPerClassSampler(labels: c.labels, m: m, batchSize: size, seed: c.seed)
      },
      ComponentFactory(
        "hierarchical", summary: "a few super-classes per batch, m samples per class (PML HierarchicalSampler; needs --super-classes)",
        hyperparameters: [
          HyperparameterSpec("size", .integer, default: "128", "batch size, a multiple of super_per_batch", range: .atLeast(2)),
          HyperparameterSpec("m", .integer, default: "4", "samples per class (PML's samples_per_class)", range: .atLeast(1)),
          HyperparameterSpec("super_per_batch", .integer, default: "2", "super-classes per batch (PML's super_classes_per_batch)", range: .atLeast(1)),
          HyperparameterSpec(
            "batches_per_tuple", .integer, default: "4", "batches of each combination of super-classes per epoch (PML's batches_per_super_tuple)",
            range: .atLeast(1)),
        ]
      ) { v, c in
        guard let superLabels = c.superLabels else {
          throw SpecificationError("hierarchical needs each class's super-class: give --super-classes FILE (lines CLASS,SUPER)")
        }
        return try HierarchicalBatchSampler(
          labels: c.labels, superLabels: superLabels, batchSize: try batchSize(v, c), samplesPerClass: try v.integer("m"),
          superClassesPerBatch: try v.integer("super_per_batch"), batchesPerCombination: try v.integer("batches_per_tuple"), seed: c.seed)
      },
      ComponentFactory("shuffled", summary: "plain shuffled batches, last partial one dropped", hyperparameters: [
        HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2))
      ]) { v, c in ShuffledBatchSampler(count: c.labels.count, batchSize: try batchSize(v, c), seed: c.seed) },
      ComponentFactory(
        "views", summary: "size/views samples, each repeated views times (differently with --augment): SimCLR/SupCon batches",
        hyperparameters: [
          HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2)),
          HyperparameterSpec("views", .integer, default: "2", "views per sample", range: .atLeast(2)),
          HyperparameterSpec("labels", .choice(["class", "instance"]), default: "class", "positives: same class (SupCon) or same sample only (SimCLR)"),
        ]
      ) { v, c in
        let size = try batchSize(v, c), views = try v.integer("views")
        guard size % views == 0 else { throw SpecificationError("views: size \(size) must be a multiple of views = \(views) ≥ 2") }
        return ViewsBatchSampler(count: c.labels.count, batchSize: size, views: views, seed: c.seed)
      },
      ComponentFactory(
        "fixed-triplets", summary: "a fixed set of triplets drawn once, whole triplets per batch (PML FixedSetOfTriplets; use --miner packaged-triplets)",
        hyperparameters: [
          HyperparameterSpec("size", .integer, default: "126", "batch size, a multiple of 3", range: .atLeast(3)),
          HyperparameterSpec("triplets", .integer, default: "0", "triplets in the set (0: as many as training samples)", range: .nonNegative),
        ]
      ) { v, c in
        let size = try batchSize(v, c), wanted = try v.integer("triplets")
        guard size % 3 == 0 else { throw SpecificationError("fixed-triplets: size \(size) must be a multiple of 3") }
        guard wanted <= 100_000_000 else { throw SpecificationError("fixed-triplets: triplets=\(wanted) is more than 10⁸") }
        guard let sampler = FixedTripletsBatchSampler(labels: c.labels, count: wanted > 0 ? wanted : c.labels.count, batchSize: size, seed: c.seed)
        else { throw SpecificationError("fixed-triplets: no triplet exists: the training data needs a class with two samples and a second class") }
        return sampler
      },
    ])
  }
}

extension ComponentRegistry where Product == AnyOptimizer<Float>, Context == OptimizerContext {
  /// Parameter groups of the built-in optimizers. Group 0: the network (a pretrained network's
  /// head); 1: the loss's learned parameters (proxies, class weights, centers), at `proxy_lr`;
  /// 2: the network's first layer, at `first_lr` × `lr`; 3: a pretrained network's backbone
  /// (every parameter but the head), at `backbone_lr` × `lr`.
  static func groups(_ v: HyperparameterValues) throws -> (lr: Double, decay: Double, groups: [ParameterGroup]) {
    let lr = try v.real("lr"), proxy = try v.real("proxy_lr"), first = try v.real("first_lr"), backbone = try v.real("backbone_lr")
    return (
      lr, try v.real("weight_decay"),
      [ParameterGroup(), ParameterGroup(learningRate: proxy), ParameterGroup(learningRate: lr * first), ParameterGroup(learningRate: lr * backbone)]
    )
  }

  /// The built-in optimizers: `adam`, `adamw` and `sgd`.
  public static var standard: OptimizerRegistry {
    let shared = [
      HyperparameterSpec("proxy_lr", .real, default: "0.01", "learning rate of the loss's learned parameters: proxies, class weights (group 1)", range: .positive),
      HyperparameterSpec("first_lr", .real, default: "1", "factor on the first layer's learning rate (0 freezes it)", range: .closed(0, 1)),
      HyperparameterSpec("backbone_lr", .real, default: "1", "factor on a pretrained network's backbone learning rate (ResNets: all but fc; group 3)", range: .closed(0, 1)),
    ]
    return OptimizerRegistry(kind: "optimizer", [
      ComponentFactory("adam", summary: "Adam (PyTorch's update)", hyperparameters: [
        HyperparameterSpec("lr", .real, default: "0.001", "learning rate", range: .positive),
        HyperparameterSpec("weight_decay", .real, default: "0", "L2 weight decay", range: .nonNegative),
      ] + shared) { v, _ in
        let g = try groups(v)
        return AnyOptimizer(Adam<Float>(learningRate: g.lr, weightDecay: g.decay, groups: g.groups))
      },
      ComponentFactory("adamw", summary: "AdamW (decoupled weight decay)", hyperparameters: [
        HyperparameterSpec("lr", .real, default: "0.001", "learning rate", range: .positive),
        HyperparameterSpec("weight_decay", .real, default: "0.01", "decoupled weight decay", range: .nonNegative),
      ] + shared) { v, _ in
        let g = try groups(v)
        return AnyOptimizer(Adam<Float>.adamW(learningRate: g.lr, weightDecay: g.decay, groups: g.groups))
      },
      ComponentFactory("sgd", summary: "SGD with momentum", hyperparameters: [
        HyperparameterSpec("lr", .real, default: "0.01", "learning rate", range: .positive),
        HyperparameterSpec("momentum", .real, default: "0.9", "momentum", range: .halfOpen(0, 1)),
        HyperparameterSpec("nesterov", .boolean, default: "false", "Nesterov momentum"),
        HyperparameterSpec("weight_decay", .real, default: "0", "L2 weight decay", range: .nonNegative),
      ] + shared) { v, _ in
        let g = try groups(v)
        let momentum = try v.real("momentum"), nesterov = try v.boolean("nesterov")
        guard !nesterov || momentum > 0 else { throw SpecificationError("sgd: nesterov=true needs momentum > 0 (momentum=\(momentum))") }
        return AnyOptimizer(SGD<Float>(learningRate: g.lr, momentum: momentum, nesterov: nesterov, weightDecay: g.decay, groups: g.groups))
      },
    ])
  }
}

extension ComponentRegistry where Product == any LearningRateSchedule, Context == ScheduleContext {
  /// The built-in schedules: `constant`, `cosine` and `step`.
  public static var standard: ScheduleRegistry {
    ScheduleRegistry(kind: "schedule", [
      ComponentFactory("constant", summary: "the base rate throughout") { _, _ in ConstantSchedule() },
      ComponentFactory("cosine", summary: "cosine annealing over the run", hyperparameters: [
        HyperparameterSpec("min", .real, default: "0", "final factor", range: .closed(0, 1))
      ]) { v, c in
        let (total, overflow) = c.stepsPerEpoch.multipliedReportingOverflow(by: c.epochs)
        return CosineSchedule(totalSteps: overflow ? Int.max : Swift.max(1, total), minimumFactor: try v.real("min"))
      },
      ComponentFactory("step", summary: "multiply by gamma every `every` epochs", hyperparameters: [
        HyperparameterSpec("every", .integer, default: "10", "epochs between decays", range: .atLeast(1)),
        HyperparameterSpec("gamma", .real, default: "0.1", "factor", range: .leftOpen(0, 1)),
      ]) { v, c in
        let (size, overflow) = try v.integer("every").multipliedReportingOverflow(by: c.stepsPerEpoch)
        return StepSchedule(stepSize: overflow ? Int.max : Swift.max(1, size), gamma: try v.real("gamma"))
      },
    ])
  }
}
