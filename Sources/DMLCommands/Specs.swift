import Foundation
import MetricLearning

/// What the commands build components from: the loss registry (set once at startup; a
/// researcher's package adds its own losses before calling `DML.main()`).
public enum CommandRegistry {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var _losses = LossRegistry.standard
  nonisolated(unsafe) private static var _miners: [MinerFactory] = []

  /// Miners registered beside the built-in ones (`--miner NAME`, listed by `dml list`). A
  /// researcher's package appends its own before calling `DML.main()`.
  public static var miners: [MinerFactory] {
    get { lock.withLock { _miners } }
    set { lock.withLock { _miners = newValue } }
  }

  /// The registry the commands use.
  public static var losses: LossRegistry {
    get { lock.withLock { _losses } }
    set { lock.withLock { _losses = newValue } }
  }
}

/// A miner the command line can build: its name, summary and declared hyperparameters (its
/// flags), and how to make it from validated values, the embedding dimension and a seed.
public struct MinerFactory: Sendable {
  /// The name `--miner` selects it by, as listed by `dml list`.
  public let name: String
  /// A one-line description for `dml list`.
  public let summary: String
  /// The hyperparameters `--miner name:key=value` accepts, with their defaults; values are
  /// validated against them before `make` is called.
  public let hyperparameters: [HyperparameterSpec]
  /// Makes the miner from the validated values, the embedding dimension and the run's seed.
  public let make: @Sendable (HyperparameterValues, _ embeddingDimension: Int, _ seed: UInt64) throws -> AnyTupleSampler<Float>

  /// A factory named `name`; see the properties for each argument.
  public init(
    name: String, summary: String, hyperparameters: [HyperparameterSpec],
    make: @escaping @Sendable (HyperparameterValues, _ embeddingDimension: Int, _ seed: UInt64) throws -> AnyTupleSampler<Float>
  ) {
    self.name = name
    self.summary = summary
    self.hyperparameters = hyperparameters
    self.make = make
  }
}

/// A declared component (network, miner, batch sampler, optimizer, schedule) for `dml list` and
/// for validation of `name:key=value` specifications.
struct ComponentSpec {
  let name: String
  let summary: String
  let hyperparameters: [HyperparameterSpec]

  func values(_ text: String) throws -> HyperparameterValues {
    var v = try HyperparameterValues(parsing: text)
    try v.validate(against: hyperparameters)
    return v
  }
}

enum Components {
  static let networks = [
    ComponentSpec(name: "mlp", summary: "Linear → ReLU blocks → Linear (784 → 512 → 128)", hyperparameters: [
      HyperparameterSpec("hidden", .integer, default: "512", "width of the hidden layer (0: none)", range: .nonNegative),
      HyperparameterSpec("depth", .integer, default: "1", "number of hidden layers", range: .nonNegative),
      HyperparameterSpec("embedding", .integer, default: "128", "embedding dimension", range: .atLeast(1)),
      HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
      HyperparameterSpec("batchnorm", .boolean, default: "false", "BatchNorm before each ReLU"),
    ]),
    ComponentSpec(name: "local", summary: "Conv k×k (1→C) → ReLU → Conv m×m (C→out), full resolution, no projection (28·28·out dims)", hyperparameters: [
      HyperparameterSpec("channels", .integer, default: "8", "local filters", range: .atLeast(1)),
      HyperparameterSpec("kernel", .integer, default: "5", "filter size k (odd)", range: .atLeast(1)),
      HyperparameterSpec("mix", .integer, default: "1", "size m of the mixing filter (odd)", range: .atLeast(1)),
      HyperparameterSpec("out", .integer, default: "1", "output maps per pixel", range: .atLeast(1)),
      HyperparameterSpec("init", .choice(["random", "identity"]), default: "random", "identity: start as the (shifted) input"),
      HyperparameterSpec("shift", .real, default: "1", "identity: bias of the pass-through filter (inputs below −shift are cut)"),
      HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
    ]),
    ComponentSpec(name: "convnet-s", summary: "2 × (Conv3×3 → ReLU → MaxPool2) → Linear (1→32→64, 3136 → 128)", hyperparameters: [
      HyperparameterSpec("width", .integer, default: "32", "channels of the first block (doubled after)", range: .atLeast(1)),
      HyperparameterSpec("embedding", .integer, default: "128", "embedding dimension", range: .atLeast(1)),
      HyperparameterSpec("normalize", .boolean, default: "true", "L2-normalise the embeddings"),
      HyperparameterSpec("batchnorm", .boolean, default: "false", "BatchNorm after each convolution"),
    ]),
  ]

  static let miners = [
    ComponentSpec(name: "none", summary: "no mining: every pair or triplet", hyperparameters: []),
    ComponentSpec(name: "semihard", summary: "PML TripletMarginMiner(type=semihard): 0 < d(a,n) − d(a,p) ≤ margin", hyperparameters: [
      HyperparameterSpec("margin", .real, default: "0.2", "window width", range: .nonNegative), HyperparameterSpec("max", .integer, default: "0", "cap on triplets (0: none)", range: .nonNegative),
    ]),
    ComponentSpec(name: "triplet-margin", summary: "PML TripletMarginMiner", hyperparameters: [
      HyperparameterSpec("margin", .real, default: "0.2", "window width", range: .nonNegative),
      HyperparameterSpec("type", .choice(["all", "hard", "semihard", "easy"]), default: "all", "which triplets"),
      HyperparameterSpec("max", .integer, default: "0", "cap on triplets (0: none)", range: .nonNegative),
    ]),
    ComponentSpec(name: "batch-hard", summary: "hardest positive and negative per anchor (Hermans et al. 2017)", hyperparameters: []),
    ComponentSpec(name: "facenet-semihard", summary: "FaceNet's rule: nearest negative beyond the positive", hyperparameters: []),
    ComponentSpec(name: "multi-similarity", summary: "PML MultiSimilarityMiner", hyperparameters: [HyperparameterSpec("epsilon", .real, default: "0.1", "slack ε", range: .nonNegative)]),
    ComponentSpec(name: "pair-margin", summary: "PML PairMarginMiner", hyperparameters: [
      HyperparameterSpec("pos_margin", .real, default: "0.2", "positives farther than this", range: .nonNegative),
      HyperparameterSpec("neg_margin", .real, default: "0.8", "negatives closer than this", range: .nonNegative),
    ]),
    ComponentSpec(name: "distance-weighted", summary: "Wu et al. 2017 distance-weighted sampling (seeded)", hyperparameters: [
      HyperparameterSpec("cutoff", .real, default: "0.5", "distances clipped below", range: .nonNegative),
      HyperparameterSpec("nonzero_loss_cutoff", .real, default: "1.4", "negatives beyond never drawn", range: .positive),
    ]),
  ]

  static let batches = [
    ComponentSpec(name: "m-per-class", summary: "groups of m samples per class (PML MPerClassSampler, larger batches allowed)", hyperparameters: [
      HyperparameterSpec("m", .integer, default: "4", "samples per class group", range: .atLeast(1)), HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2)),
    ]),
    ComponentSpec(name: "shuffled", summary: "plain shuffled batches, last partial one dropped", hyperparameters: [
      HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2)),
    ]),
    ComponentSpec(name: "views", summary: "size/views samples, each repeated views times (differently with --augment): SimCLR/SupCon batches", hyperparameters: [
      HyperparameterSpec("size", .integer, default: "128", "batch size", range: .atLeast(2)), HyperparameterSpec("views", .integer, default: "2", "views per sample", range: .atLeast(2)),
      HyperparameterSpec("labels", .choice(["class", "instance"]), default: "class", "positives: same class (SupCon) or same sample only (SimCLR)"),
    ]),
  ]

  static let optimizers = [
    ComponentSpec(name: "adam", summary: "Adam (PyTorch's update)", hyperparameters: [
      HyperparameterSpec("lr", .real, default: "0.001", "learning rate", range: .positive), HyperparameterSpec("weight_decay", .real, default: "0", "L2 weight decay", range: .nonNegative),
      HyperparameterSpec("proxy_lr", .real, default: "0.01", "learning rate of proxies and class weights (group 1)", range: .positive),
      HyperparameterSpec("first_lr", .real, default: "1", "factor on the first layer\'s learning rate (0 freezes it)", range: .closed(0, 1)),
    ]),
    ComponentSpec(name: "adamw", summary: "AdamW (decoupled weight decay)", hyperparameters: [
      HyperparameterSpec("lr", .real, default: "0.001", "learning rate", range: .positive), HyperparameterSpec("weight_decay", .real, default: "0.01", "decoupled weight decay", range: .nonNegative),
      HyperparameterSpec("proxy_lr", .real, default: "0.01", "learning rate of group 1", range: .positive),
      HyperparameterSpec("first_lr", .real, default: "1", "factor on the first layer\'s learning rate (0 freezes it)", range: .closed(0, 1)),
    ]),
    ComponentSpec(name: "sgd", summary: "SGD with momentum", hyperparameters: [
      HyperparameterSpec("lr", .real, default: "0.01", "learning rate", range: .positive), HyperparameterSpec("momentum", .real, default: "0.9", "momentum", range: .halfOpen(0, 1)),
      HyperparameterSpec("nesterov", .boolean, default: "false", "Nesterov momentum"),
      HyperparameterSpec("weight_decay", .real, default: "0", "L2 weight decay", range: .nonNegative),
      HyperparameterSpec("proxy_lr", .real, default: "0.01", "learning rate of group 1", range: .positive),
      HyperparameterSpec("first_lr", .real, default: "1", "factor on the first layer\'s learning rate (0 freezes it)", range: .closed(0, 1)),
    ]),
  ]

  static let schedules = [
    ComponentSpec(name: "constant", summary: "the base rate throughout", hyperparameters: []),
    ComponentSpec(name: "cosine", summary: "cosine annealing over the run", hyperparameters: [HyperparameterSpec("min", .real, default: "0", "final factor", range: .closed(0, 1))]),
    ComponentSpec(name: "step", summary: "multiply by gamma every `every` epochs", hyperparameters: [
      HyperparameterSpec("every", .integer, default: "10", "epochs between decays", range: .atLeast(1)), HyperparameterSpec("gamma", .real, default: "0.1", "factor", range: .leftOpen(0, 1)),
    ]),
  ]

  /// The built-in miners and the registered ones (`CommandRegistry.miners`).
  static var allMiners: [ComponentSpec] {
    miners + CommandRegistry.miners.map { ComponentSpec(name: $0.name, summary: $0.summary, hyperparameters: $0.hyperparameters) }
  }

  static func find(_ list: [ComponentSpec], _ text: String, kind: String) throws -> (ComponentSpec, HyperparameterValues) {
    let name = try HyperparameterValues(parsing: text).component
    guard let spec = list.first(where: { $0.name == name }) else {
      throw SpecificationError("unknown \(kind) '\(name)'; known: " + list.map(\.name).joined(separator: ", "))
    }
    return (spec, try spec.values(text))
  }
}
