import ArgumentParser
import Foundation
import MetricLearning

/// The run that `dml train` and every trial of `dml tune` build from the same flags.
typealias CommandRun = TrainingRun<AnyEmbeddingNetwork<Float>, AnyEmbeddingLoss<Float>, AnyTupleSampler<Float>, AnyOptimizer<Float>>

/// A training recipe as the flags give it: each component as `name:key=value` text, looked up in
/// `CommandRegistry`. `dml train` and `dml tune` both build their runs from one.
struct Recipe {
  var network = "mlp"
  var loss = ["contrastive"]
  var miner = "none"
  var batch = "m-per-class:m=4,size=128"
  var optimizer = "adam:lr=0.001"
  var schedule = "constant"
  var augment = "none"
  var subclasses = 1
  var memory = "none"
  var offlineMining = "none"
  var epochs = 5
  var patience: Int?
  var seed: UInt64 = 0
  var logEvery = 50
  /// Fine-tuning warm-up: steps during which only the head of a pretrained network trains.
  var freezeBackboneSteps = 0
  var compute = ComputeContext.automatic

  /// Checks the flags that need no data.
  func validate() throws {
    do { _ = try ImageAugmentation(parsing: augment, registry: CommandRegistry.augmentations) } catch { throw ValidationError("--augment: \(error)") }
    _ = try memorySettings()
    _ = try offlineSettings(batchSize: 2)
  }

  /// The trainer, the batches and the settings of a run on `train`, every component built and
  /// checked against the others; nothing is written yet. `warn` receives the notes that do not
  /// stop the run.
  /// The name prefixes of the head of the network `spec`, for networks whose backbone is usually
  /// pretrained (the ResNets: `fc.`); `nil` for the others.
  static func head(ofNetwork spec: String) -> [String]? {
    guard let name = try? HyperparameterValues(parsing: spec).component, ["resnet18", "resnet34", "resnet50"].contains(name) else { return nil }
    return ["fc."]
  }

  /// `loadsWeights` false (a resumed run) skips the network's `weights=` file: the checkpoint
  /// holds every parameter.
  func parts(train: Dataset, loadsWeights: Bool = true, warn: (String) -> Void) throws -> (trainer: CommandRun.TrainerType, batches: any BatchSampler, settings: RunSettings) {
    let classes = Set(train.labels).count
    // Training images read as the run goes have no rows in memory: their shape says the width.
    let inputFeatures = train.features.columns > 0 ? train.features.columns : train.imageShape.map { $0.height * $0.width * $0.channels } ?? 0
    var net = try Builders.network(network, inputFeatures: inputFeatures, imageShape: train.imageShape, seed: seed, loadsWeights: loadsWeights)
    let optimizerValues = try? HyperparameterValues(parsing: optimizer)
    func given(_ key: String) -> Bool { optimizerValues?.given[key] != nil }
    if let head = Self.head(ofNetwork: network) {
      if given("first_lr") { warn("--optimizer first_lr applies to the first layer of the mlp and convnet networks; \(network) ignores it (its backbone learns at backbone_lr × lr)") }
      // A network with a named head (the ResNets): the backbone learns at backbone_lr × lr.
      net.forEachParameter { name, p in if !head.contains(where: { name.hasPrefix($0) }) { p.group = 3 } }
    } else {
      if given("backbone_lr") { warn("--optimizer backbone_lr applies to the pretrained ResNets' backbones; \(network) ignores it (its first layer learns at first_lr × lr)") }
      // The first layer's weight and bias (the first two parameters) learn at first_lr × lr.
      var index = 0
      net.forEachParameter { _, p in
        if index < 2 { p.group = 2 }
        index += 1
      }
    }
    var counts = [Int](repeating: 0, count: classes)
    for y in train.labels where y >= 0 && y < classes { counts[y] += 1 }
    let context = LossContext(classes: classes, embeddingDimension: net.embeddingDimension, seed: seed, classCounts: counts)
    let (builtLoss, usesTuples) = try Builders.loss(loss, context: context)
    var lossValue = builtLoss
    let instance = try instanceLabels()
    // VICReg and the self-supervised losses read the two views of each sample as the two rows of
    // its label.
    let viewLosses = try loss.filter { text in
      let v = try HyperparameterValues(parsing: text)
      return v.component == "vicreg" || (v.given["self_supervised"] ?? "none") != "none"
    }
    if let first = viewLosses.first {
      let values = try Builders.values(CommandRegistry.batches, batch, flag: "--batch")
      guard instance, try values.integer("views") == 2 else {
        throw ValidationError("--loss \(first) compares two views of each sample: use --batch views:labels=instance (views=2), not \(batch)")
      }
    }
    if instance && !usesTuples && viewLosses.count < loss.count {
      throw ValidationError("--batch \(batch): instance labels need pair losses (contrastive, triplet, multi-similarity), not class-based ones")
    }
    // A margin loss with one β per class indexes β by label: instance labels are not classes.
    if instance, let spec = try loss.first(where: { text in
      let v = try HyperparameterValues(parsing: text)
      return v.component == "margin" && ["true", "1", "yes"].contains(v.given["per_class"]?.lowercased() ?? "")
    }) {
      throw ValidationError("--loss \(spec): one β per class needs class labels, and --batch \(batch) gives instance labels")
    }
    if miner != "none", let spec = try loss.first(where: { (Int(try HyperparameterValues(parsing: $0).given["anchor_block"] ?? "0") ?? 0) > 0 }) {
      throw ValidationError("--loss \(spec): anchor blocks use every pair of the batch; --miner \(miner) would need the whole score matrix (use --miner none)")
    }
    if let sets = train.labelSets {
      // Multi-label rows: the loss reads the pairs of the label sets, labels numbering the sets.
      // Every part must read pairs: a class-based part would take the rows' numbers for classes.
      for text in loss {
        let v = try HyperparameterValues(parsing: text)
        let pairs = CommandRegistry.losses.factories[v.component]?.usesTuples ?? false
        guard pairs, (v.given["self_supervised"] ?? "none") == "none", (Int(v.given["anchor_block"] ?? "0") ?? 0) == 0 else {
          throw ValidationError(
            "--loss \(text): multi-label rows need losses over pairs or triplets (contrastive, supcon, ntxent, multi-similarity, triplet, …), without self_supervised or anchor_block")
        }
      }
      guard miner == "none" else { throw ValidationError("--miner \(miner): multi-label rows make their own pairs (shared labels); use --miner none") }
      guard memory == "none" else { throw ValidationError("--memory: multi-label rows cannot use a cross-batch memory") }
      guard offlineMining == "none" else { throw ValidationError("--offline-mining: multi-label rows make their own pairs (shared labels); leave it out") }
      var table = [[Int]](repeating: [], count: classes)
      for (y, set) in zip(train.labels, sets) where y >= 0 && y < classes { table[y] = set }
      lossValue = AnyEmbeddingLoss(MultiLabelLoss(lossValue, labelSets: table))
      if (try? HyperparameterValues(parsing: batch))?.component == "m-per-class" {
        warn("note: multi-label rows: --batch m-per-class groups rows with the same label set; --batch shuffled:size=N draws rows freely")
      }
    }
    let sampler = try Builders.sampler(miner, embedding: net.embeddingDimension, seed: seed &+ 7)
    if miner != "none" && !usesTuples { warn("note: --miner \(miner) is ignored by losses that read no tuples") }
    var trainer = CommandRun.TrainerType(network: net, loss: lossValue, sampler: sampler, optimizer: try Builders.optimizer(optimizer),
      compute: compute)
    if let m = try memorySettings() {
      // A queue longer than the training set would hold each embedding more than once (and a size
      // too large to allocate would end the process).
      guard m.size <= train.labels.count else {
        throw ValidationError("--memory \(memory): size=\(m.size) exceeds the \(train.labels.count) training samples")
      }
      guard lossValue.acceptsMemory else {
        let accepting = CommandRegistry.losses.factories.values.filter(\.acceptsMemory).map(\.name).sorted()
        throw ValidationError("--memory needs losses that compare embeddings with each other (\(accepting.joined(separator: ", "))), not learned proxies or class weights: --loss \(loss.joined(separator: " --loss "))")
      }
      guard sampler.acceptsMemory else { throw ValidationError("--memory: the miner \(miner) cannot use a cross-batch memory") }
      trainer.memory = CrossBatchMemory(capacity: m.size, warmUp: m.warmUp)
    }
    if offlineMining != "none" {
      guard usesTuples else { throw ValidationError("--offline-mining builds batches for pair losses (contrastive, triplet, multi-similarity), not class-based ones") }
      if instance { throw ValidationError("--offline-mining cannot be combined with --batch views:...,labels=instance") }
    }
    let batches = try Builders.batchSampler(batch, labels: train.labels, seed: seed &+ 1, superLabels: train.superLabels)
    let settings = try runSettings(stepsPerEpoch: batches.batchesPerEpoch, imageData: train.imageShape != nil)
    return (trainer, batches, settings)
  }

  /// The settings of a flag that is not a registered component (`--memory`, `--offline-mining`):
  /// `text` checked against `specs` as component `name`, then read by `body`; errors name the flag.
  static func settings<T>(
    _ flag: String, _ text: String, name: String, _ specs: [HyperparameterSpec], _ body: (HyperparameterValues) throws -> T
  ) throws -> T {
    do {
      var v = try HyperparameterValues(parsing: name + ":" + text)
      try v.validate(against: specs)
      return try body(v)
    } catch { throw ValidationError("\(flag) \(text): \(error)") }
  }

  /// `--memory`: the queue's size and warm-up, or `nil`.
  func memorySettings() throws -> (size: Int, warmUp: Int)? {
    guard memory != "none" else { return nil }
    return try Self.settings("--memory", memory, name: "memory", [
      HyperparameterSpec("size", .integer, default: "4096", "embeddings held", range: .atLeast(1)),
      HyperparameterSpec("warmup", .integer, default: "0", "steps before the memory starts filling", range: .nonNegative),
    ]) { v in (try v.integer("size"), try v.integer("warmup")) }
  }

  /// `--offline-mining` settings, for batches of `batchSize` samples.
  func offlineSettings(batchSize: Int) throws -> OfflineMiningSettings? {
    guard offlineMining != "none" else { return nil }
    return try Self.settings("--offline-mining", offlineMining, name: "offline-mining", [
      HyperparameterSpec("every", .integer, default: "1", "mine again every this many epochs", range: .atLeast(1)),
      HyperparameterSpec("steps", .integer, default: "0", "or every this many steps (0: use every)", range: .nonNegative),
      HyperparameterSpec("k", .integer, default: "10", "hard positives and negatives kept per anchor", range: .atLeast(1)),
      HyperparameterSpec("window", .choice(OfflineWindow.allCases.map(\.rawValue)), default: "hard", "hard: nearest negatives; semihard: nearest beyond the hardest positive"),
      HyperparameterSpec("positives", .integer, default: "1", "hard positives per anchor in a batch", range: .nonNegative),
      HyperparameterSpec("negatives", .integer, default: "3", "hard negatives per anchor in a batch", range: .nonNegative),
      .distance(default: "euclidean"),
    ]) { v in
      let k = try v.integer("k"), steps = try v.integer("steps"), positives = try v.integer("positives"), negatives = try v.integer("negatives")
      guard positives + negatives >= 1, positives <= k, negatives <= k else {
        throw SpecificationError("positives=\(positives) and negatives=\(negatives) must lie in 0...k=\(k), not both 0")
      }
      return OfflineMiningSettings(
        everyEpochs: try v.integer("every"), everySteps: steps > 0 ? steps : nil, k: k, window: OfflineWindow(rawValue: try v.string("window"))!,
        positives: positives, negatives: negatives, distance: try v.distance(), batchSize: batchSize)
    }
  }

  /// Sub-class labels: each class's samples clustered by k-means on their inputs (seeded), so
  /// that the loss separates the modes within a class as well as the classes, which keeps
  /// features that the seen classes alone would not need (as MIC, Roth et al. 2019, argues).
  static func subclassLabels(_ data: Dataset, per k: Int, seed: UInt64) throws -> [Int] {
    var labels = data.labels
    for c in data.classes {
      let members = data.labels.indices.filter { data.labels[$0] == c }
      guard members.count >= k else { throw ValidationError("--subclasses \(k): class \(c) has only \(members.count) samples") }
      let clusters = try KMeans.fit(data.subset(members).features, k: k, iterations: 20, restarts: 1, seed: seed &+ UInt64(c))
      for (i, m) in members.enumerated() { labels[m] = c * k + clusters.assignments[i] }
    }
    return labels
  }

  /// Whether `--batch` asks for SimCLR-style labels (views:labels=instance).
  func instanceLabels() throws -> Bool {
    let values = try Builders.values(CommandRegistry.batches, batch, flag: "--batch")
    guard values.component == "views" else { return false }
    return try values.string("labels") == "instance"
  }

  /// The library's run settings from the flags, for `stepsPerEpoch` batches per epoch (of image
  /// data or not).
  func runSettings(stepsPerEpoch: Int, imageData: Bool) throws -> RunSettings {
    // Offline mining builds batches of the batch sampler's size.
    var batchSize = 2
    if offlineMining != "none" {
      let values = try Builders.values(CommandRegistry.batches, batch, flag: "--batch")
      guard values.specs.contains(where: { $0.name == "size" }) else {
        throw ValidationError("--offline-mining needs a batch sampler with a size; --batch \(batch) declares none")
      }
      batchSize = try values.integer("size")
    }
    var s = RunSettings(
      epochs: epochs, patience: patience, seed: seed,
      schedule: try Builders.schedule(schedule, stepsPerEpoch: stepsPerEpoch, epochs: epochs),
      augmentation: try ImageAugmentation(parsing: augment, registry: CommandRegistry.augmentations), offlineMining: try offlineSettings(batchSize: batchSize),
      instanceLabels: try instanceLabels(), stepEventInterval: logEvery)
    if freezeBackboneSteps > 0 {
      guard let head = Self.head(ofNetwork: network) else {
        throw ValidationError("--freeze-backbone-steps: \(network) has no pretrained backbone and named head (resnet18, resnet34, resnet50 have)")
      }
      s.frozenBackbone = (freezeBackboneSteps, head)
    }
    if s.augmentation?.operations.isEmpty == false && !imageData {
      throw ValidationError("--augment \(augment) needs image data (such as fashion-mnist)")
    }
    return s
  }
}
