import ArgumentParser
import Foundation
import MetricLearning

/// `dml train`: trains a network with a loss, evaluates it on the test classes, and prints the
/// metrics beside the raw-input and untrained baselines.
struct Train: ParsableCommand, TrainingDataFlags {
  static let configuration = CommandConfiguration(
    abstract: "Train an embedding network and evaluate it on (unseen) test classes.",
    discussion: """
      Components are given as name:key=value,... (see `dml list`). Example, the open-set protocol
      fmnist-05: dml train --train-classes 0-4 --test-classes 5-9 --network mlp \\
        --loss triplet:margin=0.2 --miner semihard:margin=0.2 --batch m-per-class:m=4,size=128
      """)

  @OptionGroup(title: "Data") var dataFlags: DataOptions
  @OptionGroup(title: "Data") var validation: ValidationOption
  @Option(help: "The network, e.g. mlp:hidden=512 or convnet-s.") var network = "mlp"
  @Option(help: "A loss (repeatable; several are summed, weight=W scales one).") var loss: [String] = ["contrastive"]
  @Option(help: "The tuple miner, e.g. semihard:margin=0.2 (none: every pair or triplet).") var miner = "none"
  @Option(help: "The batch sampler: m-per-class:m=4,size=128 or shuffled:size=128.") var batch = "m-per-class:m=4,size=128"
  @Option(help: "The optimizer: adam:lr=1e-3, adamw:..., sgd:lr=0.01,momentum=0.9.") var optimizer = "adam:lr=0.001"
  @Option(help: "The learning-rate schedule: constant, cosine, step:every=10,gamma=0.1.") var schedule = "constant"
  @Option(help: "Image augmentation, e.g. crop:pad=2,flip,affine:shift=2,rotate=10,erase:p=0.5 (none: off).")
  var augment = "none"
  @Option(help: "Split each training class into this many k-means clusters of its inputs and train on those as classes (1: off).")
  var subclasses = 1
  @Option(help: "Cross-batch memory (Wang et al. 2020) for pair losses: size=N,warmup=STEPS (filled from step STEPS on).")
  var memory = "none"
  @Option(help: "Offline hard mining: every=EPOCHS or steps=N, k=10, window=hard|semihard, positives=1, negatives=3 per anchor, distance=euclidean (none: off).")
  var offlineMining = "none"
  @Option(help: "Epochs.") var epochs = 5
  @Option(help: "Stop after this many epochs without a better validation MAP@R (needs --validation-classes).") var patience: Int?
  @Option(help: "The seed of every random choice.") var seed: UInt64 = 0
  @Option(help: "OpenBLAS threads (default: as the environment sets).") var threads: Int?
  @Option(help: "Write a checkpoint into this folder after each epoch.") var checkpoint: String?
  @Flag(help: "Continue the run whose checkpoints are in --checkpoint.") var resume = false
  @Flag(help: "Replace the checkpoints of another run in --checkpoint (without it, such a folder is refused).") var force = false
  @Flag(help: "Evaluate on test classes that are also training classes (a closed-set evaluation; refused otherwise).")
  var allowOverlap = false
  @Option(help: "text or json (default: text on a terminal, json otherwise).") var log: String?
  @Option(help: "Log every this many steps (0: epochs only).") var logEvery = 50
  @Option(help: "Write curves.png, embeddings.png (t-SNE of the test split) and, for images, retrieval.png into this folder at the end.")
  var plots: String?
  /// `dml tune`'s trials: print nothing and skip the test classes (the caller reads the summary).
  @Flag(help: .hidden) var trial = false

  func validate() throws {
    guard epochs >= 1 else { throw ValidationError("--epochs \(epochs) must be at least 1") }
    if let patience, patience < 1 { throw ValidationError("--patience \(patience) must be at least 1") }
    if let threads, threads < 1 { throw ValidationError("--threads \(threads) must be at least 1") }
    if let log, log != "text" && log != "json" { throw ValidationError("--log \(log) must be text or json") }
    if resume && checkpoint == nil { throw ValidationError("--resume needs --checkpoint FOLDER") }
    if resume && force { throw ValidationError("--resume continues the run in --checkpoint, --force replaces it: give one") }
    if patience != nil && dataOptions.validationClasses == nil {
      throw ValidationError("--patience needs --validation-classes (held-out training classes to validate on)")
    }
    guard logEvery >= 0 else { throw ValidationError("--log-every must be ≥ 0") }
    guard subclasses >= 1 else { throw ValidationError("--subclasses \(subclasses) must be at least 1") }
    do { _ = try ImageAugmentation(parsing: augment) } catch { throw ValidationError("--augment: \(error)") }
    _ = try memorySettings()
    _ = try offlineSettings()
  }

  /// `--memory`: the queue's size and warm-up, or `nil`.
  func memorySettings() throws -> (size: Int, warmUp: Int)? {
    guard memory != "none" else { return nil }
    do {
      var v = try HyperparameterValues(parsing: "memory:" + memory)
      try v.validate(against: [
        HyperparameterSpec("size", .integer, default: "4096", "embeddings held", range: .atLeast(1)),
        HyperparameterSpec("warmup", .integer, default: "0", "steps before the memory starts filling", range: .nonNegative),
      ])
      let size = try v.integer("size"), warmUp = try v.integer("warmup")
      guard size >= 1 else { throw SpecificationError("size=\(size) must be at least 1") }
      guard warmUp >= 0 else { throw SpecificationError("warmup=\(warmUp) must be ≥ 0") }
      return (size, warmUp)
    } catch { throw ValidationError("--memory \(memory): \(error)") }
  }

  /// `--offline-mining` settings.
  struct OfflineSettings {
    var everyEpochs: Int, everySteps: Int?, k: Int, window: OfflineWindow, positives: Int, negatives: Int, distance: Distance
  }

  func offlineSettings() throws -> OfflineSettings? {
    guard offlineMining != "none" else { return nil }
    do {
      var v = try HyperparameterValues(parsing: "offline-mining:" + offlineMining)
      try v.validate(against: [
        HyperparameterSpec("every", .integer, default: "1", "mine again every this many epochs", range: .atLeast(1)),
        HyperparameterSpec("steps", .integer, default: "0", "or every this many steps (0: use every)", range: .nonNegative),
        HyperparameterSpec("k", .integer, default: "10", "hard positives and negatives kept per anchor", range: .atLeast(1)),
        HyperparameterSpec("window", .choice(OfflineWindow.allCases.map(\.rawValue)), default: "hard", "hard: nearest negatives; semihard: nearest beyond the hardest positive"),
        HyperparameterSpec("positives", .integer, default: "1", "hard positives per anchor in a batch", range: .nonNegative),
        HyperparameterSpec("negatives", .integer, default: "3", "hard negatives per anchor in a batch", range: .nonNegative),
        .distance(default: "euclidean"),
      ])
      let every = try v.integer("every"), steps = try v.integer("steps"), k = try v.integer("k")
      let positives = try v.integer("positives"), negatives = try v.integer("negatives")
      guard every >= 1 else { throw SpecificationError("every=\(every) must be at least 1") }
      guard steps >= 0 else { throw SpecificationError("steps=\(steps) must be ≥ 0") }
      guard k >= 1 else { throw SpecificationError("k=\(k) must be at least 1") }
      guard positives >= 0, negatives >= 0, positives + negatives >= 1, positives <= k, negatives <= k else {
        throw SpecificationError("positives=\(positives) and negatives=\(negatives) must lie in 0...k=\(k), not both 0")
      }
      return OfflineSettings(
        everyEpochs: every, everySteps: steps > 0 ? steps : nil, k: k, window: OfflineWindow(rawValue: try v.string("window"))!,
        positives: positives, negatives: negatives, distance: try v.distance())
    } catch { throw ValidationError("--offline-mining \(offlineMining): \(error)") }
  }

  /// The settings that must match for --resume, in a fixed order.
  var configuration: [String: String] {
    [
      "network": network, "loss": loss.joined(separator: " "), "miner": miner, "batch": batch, "optimizer": optimizer,
      "schedule": schedule, "seed": "\(seed)", "data": dataOptions.data, "train_classes": dataOptions.trainClasses ?? "all",
      "validation_classes": dataOptions.validationClasses ?? "", "epochs": "\(epochs)", "augment": augment, "subclasses": "\(subclasses)",
      "memory": memory, "offline_mining": offlineMining, "test_classes": dataOptions.testClasses ?? "",
      "input_scaling": dataOptions.inputScaling,
      "test_data": dataOptions.testData ?? "",
    ]
  }

  /// What a run found, for `dml tune`.
  struct Summary {
    var bestValidationMapAtR: Double?
    var bestEpoch = 0
    var epochsRun = 0
    var validationRawMapAtR: Double?
    var validationUntrainedMapAtR: Double?
  }

  func run() throws {
    do { _ = try resolvingResume(given: CommandLine.arguments).execute() } catch {
      // The JSON log ends with the error too, so that a reader of the file alone sees why it stopped.
      if !trial && (log == "json" || (log == nil && isatty(STDOUT_FILENO) == 0)) {
        say(jsonLine(["event": "error", "message": (error as? ValidationError)?.message ?? "\(error)"]))
      }
      throw error
    }
  }

  func execute() throws -> Summary {
    if let threads { BLAS.threadCount = threads }
    let json = log == "json" || (log == nil && isatty(STDOUT_FILENO) == 0)
    if let advice = BLAS.advice { warn("note: \(advice)") }
    var (train, validation, test, splitClasses) = try dataOptions.splitsAndClasses()
    guard Set(train.labels).count >= 2 else {
      throw ValidationError(
        "--train-classes \(dataOptions.trainClasses ?? "all"): training needs at least 2 classes, the data has \(Set(train.labels).count) left for it")
    }
    // Renumbered, as k-means may leave a cluster empty.
    if subclasses > 1 { train.labels = ClassSplit.remap(try Self.subclassLabels(train, per: subclasses, seed: seed)).labels }
    let classes = Set(train.labels).count
    var net = try Builders.network(network, inputFeatures: train.features.columns, imageShape: train.imageShape, seed: seed)
    // The first layer's weight and bias (the first two parameters) learn at first_lr × lr.
    func firstLayerToGroup2<N: EmbeddingNetwork>(_ n: inout N) {
      var index = 0
      n.forEachParameter { _, p in
        if index < 2 { p.group = 2 }
        index += 1
      }
    }
    switch net {
    case .mlp(var n):
      firstLayerToGroup2(&n)
      net = .mlp(n)
    case .convNet(var n):
      firstLayerToGroup2(&n)
      net = .convNet(n)
    case .local(var n):
      firstLayerToGroup2(&n)
      net = .local(n)
    }
    let context = LossContext(classes: classes, embeddingDimension: net.embeddingDimension, seed: seed)
    let (lossValue, usesTuples) = try Builders.loss(loss, context: context)
    if try instanceLabels() {
      guard usesTuples else {
        throw ValidationError("--batch \(batch): instance labels need pair losses (contrastive, triplet, multi-similarity), not class-based ones")
      }
    }
    let sampler = try Builders.sampler(miner, embedding: net.embeddingDimension, seed: seed &+ 7)
    if miner != "none" && !usesTuples { warn("note: --miner \(miner) is ignored by losses that read no tuples") }
    let opt = try Builders.optimizer(optimizer)
    // Concrete types throughout: the step below is compiled specialised for each of these four
    // combinations; the loss and the sampler run code specialised where they were wrapped.
    let memorySettings = try self.memorySettings()
    if let m = memorySettings, m.size > train.labels.count {
      // A queue longer than the training set would hold each embedding more than once (and a size
      // too large to allocate would end the process).
      throw ValidationError("--memory \(memory): size=\(m.size) exceeds the \(train.labels.count) training samples")
    }
    if memorySettings != nil {
      guard lossValue.acceptsMemory else {
        throw ValidationError("--memory needs losses that compare embeddings with each other (contrastive, triplet, multi-similarity, supcon, uniformity), not learned proxies or class weights: --loss \(loss.joined(separator: " --loss "))")
      }
      guard sampler.acceptsMemory else { throw ValidationError("--memory: the miner \(miner) cannot use a cross-batch memory") }
    }
    if offlineMining != "none" {
      guard usesTuples else { throw ValidationError("--offline-mining builds batches for pair losses (contrastive, triplet, multi-similarity), not class-based ones") }
      if try instanceLabels() { throw ValidationError("--offline-mining cannot be combined with --batch views:...,labels=instance") }
    }
    // Every component is built: the last checks before any training.
    if !trial, let warning = try splitClasses.openSetCheck(allowed: allowOverlap, options: dataOptions) { warn(warning) }
    try checkOutputs()
    func run<N: EmbeddingNetwork, O: Optimizer>(_ n: N, _ o: O) throws -> Summary where N.Scalar == Float, O.Scalar == Float {
      var t = Trainer(network: n, loss: lossValue, sampler: sampler, optimizer: o)
      if let m = memorySettings { t.memory = CrossBatchMemory(capacity: m.size, warmUp: m.warmUp) }
      return try fit(&t, train: train, validation: validation, test: test, json: json)
    }
    switch (net, opt) {
    case (.mlp(let n), .adam(let o)): return try run(n, o)
    case (.mlp(let n), .sgd(let o)): return try run(n, o)
    case (.convNet(let n), .adam(let o)): return try run(n, o)
    case (.convNet(let n), .sgd(let o)): return try run(n, o)
    case (.local(let n), .adam(let o)): return try run(n, o)
    case (.local(let n), .sgd(let o)): return try run(n, o)
    }
  }

  /// The flags of the configuration kept in checkpoints, by configuration key.
  static let resumedFlags: [(key: String, flag: String)] = [
    ("network", "--network"), ("loss", "--loss"), ("miner", "--miner"), ("batch", "--batch"), ("optimizer", "--optimizer"),
    ("schedule", "--schedule"), ("seed", "--seed"), ("data", "--data"), ("train_classes", "--train-classes"),
    ("validation_classes", "--validation-classes"), ("epochs", "--epochs"), ("augment", "--augment"), ("subclasses", "--subclasses"),
    ("memory", "--memory"), ("offline_mining", "--offline-mining"), ("test_classes", "--test-classes"), ("test_data", "--test-data"),
  ]

  /// Configuration keys that a resumed run may change: more epochs, another evaluation.
  static let changeableOnResume: Set<String> = ["epochs", "test_classes", "test_data"]

  /// With `--resume`, the recipe saved in the checkpoint fills every flag that `arguments` does not
  /// give, so that `dml train --checkpoint DIR --resume` alone continues a run. A flag that is
  /// given must equal the saved one by value (`adam:lr=1e-3` equals `adam`, whose default is
  /// 0.001); every mismatch is listed at once. `--epochs` may differ, to extend a run.
  func resolvingResume(given arguments: [String]) throws -> Train {
    guard resume, let folder = checkpoint, let (dir, _) = try? Checkpoint.verifiedLatest(in: folder),
      let data = FileManager.default.contents(atPath: "\(dir)/state.json"),
      let saved = (try? JSONDecoder().decode(RunState.RunProgress.self, from: data))?.configuration
    else { return self }  // nothing readable to resume from: `RunState.load` reports it
    var resolved = self
    var mismatches: [String] = []
    func given(_ flag: String) -> Bool { arguments.contains { $0 == flag || $0.hasPrefix(flag + "=") } }
    for (key, flag) in Self.resumedFlags {
      guard let value = saved[key], let current = configuration[key] else { continue }
      if given(flag) {
        if Self.changeableOnResume.contains(key) { continue }
        guard Self.sameValue(key, current, value) else {
          mismatches.append("\(flag) is '\(current)' but the checkpoint was made with '\(value)'")
          continue
        }
      }
      resolved.set(key, value)  // the saved text, so that the checkpoint's own check agrees
    }
    guard mismatches.isEmpty else { throw ValidationError("--resume: " + mismatches.joined(separator: "; ")) }
    return resolved
  }

  /// Sets the flag of configuration `key` to its saved text.
  mutating func set(_ key: String, _ value: String) {
    switch key {
    case "network": network = value
    case "loss": loss = value.split(separator: " ").map(String.init)
    case "miner": miner = value
    case "batch": batch = value
    case "optimizer": optimizer = value
    case "schedule": schedule = value
    case "seed": if let v = UInt64(value) { seed = v }
    case "data": dataOptions.data = value
    case "train_classes": dataOptions.trainClasses = value == "all" ? nil : value
    case "validation_classes": dataOptions.validationClasses = value.isEmpty ? nil : value
    case "epochs": if let v = Int(value) { epochs = v }
    case "augment": augment = value
    case "subclasses": if let v = Int(value) { subclasses = v }
    case "memory": memory = value
    case "offline_mining": offlineMining = value
    case "test_classes": dataOptions.testClasses = value.isEmpty ? nil : value
    case "test_data": dataOptions.testData = value.isEmpty ? nil : value
    default: break
    }
  }

  /// Whether two texts of configuration `key` mean the same: components compared by name and by
  /// every declared hyperparameter's value, defaults filled in and numbers compared as numbers.
  static func sameValue(_ key: String, _ a: String, _ b: String) -> Bool {
    if a == b { return true }
    func canonical(_ text: String, _ specs: [HyperparameterSpec]?) -> [String: String]? {
      guard let v = try? HyperparameterValues(parsing: text) else { return nil }
      var out = ["": v.component]
      let names = Set(v.given.keys).union(specs?.map(\.name) ?? [])
      for name in names {
        let raw = v.given[name] ?? specs?.first { $0.name == name }?.defaultValue ?? ""
        out[name] = Double(raw).map { "\($0)" } ?? raw
      }
      return out
    }
    func component(_ x: String, _ y: String, _ list: [ComponentSpec]?) -> Bool {
      let name = (try? HyperparameterValues(parsing: x))?.component
      let specs = list?.first { $0.name == name }?.hyperparameters
        ?? name.flatMap { CommandRegistry.losses.factories[$0]?.hyperparameters }
      guard let cx = canonical(x, specs), let cy = canonical(y, specs) else { return false }
      return cx == cy
    }
    switch key {
    case "network": return component(a, b, Components.networks)
    case "miner": return component(a, b, Components.allMiners)
    case "batch": return component(a, b, Components.batches)
    case "optimizer": return component(a, b, Components.optimizers)
    case "schedule": return component(a, b, Components.schedules)
    case "loss":
      let x = a.split(separator: " ").map(String.init), y = b.split(separator: " ").map(String.init)
      return x.count == y.count && zip(x, y).allSatisfy { component($0, $1, nil) }
    case "seed", "subclasses", "epochs": return Double(a) != nil && Double(a) == Double(b)
    default: return false
    }
  }

  /// The mean and standard deviation of every value of `x`.
  static func statistics(_ x: Matrix<Float>) -> (mean: Double, std: Double) {
    var sum = 0.0, squares = 0.0
    x.withUnsafeBufferPointer { for v in $0 { sum += Double(v); squares += Double(v) * Double(v) } }
    let n = Double(Swift.max(1, x.count)), mean = sum / n
    return (mean, Swift.max(0, squares / n - mean * mean).squareRoot())
  }

  /// Checks, before any training, that the checkpoint and plot folders can be written, and that
  /// the checkpoint folder holds no other run unless `--resume` or `--force` says what to do with
  /// it (`--force` clears its checkpoints).
  func checkOutputs() throws {
    let fm = FileManager.default
    if let folder = checkpoint {
      let existing = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0 == "latest" || $0.hasPrefix("step-") }
      if resume {
        guard !existing.isEmpty else { throw ValidationError("--resume: \(folder) holds no checkpoint to continue") }
      } else if !existing.isEmpty {
        guard force else {
          throw ValidationError(
            "--checkpoint \(folder) holds another run's checkpoints: pass --resume to continue it, or --force to replace it")
        }
        for name in existing { try? fm.removeItem(atPath: "\(folder)/\(name)") }
      }
      try Self.checkWritable(folder, flag: "--checkpoint")
    }
    if let plots { try Self.checkWritable(plots, flag: "--plots") }
  }

  /// Creates `folder` if needed and writes and removes a probe file in it; the error names the
  /// flag and the folder.
  static func checkWritable(_ folder: String, flag: String) throws {
    let fm = FileManager.default
    do { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
      throw ValidationError("\(flag) \(folder): cannot create the folder")
    }
    let probe = "\(folder)/.dml-write-check-\(getpid())"
    guard fm.createFile(atPath: probe, contents: Data()) else {
      throw ValidationError("\(flag) \(folder): the folder is not writable")
    }
    try? fm.removeItem(atPath: probe)
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
    let (spec, values) = try Components.find(Components.batches, batch, kind: "batch sampler")
    guard spec.name == "views" else { return false }
    return try values.string("labels") == "instance"
  }

  /// Prints unless this is one of `dml tune`'s trials, and flushes: each log line reaches its
  /// reader (a file, a pipe) as it is written, so a killed run keeps its log up to the kill.
  func say(_ text: String, terminator: String = "\n") {
    guard !trial else { return }
    print(text, terminator: terminator)
    fflush(nil)
  }

  func fit<N, L, S, O>(
    _ trainer: inout Trainer<N, L, S, O>, train: Dataset, validation: Dataset?, test: Dataset, json: Bool
  ) throws -> Summary where N.Scalar == Float {
    var summary = Summary()
    var batches = try Builders.batchSampler(batch, labels: train.labels, seed: seed &+ 1)
    let perEpoch = batches.batchesPerEpoch
    let factor = try Builders.schedule(schedule, stepsPerEpoch: perEpoch, epochs: epochs)
    let untrained = trainer.network
    var state = RunState()
    // Offline hard mining: batches come from the mined lists, rebuilt every `miningInterval` steps.
    let offline = try offlineSettings()
    let miningInterval = offline.map { $0.everySteps ?? $0.everyEpochs * perEpoch }
    let batchSize = try Components.find(Components.batches, batch, kind: "batch sampler").1.integer("size")
    var minedSampler: MinedPartnersBatchSampler?
    func partnersSampler(_ h: HardNeighbors, minedAt step: Int) -> MinedPartnersBatchSampler {
      MinedPartnersBatchSampler(
        positives: h.positives, negatives: h.negatives, k: h.k, batchSize: batchSize, positivesPerAnchor: offline!.positives,
        negativesPerAnchor: offline!.negatives, seed: seed &+ 0x0FF_0000 &+ UInt64(step))
    }
    if resume, let folder = checkpoint {
      state = try RunState.load(folder, into: &trainer, configuration: configuration)
      var skip: [Int] = []
      if offline != nil, let mined = state.mined {
        let n = train.labels.count
        guard mined.step <= trainer.step else {
          throw TrainingError("\(folder): the checkpoint's offline mining (step \(mined.step)) is later than its step \(trainer.step)")
        }
        guard mined.lists.positives.count == n * mined.lists.k, mined.lists.positives.allSatisfy({ $0 >= -1 && Int($0) < n }),
          mined.lists.negatives.allSatisfy({ $0 >= -1 && Int($0) < n })
        else { throw TrainingError("\(folder): the checkpoint's offline-mined lists do not fit the \(n) training samples") }
        // The same sampler as before the interruption, at the same batch.
        minedSampler = partnersSampler(mined.lists, minedAt: mined.step)
        for _ in 0..<(trainer.step - mined.step) { minedSampler!.next(into: &skip) }
      } else {
        for _ in 0..<(state.epoch * perEpoch) { batches.next(into: &skip) }
      }
      if !json { say("resumed \(folder) at epoch \(state.epoch), step \(trainer.step)") }
    }
    // SimCLR-style batches: a sample's views are its only positives.
    let instanceLabels = try self.instanceLabels()
    let augmentation = try ImageAugmentation(parsing: augment)
    var augmenter: ImageAugmenter?
    if !augmentation.operations.isEmpty {
      guard let shape = train.imageShape else { throw ValidationError("--augment \(augment) needs image data (such as fashion-mnist)") }
      augmenter = ImageAugmenter(augmentation, height: shape.height, width: shape.width, channels: shape.channels)
    }
    var validationBaselines: (raw: Double, untrained: Double)?
    if let validation {
      var fresh = untrained
      let raw = try retrievalMetrics(queries: validation.features.rowsNormalized(), queryLabels: validation.labels).mapAtR
      let initial = try retrievalMetrics(queries: fresh.embed(validation.features), queryLabels: validation.labels).mapAtR
      validationBaselines = (raw, initial)
      summary.validationRawMapAtR = raw
      summary.validationUntrainedMapAtR = initial
      if json {
        say(jsonLine(["event": "validation_baselines", "raw_input_map_at_r": raw, "untrained_map_at_r": initial]))
      } else {
        say(String(format: "validation classes %@: MAP@R of the raw input %.4f, of the untrained network %.4f", dataOptions.validationClasses ?? "", raw, initial))
      }
    }
    var indices: [Int] = [], labels: [Int] = []
    var x = Matrix<Float>(rows: 0, columns: train.features.columns)
    let d = train.features.columns
    var best = state.best
    var stale = state.stale
    var history: [[String: Any]] = []  // the log's records, for --plots
    let inputStatistics = checkpoint == nil ? nil : Self.statistics(train.features)  // saved with every checkpoint
    if json {
      // The log opens with what produced it: the recipe, the data and the versions.
      say(jsonLine([
        "event": "configuration", "dml_version": DML.version, "configuration": configuration, "resume": resume,
        "train_samples": train.labels.count, "train_classes": Set(train.labels).count, "test_samples": test.labels.count,
        "validation_samples": validation?.labels.count ?? 0, "blas": BLAS.configuration,
      ]))
    }
    for epoch in state.epoch..<epochs {
      summary.epochsRun = epoch + 1
      var lossSum = 0.0, emptyMined = 0, minedTotal = 0, activeTuples = 0
      var miningSeconds = 0.0
      let start = Date()
      for b in 0..<perEpoch {
        if let offline, let interval = miningInterval {
          if minedSampler == nil || trainer.step - (state.mined?.step ?? 0) >= interval {
            let t0 = Date()
            let e = trainer.network.embed(train.features)
            let lists = try hardNeighbors(embeddings: e, labels: train.labels, k: offline.k, distance: offline.distance, window: offline.window)
            let seconds = Date().timeIntervalSince(t0)
            miningSeconds += seconds
            state.mined = (trainer.step, lists)
            minedSampler = partnersSampler(lists, minedAt: trainer.step)
            let negatives = lists.negatives.filter { $0 >= 0 }.count, positives = lists.positives.filter { $0 >= 0 }.count
            let o: [String: Any] = [
              "event": "offline_mining", "step": trainer.step, "seconds": (seconds * 1000).rounded() / 1000, "anchors": train.labels.count,
              "hard_positives": positives, "hard_negatives": negatives,
            ]
            history.append(o)
            if json { say(jsonLine(o)) } else if isatty(STDOUT_FILENO) == 0 || logEvery == 0 {
              say(String(format: "offline mining at step %d: %d anchors, %d hard positives, %d hard negatives in %.2f s", trainer.step, train.labels.count, positives, negatives, seconds))
            }
          }
          minedSampler!.next(into: &indices)
        } else {
          batches.next(into: &indices)
        }
        x.resize(rows: indices.count, columns: d)
        labels.removeAll(keepingCapacity: true)
        train.features.withUnsafeBufferPointer { src in
          x.withUnsafeMutableBufferPointer { dst in
            for (r, i) in indices.enumerated() {
              dst.baseAddress!.advanced(by: r * d).update(from: src.baseAddress! + i * d, count: d)
            }
          }
        }
        if instanceLabels { labels.append(contentsOf: indices) } else { for i in indices { labels.append(train.labels[i]) } }
        if augmenter != nil {
          // Drawn from the seed and the step alone, so a resumed run augments identically.
          var rng = RandomSource(seed: seed).derived(stream: 0xA064_0000 &+ UInt64(trainer.step))
          augmenter!.apply(to: &x, rng: &rng)
        }
        trainer.optimizer.learningRateScale = factor(trainer.step)
        let result = try trainer.train(x, labels: labels)
        lossSum += Double(result.loss.total)
        activeTuples += result.loss.terms.reduce(0) { $0 + $1.nonZero }
        if let mined = result.mined {
          minedTotal += mined
          if mined == 0 { emptyMined += 1 }
        }
        if logEvery > 0 && (b + 1) % logEvery == 0 {
          let rate = Double((b + 1) * indices.count) / Date().timeIntervalSince(start)
          var o: [String: Any] = ["event": "step", "epoch": epoch + 1, "step": trainer.step, "loss": Double(result.loss.total), "images_per_second": rate.rounded()]
          if let m = result.mined { o["mined"] = m }
          history.append(o)
          if json {
            say(jsonLine(o))
          } else if isatty(STDOUT_FILENO) != 0 {
            let eta = Double(perEpoch - b - 1) * Double(indices.count) / rate
            say(String(format: "\repoch %d/%d  [%3d%%]  loss %.4f  %6.0f img/s%@  eta %.0fs   ", epoch + 1, epochs, 100 * (b + 1) / perEpoch,
              result.loss.total, rate, result.mined.map { "  mined \($0)" } ?? "", eta), terminator: "")
            fflush(nil)
          }
        }
      }
      let seconds = Date().timeIntervalSince(start)
      var record: [String: Any] = [
        "event": "epoch", "epoch": epoch + 1, "step": trainer.step, "mean_loss": lossSum / Double(perEpoch),
        "images_per_second": (Double(perEpoch * indices.count) / seconds).rounded(),
      ]
      if trainer.mines {
        record["mean_mined"] = minedTotal / Swift.max(1, perEpoch)
        record["batches_with_nothing_mined"] = emptyMined
      }
      record["mean_active_terms"] = activeTuples / Swift.max(1, perEpoch)
      if offline != nil { record["offline_mining_seconds"] = (miningSeconds * 1000).rounded() / 1000 }
      if let m = trainer.memory { record["memory_held"] = m.count }
      if let validation {
        let e = trainer.network.embed(validation.features)
        let m = try retrievalMetrics(queries: e, queryLabels: validation.labels)
        record["validation_map_at_r"] = m.mapAtR
        record["validation_precision_at_1"] = m.precisionAt1
        if m.mapAtR > best.map {
          best = (m.mapAtR, epoch + 1, trainer.network.parameters.map(\.value))
          stale = 0
        } else {
          stale += 1
        }
      }
      history.append(record)
      var line = String(format: "epoch %d/%d  loss %.4f  %.0f img/s", epoch + 1, epochs, lossSum / Double(perEpoch), Double(perEpoch * indices.count) / seconds)
      if trainer.mines { line += "  mined \(minedTotal / Swift.max(1, perEpoch))/batch" }
      if let v = record["validation_map_at_r"] as? Double { line += String(format: "  validation MAP@R %.4f", v) }
      if json {
        say(jsonLine(record))
        // Progress for a person watching while the JSON goes to a file or a pipe.
        if !trial && isatty(STDOUT_FILENO) == 0 { warn(line) }
      } else {
        if isatty(STDOUT_FILENO) != 0 { say("\r\u{1B}[2K", terminator: "") }  // erase the progress line
        say(line)
      }
      if trainer.mines && emptyMined > perEpoch / 2 {
        warn("warning: the miner found nothing in \(emptyMined) of \(perEpoch) batches: the loss is stuck at zero there")
      }
      if let folder = checkpoint {
        var s = RunState()
        s.epoch = epoch + 1
        s.best = best
        s.stale = stale
        s.mined = state.mined
        s.inputStatistics = inputStatistics
        s.inputFeatures = train.features.columns
        try s.save(folder, trainer: trainer, configuration: configuration)
      }
      if let patience, stale >= patience {
        if !json { say("early stop: no better validation MAP@R for \(patience) epochs (best \(String(format: "%.4f", best.map)) at epoch \(best.epoch))") }
        break
      }
    }
    if validation != nil, !best.values.isEmpty {
      var index = 0
      trainer.network.forEachParameter { _, p in
        p.value = best.values[index]
        index += 1
      }
      if json {
        say(jsonLine(["event": "restored", "epoch": best.epoch, "validation_map_at_r": best.map]))
      } else {
        say("restored the parameters of epoch \(best.epoch) (best validation MAP@R)")
      }
      if !trial, let baseline = validationBaselines, best.map <= Swift.max(baseline.raw, baseline.untrained) {
        warn(String(format: "warning: on the validation classes, training did not help: best MAP@R %.4f, raw input %.4f, untrained %.4f", best.map, baseline.raw, baseline.untrained))
      }
    }
    if validation != nil {
      summary.bestValidationMapAtR = best.map
      summary.bestEpoch = best.epoch
    }
    if trial { return summary }
    try report(&trainer.network, untrained: untrained, test: test, json: json)
    if let plots {
      // The run and its report are done: a picture that cannot be drawn is a warning, not a failure.
      do { try drawPlots(plots, network: &trainer.network, test: test, history: history, json: json) } catch {
        warn("warning: --plots \(plots): \(error)")
      }
    }
    return summary
  }

  /// `--plots`: the training curves, a t-SNE map of the test embeddings and, for image data, a
  /// retrieval grid.
  func drawPlots<N: EmbeddingNetwork>(_ folder: String, network: inout N, test: Dataset, history: [[String: Any]], json: Bool) throws
  where N.Scalar == Float {
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch { throw ValidationError("--plots \(folder): cannot create the folder (\(error.localizedDescription))") }
    let names = dataOptions.data == "fashion-mnist" ? Pictures.fashionNames : [:]
    let embeddings = network.embed(test.features)
    var written = ["\(folder)/curves.png", "\(folder)/embeddings.png"]
    if history.contains(where: { $0["event"] as? String == "epoch" }) {
      try PNG.write(try Pictures.curves(history).image, to: written[0])
    } else {
      written.removeFirst()  // resumed after the last epoch: nothing new to draw
    }
    var options = Pictures.MapOptions()
    options.seed = seed
    let map = try Pictures.embeddingMap(embeddings, data: test, names: names, title: "trained embeddings, test classes", options: options)
    try PNG.write(map.image, to: "\(folder)/embeddings.png")
    if test.imageShape?.channels == 1 {
      let grid = try Pictures.retrievalGrid(embeddings, data: test, names: names, queries: 8, k: 8, seed: seed)
      try PNG.write(grid.image, to: "\(folder)/retrieval.png")
      written.append("\(folder)/retrieval.png")
    }
    if json { say(jsonLine(["event": "plots", "files": written])) } else { say("plots: " + written.joined(separator: ", ")) }
  }

  func report<N: EmbeddingNetwork>(_ network: inout N, untrained: N, test: Dataset, json: Bool) throws where N.Scalar == Float {
    var fresh = untrained
    let trained = try retrievalMetrics(queries: network.embed(test.features), queryLabels: test.labels)
    let random = try retrievalMetrics(queries: fresh.embed(test.features), queryLabels: test.labels)
    let raw = try retrievalMetrics(queries: test.features.rowsNormalized(), queryLabels: test.labels)
    let classes = Set(test.labels).sorted().map(String.init).joined(separator: ",")
    defer {
      if trained.mapAtR <= Swift.max(raw.mapAtR, random.mapAtR) {
        warn(String(format: "warning: training did not help on the test classes: MAP@R %.4f against %.4f for the raw input and %.4f untrained", trained.mapAtR, raw.mapAtR, random.mapAtR))
      }
    }
    if json {
      func obj(_ m: RetrievalMetrics) -> [String: Any] {
        ["precision_at_1": m.precisionAt1, "r_precision": m.rPrecision, "map_at_r": m.mapAtR]
      }
      say(jsonLine(["event": "test", "classes": classes, "queries": trained.queries, "trained": obj(trained), "untrained": obj(random), "raw_input": obj(raw)]))
      return
    }
    say("\ntest classes \(classes): \(trained.queries) queries against the others (self excluded)")
    say("".padding(toLength: 24, withPad: " ", startingAt: 0) + "  P@1      R-Prec   MAP@R")
    say(metricsRow("trained", trained))
    say(metricsRow("untrained (same seed)", random))
    say(metricsRow("raw input, L2-normalised", raw))
  }
}

/// Progress kept in checkpoints, beside the trainer's own files (`Trainer.checkpointFiles`): the
/// epoch, early stopping's state, the best parameters by name, the last offline mining and the
/// configuration that a resume must match, in `state.json` (`RunProgress`) and
/// `best.safetensors`.
struct RunState {
  var epoch = 0
  var stale = 0
  var best: (map: Double, epoch: Int, values: [Matrix<Float>]) = (-1, 0, [])
  /// The last offline mining: the step it ran at and what it found.
  var mined: (step: Int, lists: HardNeighbors)?
  /// The mean and standard deviation of the training inputs, after their scaling, so that later
  /// inputs in another scale can be noticed.
  var inputStatistics: (mean: Double, std: Double)?
  /// The number of input features the network takes, so that other inputs are refused by name.
  var inputFeatures: Int?

  /// `state.json`: the run's progress, typed.
  struct RunProgress: Codable {
    var version = 2
    var epoch: Int
    var stale: Int
    var bestMapAtR: Double
    var bestEpoch: Int
    var configuration: [String: String]
    var offlineMinedAtStep: Int?
    var inputMean: Double?
    var inputStd: Double?
    var inputFeatures: Int?

    enum CodingKeys: String, CodingKey {
      case version, epoch, stale, configuration
      case bestMapAtR = "best_map_at_r", bestEpoch = "best_epoch", offlineMinedAtStep = "offline_mined_at_step"
      case inputMean = "input_mean", inputStd = "input_std", inputFeatures = "input_features"
    }
  }

  func save<N, L, S, O>(_ folder: String, trainer: Trainer<N, L, S, O>, configuration: [String: String]) throws
  where N.Scalar == Float {
    var files = try trainer.checkpointFiles()
    // The best parameters so far, by the network's names.
    let names = trainer.network.namedParameters(prefix: ["network"])
    var bestTensors: [(name: String, shape: [Int], values: [Float])] = []
    if best.values.count == names.count {
      for (p, v) in zip(names, best.values) { bestTensors.append((p.name, p.parameter.shape, v.elements)) }
    }
    files["best.safetensors"] = Checkpoint.safetensors(bestTensors)
    // The last offline mining's lists (indices are exact in Float below 2^24).
    if let mined {
      let k = mined.lists.k
      files["offline.safetensors"] = Checkpoint.safetensors([
        (name: "positives", shape: [mined.lists.positives.count / k, k], values: mined.lists.positives.map { Float($0) }),
        (name: "negatives", shape: [mined.lists.negatives.count / k, k], values: mined.lists.negatives.map { Float($0) }),
      ])
    }
    let progress = RunProgress(
      epoch: epoch, stale: stale, bestMapAtR: best.map, bestEpoch: best.epoch, configuration: configuration,
      offlineMinedAtStep: mined?.step, inputMean: inputStatistics?.mean, inputStd: inputStatistics?.std,
      inputFeatures: inputFeatures)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    files["state.json"] = try encoder.encode(progress)
    try Checkpoint.save(files, in: folder, step: trainer.step)
  }

  static func load<N, L, S, O>(_ folder: String, into trainer: inout Trainer<N, L, S, O>, configuration: [String: String]) throws
    -> RunState where N.Scalar == Float
  {
    let (dir, rejected) = try Checkpoint.verifiedLatest(in: folder)
    for r in rejected { warn(r.hasSuffix("loaded unverified") ? "warning: \(r)" : "warning: \(r); using the previous checkpoint \(dir)") }
    // The trainer's manifest first: an older checkpoint is refused with what to do instead.
    _ = try CheckpointManifest.read(dir)
    guard let data = FileManager.default.contents(atPath: "\(dir)/state.json") else { throw TrainingError("\(dir)/state.json: missing") }
    let progress: RunProgress
    do { progress = try JSONDecoder().decode(RunProgress.self, from: data) } catch {
      throw TrainingError("\(dir)/state.json: unreadable (\(error))")
    }
    let saved = progress.configuration
    for key in configuration.keys.sorted() where saved[key] != configuration[key] && !Train.changeableOnResume.contains(key) {
      throw ValidationError("--resume: --\(key.replacingOccurrences(of: "_", with: "-")) is '\(configuration[key]!)' but the checkpoint was made with '\(saved[key] ?? "")'")
    }
    try trainer.restore(fromCheckpoint: dir)
    var s = RunState()
    s.epoch = progress.epoch
    s.stale = progress.stale
    let bestPath = "\(dir)/best.safetensors"
    let bestTensors = try Checkpoint.readSafetensors(bestPath)
    var values: [Matrix<Float>] = []
    if !bestTensors.isEmpty {
      for p in trainer.network.namedParameters(prefix: ["network"]) {
        guard let t = bestTensors[p.name], t.shape == p.parameter.shape else {
          throw TrainingError("\(bestPath): no tensor \(p.name) of shape \(p.parameter.shape)")
        }
        values.append(Matrix(rows: p.parameter.value.rows, columns: p.parameter.value.columns, elements: t.values))
      }
    }
    s.best = (progress.bestMapAtR, progress.bestEpoch, values)
    if let step = progress.offlineMinedAtStep {
      let path = "\(dir)/offline.safetensors"
      let t = try Checkpoint.readSafetensors(path)
      func indices(_ v: [Float]) -> Bool { v.allSatisfy { $0.isFinite && $0 == $0.rounded() && $0 >= -1 && $0 < 16_777_216 } }
      guard let p = t["positives"], let n = t["negatives"], p.shape.count == 2, p.shape == n.shape, p.shape[1] >= 1,
        indices(p.values), indices(n.values)
      else {
        throw TrainingError("\(path): the offline-mined lists are missing or malformed")
      }
      s.mined = (step, HardNeighbors(k: p.shape[1], positives: p.values.map { Int32($0) }, negatives: n.values.map { Int32($0) }))
    }
    return s
  }
}
