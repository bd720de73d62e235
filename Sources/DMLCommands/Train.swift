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
  @Option(help: "Threads for each step's work and products (default: OPENBLAS_NUM_THREADS, else the cores, shared among the ranks on one machine under mpirun).") var threads: Int?
  @Option(help: "Write a checkpoint into this folder after each epoch.") var checkpoint: String?
  @Flag(help: "Continue the run whose checkpoints are in --checkpoint.") var resume = false
  @Flag(help: "Replace the checkpoints of another run in --checkpoint (without it, such a folder is refused).") var force = false
  @Flag(help: "Evaluate on test classes that are also training classes (a closed-set evaluation; refused otherwise).")
  var allowOverlap = false
  @Option(help: "text or json (default: text on a terminal, json otherwise).") var log: String?
  @Option(help: "Log every this many steps (0: epochs only).") var logEvery = 50
  @Option(help: "Write curves.png, embeddings.png (t-SNE of the test split) and, for images, retrieval.png into this folder at the end.")
  var plots: String?
  @Option(help: "Images: the random transforms of training images, read from their files as training goes (default: random-resized-crop:size=S,scale=0.16/1,flip).")
  var trainTransforms: String?
  @Option(help: "Fine-tuning: for this many steps only the head (a ResNet's fc) trains, the pretrained backbone frozen; then everything trains (with the optimizer's backbone_lr).")
  var freezeBackboneSteps = 0
  @Flag(help: "Images: keep the decoded training images in memory, at full size, after the first epoch (for sets that fit; JPEGs then decode at full size rather than at a reduced DCT scale, so the pixels differ slightly and a resumed run keeps the choice).")
  var cacheImages = false
  @Option(help: "Under mpirun: seconds a rank may wait for the others in one exchange before the job stops (a rank died or hangs).")
  var mpiTimeout: Double = 300
  @Flag(help: "Under mpirun: each rank's anchors are its own rows, compared with the whole gathered batch (less memory; not the one-process loss).")
  var localAnchors = false

  func validate() throws {
    guard epochs >= 1 else { throw ValidationError("--epochs \(epochs) must be at least 1") }
    guard freezeBackboneSteps >= 0 else { throw ValidationError("--freeze-backbone-steps \(freezeBackboneSteps) must be ≥ 0") }
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
    guard mpiTimeout > 0 && mpiTimeout.isFinite else { throw ValidationError("--mpi-timeout \(mpiTimeout) must be a positive number of seconds") }
    try recipe.validate()
  }

  /// The recipe the flags give.
  var recipe: Recipe {
    Recipe(
      network: network, loss: loss, miner: miner, batch: batch, optimizer: optimizer, schedule: schedule, augment: augment,
      subclasses: subclasses, memory: memory, offlineMining: offlineMining, epochs: epochs, patience: patience, seed: seed, logEvery: logEvery,
      freezeBackboneSteps: freezeBackboneSteps)
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
      "ranks": "\(Ranks.size)",
      "image_size": DataOptions.isImages(dataOptions.data) ? "\(dataOptions.imageSize)" : "",
      "channels": DataOptions.isImages(dataOptions.data) ? "\(dataOptions.channels)" : "",
      "transforms": DataOptions.isImages(dataOptions.data) ? dataOptions.imageTransformsText : "",
      "train_transforms": DataOptions.isImages(dataOptions.data) ? (trainTransforms ?? dataOptions.defaultTrainTransforms) : "",
      "local_anchors": "\(localAnchors)",
      // Cached images decode at full size, streamed JPEGs at a reduced DCT scale: other pixels.
      "cache_images": DataOptions.isImages(dataOptions.data) && cacheImages ? "true" : "",
      "freeze_backbone_steps": freezeBackboneSteps > 0 ? "\(freezeBackboneSteps)" : "",
    ]
  }

  func run() throws {
    do { _ = try resolvingResume(given: CommandLine.arguments).execute() } catch {
      // The JSON log ends with the error too, so that a reader of the file alone sees why it stopped.
      if (log == "json" || (log == nil && isatty(STDOUT_FILENO) == 0)) {
        say(jsonLine(["event": "error", "message": (error as? ValidationError)?.message ?? "\(error)"]))
      }
      throw error
    }
  }

  func execute() throws -> RunSummary {
    // Under mpirun every rank runs this command; rank 0 alone writes the log, the checkpoints and
    // the plots.
    let group: any Collective = MPIGroup.launchedByMPI ? try Ranks.start(timeout: mpiTimeout) : SingleProcess()
    var recipe = self.recipe
    recipe.compute = try Builders.compute(threads: threads)
    let json = log == "json" || (log == nil && isatty(STDOUT_FILENO) == 0)
    if let advice = BLAS.advice { warn("note: \(advice)") }
    var (train, validation, test, splitClasses) = try dataOptions.splitsAndClasses()
    guard Set(train.labels).count >= 2 else {
      throw ValidationError(
        "--train-classes \(dataOptions.trainClasses ?? "all"): training needs at least 2 classes, the data has \(Set(train.labels).count) left for it")
    }
    // Renumbered, as k-means may leave a cluster empty.
    if subclasses > 1 {
      if train.features.columns == 0 { throw ValidationError("--subclasses clusters training rows in memory; it does not work with images read as training goes") }
      train.labels = ClassSplit.remap(try Recipe.subclassLabels(train, per: subclasses, seed: seed)).labels
    }
    if train.features.columns == 0 && offlineMining != "none" {
      throw ValidationError("--offline-mining embeds every training row in memory; it does not work with images read as training goes")
    }
    let images = try dataOptions.trainingImages(
      train, transforms: trainTransforms ?? dataOptions.defaultTrainTransforms, seed: seed, cache: cacheImages)
    var (trainer, batches, settings) = try recipe.parts(train: train, loadsWeights: !resume) { warn($0) }
    // Every component is built: the last checks before any training.
    if let warning = try splitClasses.openSetCheck(allowed: allowOverlap, options: dataOptions) { warn(warning) }
    if group.rank == 0 { try checkOutputs() }
    try checkRanksOnResume(network: &trainer.network)
    if let checkpoint {
      settings.checkpoint = CheckpointSettings(folder: checkpoint, resume: resume, configuration: configuration, changeableOnResume: Self.changeableOnResume)
    }
    settings.rankAgreement = configuration.merging(["dml version": DML.version, "checkpoint": checkpoint ?? ""]) { a, _ in a }
    var run = try TrainingRun(
      trainer: trainer, training: train, validation: validation, batches: batches, settings: settings, group: group,
      mode: localAnchors ? .localAnchors : .global, images: images)
    return try fit(&run, test: test, json: json)
  }

  /// A run resumes on another number of ranks only if its network holds no state computed from
  /// each rank's rows (BatchNorm's statistics): then every step is the same computation, equal
  /// to rounding. Otherwise the run would change, and it is refused.
  func checkRanksOnResume<N: EmbeddingNetwork>(network: inout N) throws {
    guard resume, let folder = checkpoint, let (dir, _) = try? Checkpoint.verifiedLatest(in: folder),
      let saved = RunProgress.read(dir)?.configuration
    else { return }
    let ranks = Int(saved["ranks"] ?? "1") ?? 1
    guard ranks != Ranks.size else { return }
    if localAnchors {
      throw ValidationError(
        "--resume: the run in \(folder) was made on \(ranks) ranks and this one has \(Ranks.size); with --local-anchors the loss is a sum over ranks, so the run would change: resume it on \(ranks) ranks")
    }
    var state: [String] = []
    network.forEachParameter(prefix: ["network"]) { name, p in if !p.trainable { state.append(name) } }
    if let first = state.first {
      throw ValidationError(
        "--resume: the run in \(folder) was made on \(ranks) ranks and this one has \(Ranks.size); its network computes \(first) from each rank's own rows, so the run would change: resume it on \(ranks) ranks")
    }
  }

  /// The flags of the configuration kept in checkpoints, by configuration key.
  static let resumedFlags: [(key: String, flag: String)] = [
    ("network", "--network"), ("loss", "--loss"), ("miner", "--miner"), ("batch", "--batch"), ("optimizer", "--optimizer"),
    ("schedule", "--schedule"), ("seed", "--seed"), ("data", "--data"), ("train_classes", "--train-classes"),
    ("validation_classes", "--validation-classes"), ("epochs", "--epochs"), ("augment", "--augment"), ("subclasses", "--subclasses"),
    ("memory", "--memory"), ("offline_mining", "--offline-mining"), ("test_classes", "--test-classes"), ("test_data", "--test-data"),
    ("image_size", "--image-size"), ("channels", "--channels"), ("transforms", "--transforms"), ("train_transforms", "--train-transforms"),
    ("cache_images", "--cache-images"), ("freeze_backbone_steps", "--freeze-backbone-steps"),
  ]

  /// Configuration keys that a resumed run may change: more epochs, another evaluation.
  static let changeableOnResume: Set<String> = ["epochs", "test_classes", "test_data", "ranks"]

  /// With `--resume`, the recipe saved in the checkpoint fills every flag that `arguments` does not
  /// give, so that `dml train --checkpoint DIR --resume` alone continues a run. A flag that is
  /// given must equal the saved one by value (`adam:lr=1e-3` equals `adam`, whose default is
  /// 0.001); every mismatch is listed at once. `--epochs` may differ, to extend a run.
  func resolvingResume(given arguments: [String]) throws -> Train {
    guard resume, let folder = checkpoint, let (dir, _) = try? Checkpoint.verifiedLatest(in: folder),
      let saved = RunProgress.read(dir)?.configuration
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
    case "image_size": if let v = Int(value) { dataOptions.imageSize = v }
    case "channels": if let v = Int(value) { dataOptions.channels = v }
    case "transforms": dataOptions.transforms = value.isEmpty ? nil : value
    case "train_transforms": trainTransforms = value.isEmpty ? nil : value
    case "cache_images": cacheImages = value == "true"
    case "freeze_backbone_steps": freezeBackboneSteps = Int(value) ?? 0
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
    func component(_ x: String, _ y: String) -> Bool {
      let specs = (try? HyperparameterValues(parsing: x)).flatMap { CommandRegistry.hyperparameters(kind: key, name: $0.component) }
      guard let cx = canonical(x, specs), let cy = canonical(y, specs) else { return false }
      return cx == cy
    }
    switch key {
    case "network", "miner", "batch", "optimizer", "schedule": return component(a, b)
    case "loss":
      let x = a.split(separator: " ").map(String.init), y = b.split(separator: " ").map(String.init)
      return x.count == y.count && zip(x, y).allSatisfy { component($0, $1) }
    case "seed", "subclasses", "epochs": return Double(a) != nil && Double(a) == Double(b)
    default: return false
    }
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
        if let (dir, _) = try? Checkpoint.verifiedLatest(in: folder), let done = RunProgress.read(dir)?.epoch, done > epochs {
          throw ValidationError("--epochs \(epochs): the run in --checkpoint \(folder) has completed \(done) epochs; give at least \(done) to continue it")
        }
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



  /// Prints and flushes: each log line reaches its reader (a file, a pipe) as it is written, so a
  /// killed run keeps its log up to the kill.
  func say(_ text: String, terminator: String = "\n") {
    print(text, terminator: terminator)
    fflush(nil)
  }



  /// Trains `run`, logging its events as text or JSON lines, then reports the test metrics and
  /// draws the plots.
  func fit(_ run: inout CommandRun, test: Dataset, json: Bool) throws -> RunSummary {
    var history: [[String: Any]] = []  // the log's records, for --plots
    let tty = isatty(STDOUT_FILENO) != 0 && Ranks.size == 1  // mpirun gives ranks a pseudo-terminal even when piped
    let sizes: [String: Any] = [
      "train_samples": run.training.labels.count, "train_classes": Set(run.training.labels).count, "test_samples": test.labels.count,
      "validation_samples": run.validation?.labels.count ?? 0,
    ]
    let summary: RunSummary
    do {
      summary = try run.fit { event in
        if let record = Self.record(event) { history.append(record) }
        log(event, json: json, tty: tty, sizes: sizes)
      }
    } catch let mismatch as ConfigurationMismatch {
      throw ValidationError(
        "--resume: --\(mismatch.key.replacingOccurrences(of: "_", with: "-")) is '\(mismatch.current)' but the checkpoint was made with '\(mismatch.saved)'")
    }
    try report(run.test(on: test), test: test, json: json)
    if summary.skippedImages > 0 {
      if json { say(jsonLine(["event": "skipped_images", "count": summary.skippedImages])) }
      warn("\(summary.skippedImages) unreadable training images were skipped (--on-bad-image skip)")
    }
    if let plots, run.group.rank == 0 {
      // The run and its report are done: a picture that cannot be drawn is a warning, not a failure.
      do { try drawPlots(plots, network: &run.trainer.network, test: test, history: history, json: json) } catch {
        warn("warning: --plots \(plots): \(error)")
      }
    }
    return summary
  }

  /// The JSON record of an event that the log writes and the curves plot, or `nil` for the
  /// events written otherwise.
  static func record(_ event: RunEvent) -> [String: Any]? {
    switch event {
    case .offlineMining(let m):
      return [
        "event": "offline_mining", "step": m.step, "seconds": (m.seconds * 1000).rounded() / 1000, "anchors": m.anchors,
        "hard_positives": m.hardPositives, "hard_negatives": m.hardNegatives,
      ]
    case .step(let s):
      var o: [String: Any] = ["event": "step", "epoch": s.epoch, "step": s.step, "loss": s.loss, "images_per_second": s.imagesPerSecond.rounded()]
      if let m = s.mined { o["mined"] = m }
      return o
    case .epoch(let e):
      var record: [String: Any] = [
        "event": "epoch", "epoch": e.epoch, "step": e.step, "mean_loss": e.meanLoss, "images_per_second": e.imagesPerSecond.rounded(),
      ]
      if let m = e.meanMined { record["mean_mined"] = m }
      if let b = e.batchesWithNothingMined { record["batches_with_nothing_mined"] = b }
      record["mean_active_terms"] = e.meanActiveTerms
      if let s = e.offlineMiningSeconds { record["offline_mining_seconds"] = (s * 1000).rounded() / 1000 }
      if let m = e.memoryHeld { record["memory_held"] = m }
      if let c = e.communicationSeconds { record["communication_seconds"] = (c * 1000).rounded() / 1000 }
      if let t = e.seconds { record["seconds"] = (t * 1000).rounded() / 1000 }
      if let w = e.inputWaitSeconds { record["input_wait_seconds"] = (w * 1000).rounded() / 1000 }
      if let s = e.skippedImages, s > 0 { record["skipped_images"] = s }
      if let v = e.validationMapAtR { record["validation_map_at_r"] = v }
      if let p = e.validationPrecisionAt1 { record["validation_precision_at_1"] = p }
      return record
    default: return nil
    }
  }

  /// Writes one event of the run: JSON lines, or text for a person (a progress line on a terminal).
  /// `sizes` are the data's counts for the opening line.
  func log(_ event: RunEvent, json: Bool, tty: Bool, sizes: [String: Any]) {
    switch event {
    case .started(let epoch, let step, let resumed):
      if resumed && !json { say("resumed \(checkpoint ?? "") at epoch \(epoch), step \(step)") }
      if json {
        // The log opens with what produced it: the recipe, the data and the versions.
        let opening: [String: Any] = [
          "event": "configuration", "dml_version": DML.version, "configuration": configuration, "resume": resume, "blas": BLAS.configuration,
          "ranks": Ranks.size,
        ]
        say(jsonLine(opening.merging(sizes) { a, _ in a }))
      }
    case .validationBaselines(let raw, let initial):
      if json {
        say(jsonLine(["event": "validation_baselines", "raw_input_map_at_r": raw, "untrained_map_at_r": initial]))
      } else {
        say(String(format: "validation classes %@: MAP@R of the raw input %.4f, of the untrained network %.4f", dataOptions.validationClasses ?? "", raw, initial))
      }
    case .offlineMining(let m):
      if json {
        say(jsonLine(Self.record(event)!))
      } else if !tty || logEvery == 0 {
        say(String(format: "offline mining at step %d: %d anchors, %d hard positives, %d hard negatives in %.2f s", m.step, m.anchors, m.hardPositives, m.hardNegatives, m.seconds))
      }
    case .step(let s):
      if json {
        say(jsonLine(Self.record(event)!))
      } else if tty {
        let eta = Double(s.batchesPerEpoch - s.batch) * Double(s.batchSize) / s.imagesPerSecond
        say(String(format: "\repoch %d/%d  [%3d%%]  loss %.4f  %6.0f img/s%@  eta %.0fs   ", s.epoch, epochs, 100 * s.batch / s.batchesPerEpoch,
          s.loss, s.imagesPerSecond, s.mined.map { "  mined \($0)" } ?? "", eta), terminator: "")
      }
    case .epoch(let e):
      var line = String(format: "epoch %d/%d  loss %.4f  %.0f img/s", e.epoch, epochs, e.meanLoss, e.imagesPerSecond)
      if let c = e.communicationSeconds { line += String(format: " on %d ranks (%.1f s exchanging)", Ranks.size, c) }
      if let w = e.inputWaitSeconds, let t = e.seconds, t > 0 { line += String(format: "  input wait %.0f%%", 100 * w / t) }
      if let s = e.skippedImages, s > 0 { line += "  \(s) images skipped" }
      if let m = e.meanMined { line += "  mined \(m)/batch" }
      if let v = e.validationMapAtR { line += String(format: "  validation MAP@R %.4f", v) }
      if json {
        say(jsonLine(Self.record(event)!))
        // Progress for a person watching while the JSON goes to a file or a pipe.
        if !tty { warn(line) }
      } else {
        if tty { say("\r\u{1B}[2K", terminator: "") }  // erase the progress line
        say(line)
      }
    case .checkpoint: break
    case .earlyStop(let patience, let bestEpoch, let bestMap):
      if !json { say("early stop: no better validation MAP@R for \(patience) epochs (best \(String(format: "%.4f", bestMap)) at epoch \(bestEpoch))") }
    case .restored(let epoch, let map):
      if json {
        say(jsonLine(["event": "restored", "epoch": epoch, "validation_map_at_r": map]))
      } else {
        say("restored the parameters of epoch \(epoch) (best validation MAP@R)")
      }
    case .warning(let text):
      warn(text)
    }
  }

  /// `--plots`: the training curves, a t-SNE map of the test embeddings and, for image data, a
  /// retrieval grid.
  func drawPlots<N: EmbeddingNetwork>(_ folder: String, network: inout N, test: Dataset, history: [[String: Any]], json: Bool) throws
  where N.Scalar == Float {
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch { throw ValidationError("--plots \(folder): cannot create the folder (\(error.localizedDescription))") }
    let names = test.classNames.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($0, $1) }) }
      ?? (dataOptions.data == "fashion-mnist" ? Pictures.fashionNames : [:])
    let embeddings = network.embed(test.features, compute: try Builders.compute(threads: threads))
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
    if test.imageShape != nil {
      let grid = try Pictures.retrievalGrid(embeddings, data: test, names: names, queries: 8, k: 8, seed: seed)
      try PNG.write(grid.image, to: "\(folder)/retrieval.png")
      written.append("\(folder)/retrieval.png")
    }
    if json { say(jsonLine(["event": "plots", "files": written])) } else { say("plots: " + written.joined(separator: ", ")) }
  }

  /// Prints the test metrics beside the baselines, with a warning when training did not help.
  func report(_ r: TestReport, test: Dataset, json: Bool) throws {
    let classes = Set(test.labels).sorted().map(String.init).joined(separator: ",")
    defer {
      if !r.helped {
        warn(String(format: "warning: training did not help on the test classes: MAP@R %.4f against %.4f for the raw input and %.4f untrained", r.trained.mapAtR, r.rawInput.mapAtR, r.untrained.mapAtR))
      }
    }
    if json {
      func obj(_ m: RetrievalMetrics) -> [String: Any] {
        ["precision_at_1": m.precisionAt1, "r_precision": m.rPrecision, "map_at_r": m.mapAtR]
      }
      say(jsonLine(["event": "test", "classes": classes, "queries": r.trained.queries, "trained": obj(r.trained), "untrained": obj(r.untrained), "raw_input": obj(r.rawInput)]))
      return
    }
    say("\ntest classes \(classes): \(r.trained.queries) queries against the others (self excluded)")
    say("".padding(toLength: 24, withPad: " ", startingAt: 0) + "  P@1      R-Prec   MAP@R")
    say(metricsRow("trained", r.trained))
    say(metricsRow("untrained (same seed)", r.untrained))
    say(metricsRow("raw input, L2-normalised", r.rawInput))
  }
}
