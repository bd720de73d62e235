import DMLCore
import DMLData
import DMLEvaluation
import DMLKernels
import DMLSamplers
import DMLTraining
import Foundation

/// A whole training run: epochs of batches through a `Trainer`, with validation and early
/// stopping, the learning-rate schedule, augmentation, offline mining, checkpoints and resume,
/// reporting what happens to an observer as `RunEvent`s.
///
/// ```swift
/// var run = try TrainingRun(
///   trainer: Trainer(network: net, loss: TripletMarginLoss<Float>(margin: 0.2), sampler: miner, optimizer: Adam(learningRate: 1e-3)),
///   training: train, validation: validation,
///   batches: MPerClassSampler(labels: train.labels, m: 4, batchSize: 128, seed: 1),
///   settings: RunSettings(epochs: 20, patience: 3, checkpoint: CheckpointSettings(folder: "runs/mine")))
/// let summary = try run.fit { event in print(event) }
/// let report = try run.test(on: test)
/// ```
///
/// The step itself is the trainer's, compiled for the four concrete component types; the run adds
/// one dynamic call per batch (the batch sampler) and the observer's call per event.
public struct TrainingRun<Network: EmbeddingNetwork, Loss: EmbeddingLoss, Sampler: TupleSampler, Opt: Optimizer>
where Network.Scalar == Float, Network.Scalar == Loss.Scalar, Loss.Scalar == Sampler.Scalar, Sampler.Scalar == Opt.Scalar {
  /// The trainer's type.
  public typealias TrainerType = Trainer<Network, Loss, Sampler, Opt>
  /// The trainer: the network, loss, miner and optimizer, and the step count.
  public var trainer: Trainer<Network, Loss, Sampler, Opt>
  /// The threads and GEMM engine of the run: the trainer's, used by every step, embedding pass,
  /// search and offline mining of the run.
  public var compute: ComputeContext {
    get { trainer.compute }
    set { trainer.compute = newValue }
  }
  /// The training data.
  public let training: Dataset
  /// Held-out data to validate on after every epoch (`nil`: none, and no early stopping).
  public let validation: Dataset?
  /// The batch sampler of the training data (replaced by mined batches while offline mining runs).
  public var batches: any BatchSampler
  /// How the run trains.
  public let settings: RunSettings
  /// The network as it was before training, the baseline of `test(on:)`.
  public let untrained: Network
  /// One training step, created where the run is built: there the four component types are
  /// known, so the step (and every per-element loop in it) is compiled specialised for them,
  /// while `fit` itself stays generic.
  @usableFromInline let step: (inout Trainer<Network, Loss, Sampler, Opt>, Matrix<Float>, [Int]) throws -> StepResult<Float>
  /// The processes that share the run (`SingleProcess()`: this one alone). With several, every
  /// rank draws the same global batch and trains on its shard of it (see
  /// `Trainer.train(shard:labels:over:mode:)`); validation, testing and offline mining embed
  /// their data in shards and gather it; rank 0 alone writes checkpoints, and every rank resumes
  /// from them.
  public let group: any Collective
  /// How the ranks share the global batch.
  public let mode: DistributedMode
  /// Training images read from their files as the run goes (`nil`: the rows of `training`).
  public let images: TrainingImages?
  /// The backbone's parameters that the fine-tuning warm-up froze (to thaw after it).
  var frozenByWarmup: [String] = []

  /// A run of `trainer` on `training`, on the processes of `group` (this one by default). The
  /// settings are checked here: an error names the setting at fault.
  @inlinable
  public init(
    trainer: Trainer<Network, Loss, Sampler, Opt>, training: Dataset, validation: Dataset? = nil, batches: any BatchSampler,
    settings: RunSettings, group: any Collective = SingleProcess(), mode: DistributedMode = .global, images: TrainingImages? = nil
  ) throws {
    guard settings.epochs >= 1 else { throw TrainingError("RunSettings.epochs \(settings.epochs) must be at least 1") }
    if let p = settings.patience {
      guard p >= 1 else { throw TrainingError("RunSettings.patience \(p) must be at least 1") }
      guard validation != nil else { throw TrainingError("RunSettings.patience needs validation data") }
    }
    guard settings.stepEventInterval >= 0 else { throw TrainingError("RunSettings.stepEventInterval must be ≥ 0") }
    guard batches.batchesPerEpoch >= 1 else { throw TrainingError("the batch sampler yields no batch per epoch") }
    if let images {
      guard images.loader.list.labels == training.labels else {
        throw TrainingError("the training images (\(images.loader.list.paths.count)) and the training labels (\(training.labels.count)) differ")
      }
      guard settings.offlineMining == nil else { throw TrainingError("RunSettings.offlineMining needs the training rows in memory, not images read as the run goes") }
      guard images.prefetch >= 1 else { throw TrainingError("TrainingImages.prefetch \(images.prefetch) must be at least 1") }
      guard group.size == 1 || images.onBadImage == .stop else {
        throw TrainingError("skipping unreadable training images needs one process (each rank's share of a batch has a fixed size)")
      }
    }
    guard training.labels.count == training.features.rows, !training.labels.isEmpty else {
      throw TrainingError("the training data has \(training.features.rows) rows and \(training.labels.count) labels")
    }
    let width = images.map { $0.loader.height * $0.loader.width * $0.loader.channels } ?? training.features.columns
    if let v = validation, v.features.columns != width {
      throw TrainingError("the validation data has \(v.features.columns) features, the training data \(width)")
    }
    if let a = settings.augmentation, !a.operations.isEmpty, training.imageShape == nil {
      throw TrainingError("RunSettings.augmentation \(a) needs image data")
    }
    if let o = settings.offlineMining {
      guard o.everyEpochs >= 1, (o.everySteps ?? 1) >= 1, o.k >= 1, o.batchSize >= 2 else {
        throw TrainingError("RunSettings.offlineMining: every, steps and k must be at least 1 and the batch size at least 2")
      }
      guard o.positives >= 0, o.negatives >= 0, o.positives + o.negatives >= 1, o.positives <= o.k, o.negatives <= o.k else {
        throw TrainingError("RunSettings.offlineMining: positives=\(o.positives) and negatives=\(o.negatives) must lie in 0...k=\(o.k), not both 0")
      }
      guard !settings.instanceLabels else { throw TrainingError("RunSettings: offline mining cannot be combined with instance labels") }
    }
    if group.size == 1, let problem = Self.checkpointFolderProblem(settings) { throw TrainingError(problem) }
    if mode == .localAnchors {
      guard trainer.memory == nil else { throw TrainingError("the local-anchor mode cannot be combined with a cross-batch memory") }
      guard trainer.loss.acceptsMemory && (!trainer.mines || trainer.sampler.acceptsMemory) else {
        throw TrainingError("the local-anchor mode needs a loss and a miner that accept a reference set (those that work with a cross-batch memory)")
      }
    }
    self.trainer = trainer
    self.training = training
    self.validation = validation
    self.batches = batches
    self.settings = settings
    self.group = group
    self.mode = mode
    self.images = images
    untrained = trainer.network
    if group.size == 1 && mode == .global {
      step = { try $0.train($1, labels: $2) }
    } else {
      step = { try $0.train(shard: $1, labels: $2, over: group, mode: mode) }
    }
  }

  /// Trains for the remaining epochs, calling `observe` with every event in order. An error thrown
  /// by `observe` stops the run at once and is rethrown; the checkpoints written so far stay as
  /// they are (each is written atomically). Afterwards the network holds the parameters of the
  /// best validation epoch when there is validation data, else those of the last step.
  public mutating func fit(_ observe: (RunEvent) throws -> Void = { _ in }) throws -> RunSummary {
    var summary = RunSummary()
    let seed = settings.seed
    let perEpoch = batches.batchesPerEpoch
    var state = RunState()
    // Offline hard mining: batches come from the mined lists, rebuilt every `miningInterval` steps.
    let offline = settings.offlineMining
    let miningInterval = offline.map { $0.everySteps ?? $0.everyEpochs * perEpoch }
    var minedSampler: MinedPartnersBatchSampler?
    func partnersSampler(_ h: HardNeighbors, minedAt step: Int, _ o: OfflineMiningSettings) -> MinedPartnersBatchSampler {
      MinedPartnersBatchSampler(
        positives: h.positives, negatives: h.negatives, k: h.k, batchSize: o.batchSize, positivesPerAnchor: o.positives,
        negativesPerAnchor: o.negatives, seed: seed &+ 0x0FF_0000 &+ UInt64(step))
    }
    var warnings: [String] = []
    // On several ranks, what fails on one rank at the start (rank 0's check of the checkpoint
    // folder, a resume that one rank cannot read) stops every rank, through `agree`.
    var startError: (any Error)?
    if group.size > 1, group.rank == 0, let problem = Self.checkpointFolderProblem(settings) { startError = TrainingError(problem) }
    do {
    if startError == nil, let c = settings.checkpoint, c.resume {
      state = try RunState.load(c.folder, into: &trainer, configuration: c.configuration, changeable: c.changeableOnResume) {
        warnings.append($0)
      }
      guard state.epoch <= settings.epochs else {
        throw TrainingError(
          "\(c.folder): the run has completed \(state.epoch) epochs, more than RunSettings.epochs \(settings.epochs); give at least \(state.epoch)")
      }
      var skip: [Int] = []
      if let offline, let mined = state.mined {
        let n = training.labels.count
        guard mined.step <= trainer.step else {
          throw TrainingError("\(c.folder): the checkpoint's offline mining (step \(mined.step)) is later than its step \(trainer.step)")
        }
        guard mined.lists.positives.count == n * mined.lists.k, mined.lists.positives.allSatisfy({ $0 >= -1 && Int($0) < n }),
          mined.lists.negatives.allSatisfy({ $0 >= -1 && Int($0) < n })
        else { throw TrainingError("\(c.folder): the checkpoint's offline-mined lists do not fit the \(n) training samples") }
        // The same sampler as before the interruption, at the same batch.
        minedSampler = partnersSampler(mined.lists, minedAt: mined.step, offline)
        for _ in 0..<(trainer.step - mined.step) { minedSampler!.next(into: &skip) }
      } else {
        for _ in 0..<(state.epoch * perEpoch) { batches.next(into: &skip) }
      }
    }
    } catch where group.size > 1 {
      startError = error
    }
    if group.size > 1 {
      try agree(startError)
      try checkRanksAgree()
    }
    try observe(.started(epoch: state.epoch, step: trainer.step, resumed: settings.checkpoint?.resume ?? false))
    for w in warnings { try observe(.warning(w)) }
    var augmenter: ImageAugmenter?
    if let a = settings.augmentation, !a.operations.isEmpty, let shape = training.imageShape {
      augmenter = ImageAugmenter(a, height: shape.height, width: shape.width, channels: shape.channels)
    }
    var validationBaselines: (raw: Double, untrained: Double)?
    if let validation {
      var fresh = untrained
      let raw = try metrics(validation.features.rowsNormalized(), of: validation).mapAtR
      let initial = try metrics(embed(validation.features, with: &fresh), of: validation).mapAtR
      validationBaselines = (raw, initial)
      summary.validationRawMapAtR = raw
      summary.validationUntrainedMapAtR = initial
      try observe(.validationBaselines(rawInput: raw, untrained: initial))
    }
    var indices: [Int] = [], labels: [Int] = []
    let d = images.map { $0.loader.height * $0.loader.width * $0.loader.channels } ?? training.features.columns
    var x = Matrix<Float>(rows: 0, columns: d)
    var best = state.best
    var stale = state.stale
    // Saved with every checkpoint (for rows in memory).
    let inputStatistics = settings.checkpoint == nil || images != nil ? nil : RunProgress.statistics(training.features)
    var communicationAtStart = group.communicationSeconds
    // Training images found unreadable (with `.skip`), by index.
    var skippedFiles = Set<Int>()
    for epoch in state.epoch..<settings.epochs {
      summary.epochsRun = epoch + 1
      var lossSum = 0.0, emptyMined = 0, minedTotal = 0, activeTuples = 0
      var miningSeconds = 0.0
      let start = Date()
      communicationAtStart = group.communicationSeconds
      var batchHash = Fingerprint()
      // Images: the epoch's batches are drawn first, and worker threads decode and transform them
      // ahead of the steps, at most `prefetch` batches ahead.
      var prefetching: PrefetchingLoader?
      var epochBatches: [[Int]] = []
      if let images {
        for _ in 0..<perEpoch {
          batches.next(into: &indices)
          epochBatches.append(indices)
        }
        let shares = epochBatches.map { Shards.rows(batch: $0.count, rank: group.rank, size: group.size) }
        prefetching = PrefetchingLoader(
          loader: images.loader, batches: zip(epochBatches, shares).map { Array($0[$1]) }, firstStream: UInt64(trainer.step),
          firstRows: shares.map(\.lowerBound), depth: images.prefetch, onBadImage: images.onBadImage)
      }
      defer { prefetching?.cancel() }
      var skippedImages = 0, stepsLeftOut = 0
      for b in 0..<perEpoch {
        if let offline, let interval = miningInterval {
          if minedSampler == nil || trainer.step - (state.mined?.step ?? 0) >= interval {
            let t0 = Date()
            let e = try embedTrained(training.features)
            let lists = try hardNeighbors(
              embeddings: e, labels: training.labels, k: offline.k, distance: offline.distance, window: offline.window,
              compute: trainer.compute)
            let seconds = Date().timeIntervalSince(t0)
            miningSeconds += seconds
            state.mined = (trainer.step, lists)
            minedSampler = partnersSampler(lists, minedAt: trainer.step, offline)
            try observe(.offlineMining(OfflineMiningEvent(
              step: trainer.step, seconds: seconds, anchors: training.labels.count,
              hardPositives: lists.positives.filter { $0 >= 0 }.count, hardNegatives: lists.negatives.filter { $0 >= 0 }.count)))
          }
          minedSampler!.next(into: &indices)
        } else if images != nil {
          indices = epochBatches[b]
        } else {
          batches.next(into: &indices)
        }
        guard indices.count >= group.size else {
          throw TrainingError("a batch of \(indices.count) rows cannot be shared by \(group.size) ranks: give a batch size of at least \(group.size)")
        }
        let rows = Shards.rows(batch: indices.count, rank: group.rank, size: group.size)
        if let prefetching, let loaded = try prefetching.next() {
          x = loaded.rows
          labels = indices.map { training.labels[$0] }
          if !loaded.failures.isEmpty {
            // Skipped images leave the batch (one process only: a share's size is fixed); each
            // file is reported once.
            skippedImages += loaded.failures.count
            let keptSet = Set(loaded.kept)
            for (position, failure) in zip(indices.indices.filter { !keptSet.contains($0) }, loaded.failures)
            where skippedFiles.insert(indices[position]).inserted {
              try observe(.warning("warning: skipped an unreadable image (--on-bad-image skip): \(failure)"))
            }
            labels = loaded.kept.map { labels[$0] }
            indices = loaded.kept.map { indices[$0] }
            if loaded.kept.count < 2 {
              // Nothing to compare: the step is left out.
              try observe(.warning("warning: step \(trainer.step + 1) left out: \(loaded.kept.count) readable image\(loaded.kept.count == 1 ? "" : "s") in its batch"))
              stepsLeftOut += 1
              continue
            }
          }
          if settings.instanceLabels { labels = indices }
        } else {
          gather(indices, rows: rows, into: &x, labels: &labels, width: d)
        }
        if group.size > 1 {
          batchHash.add(labels)
          if group.rank > 0 { deriveRankStreams() }
        }
        if augmenter != nil {
          // Drawn from the seed, the step and the row's place in the batch alone, so that a resumed
          // run, or one on another number of ranks, augments identically.
          let stream = RandomSource(seed: seed).derived(stream: 0xA064_0000 &+ UInt64(trainer.step))
          augmenter!.apply(to: &x) { stream.derived(stream: UInt64(rows.lowerBound + $0)) }
        }
        if let schedule = settings.schedule { trainer.optimizer.learningRateScale = schedule.factor(at: trainer.step) }
        if let frozen = settings.frozenBackbone { freezeBackbone(trainer.step < frozen.steps, head: frozen.head) }
        let result = try step(&trainer, x, labels)
        lossSum += Double(result.loss.total)
        activeTuples += result.loss.terms.reduce(0) { $0 + $1.nonZero }
        if let mined = result.mined {
          minedTotal += mined
          if mined == 0 { emptyMined += 1 }
        }
        if settings.stepEventInterval > 0 && (b + 1) % settings.stepEventInterval == 0 {
          try observe(.step(StepEvent(
            epoch: epoch + 1, step: trainer.step, batch: b + 1, batchesPerEpoch: perEpoch, loss: Double(result.loss.total),
            mined: result.mined, imagesPerSecond: Double((b + 1) * indices.count) / Date().timeIntervalSince(start),
            batchSize: indices.count)))
        }
      }
      if stepsLeftOut == perEpoch {
        throw TrainingError("no batch of epoch \(epoch + 1) held two readable training images (--on-bad-image skip left them all out)")
      }
      let seconds = Date().timeIntervalSince(start)
      var event = EpochEvent(
        epoch: epoch + 1, step: trainer.step, meanLoss: lossSum / Double(Swift.max(1, perEpoch - stepsLeftOut)),
        imagesPerSecond: Double(perEpoch * indices.count) / seconds, meanActiveTerms: activeTuples / Swift.max(1, perEpoch),
        batchesPerEpoch: perEpoch)
      if trainer.mines {
        event.meanMined = minedTotal / Swift.max(1, perEpoch)
        event.batchesWithNothingMined = emptyMined
      }
      if offline != nil { event.offlineMiningSeconds = miningSeconds }
      event.memoryHeld = trainer.memory?.count
      event.seconds = seconds
      if let prefetching {
        event.inputWaitSeconds = prefetching.waitSeconds
        event.skippedImages = skippedImages
        summary.skippedImages = skippedFiles.count
      }
      if group.size > 1 {
        event.communicationSeconds = group.communicationSeconds - communicationAtStart
        try checkParametersAgree(epoch: epoch + 1, batches: batchHash.value)
      }
      if let validation {
        let e = try embedTrained(validation.features)
        let m = try metrics(e, of: validation)
        event.validationMapAtR = m.mapAtR
        event.validationPrecisionAt1 = m.precisionAt1
        if m.mapAtR > best.map {
          best = (m.mapAtR, epoch + 1, trainer.network.parameters.map(\.value))
          stale = 0
        } else {
          stale += 1
        }
      }
      try observe(.epoch(event))
      if trainer.mines && emptyMined > perEpoch / 2 {
        try observe(.warning("warning: the miner found nothing in \(emptyMined) of \(perEpoch) batches: the loss is stuck at zero there"))
      }
      if let c = settings.checkpoint {
        var s = RunState()
        s.epoch = epoch + 1
        s.best = best
        s.stale = stale
        s.mined = state.mined
        s.inputStatistics = inputStatistics
        s.inputFeatures = d
        // Rank 0 writes; on several ranks, a failed write stops every rank.
        var saveError: (any Error)?
        if group.rank == 0 {
          do { try s.save(c.folder, trainer: trainer, configuration: c.configuration) } catch {
            if group.size == 1 { throw error }
            saveError = error
          }
        }
        if group.size > 1 { try agree(saveError) }
        if group.rank == 0 { try observe(.checkpoint(folder: c.folder, epoch: epoch + 1, step: trainer.step)) }
      }
      if let patience = settings.patience, stale >= patience {
        summary.stoppedEarly = epoch + 1 < settings.epochs
        try observe(.earlyStop(patience: patience, bestEpoch: best.epoch, bestMapAtR: best.map))
        break
      }
    }
    if validation != nil, !best.values.isEmpty {
      var index = 0
      trainer.network.forEachParameter { _, p in
        p.value = best.values[index]
        index += 1
      }
      try observe(.restored(epoch: best.epoch, mapAtR: best.map))
      if let baseline = validationBaselines, best.map <= Swift.max(baseline.raw, baseline.untrained) {
        try observe(.warning(String(
          format: "warning: on the validation classes, training did not help: best MAP@R %.4f, raw input %.4f, untrained %.4f", best.map,
          baseline.raw, baseline.untrained)))
      }
    }
    if validation != nil {
      summary.bestValidationMapAtR = best.map
      summary.bestEpoch = best.epoch
    }
    return summary
  }

  /// Copies the training inputs of `indices[rows]` (this rank's shard) into `x`, and the labels of
  /// every row of the batch (or, with instance labels, the indices themselves) into `labels`.
  func gather(_ indices: [Int], rows: Range<Int>, into x: inout Matrix<Float>, labels: inout [Int], width d: Int) {
    x.resize(rows: rows.count, columns: d)
    labels.removeAll(keepingCapacity: true)
    training.features.withUnsafeBufferPointer { src in
      x.withUnsafeMutableBufferPointer { dst in
        for (r, i) in indices[rows].enumerated() {
          dst.baseAddress!.advanced(by: r * d).update(from: src.baseAddress! + i * d, count: d)
        }
      }
    }
    if settings.instanceLabels { labels.append(contentsOf: indices) } else { for i in indices { labels.append(training.labels[i]) } }
  }

  /// Retrieval metrics on `test` (each sample a query against all others) of the trained network,
  /// the untrained one and the raw inputs.
  public mutating func test(on test: Dataset) throws -> TestReport {
    var fresh = untrained
    let trained = try metrics(embedTrained(test.features), of: test)
    let random = try metrics(embed(test.features, with: &fresh), of: test)
    let raw = try metrics(test.features.rowsNormalized(), of: test)
    return TestReport(trained: trained, untrained: random, rawInput: raw)
  }
}

extension TrainingRun {
  /// `network`'s embeddings of every row of `features`: on several ranks, each embeds its shard
  /// of the rows and the shards are gathered, so that every rank holds them all.
  public func embed(_ features: Matrix<Float>, with network: inout Network) throws -> Matrix<Float> {
    try DMLRun.embed(features, with: &network, over: group, compute: trainer.compute)
  }

  /// Retrieval metrics of `embeddings` of `data`'s rows (each row a query against the others), the
  /// queries shared among the ranks; for multi-label rows, relevance is a shared label (every rank
  /// holds every embedding and computes them alone).
  func metrics(_ embeddings: Matrix<Float>, of data: Dataset) throws -> RetrievalMetrics {
    if let sets = data.labelSets { return try multiLabelRetrievalMetrics(embeddings, labelSets: sets, compute: trainer.compute) }
    return try retrievalMetrics(embeddings: embeddings, labels: data.labels, over: group, compute: trainer.compute)
  }

  /// The trained network's embeddings of `features`, as `embed(_:with:)`.
  mutating func embedTrained(_ features: Matrix<Float>) throws -> Matrix<Float> {
    var network = trainer.network
    defer { trainer.network = network }
    return try embed(features, with: &network)
  }

  /// A hash of every part of the run that all ranks must share, by part: the data, the initial
  /// learned state, the settings and the batch sampler, and `RunSettings.rankAgreement`.
  func fingerprints() -> [(String, UInt64)] {
    var parts: [(String, UInt64)] = []
    var h = Fingerprint()
    h.add(training.features)
    h.add(training.labels)
    if let images {
      for p in images.loader.list.paths { h.add(Array(p.utf8)) }
      h.add(Array("\(images.loader.transforms) \(images.loader.height) \(images.loader.width) \(images.loader.channels) \(images.loader.seed)".utf8))
    }
    parts.append(("the training data", h.value))
    h = Fingerprint()
    if let v = validation {
      h.add(v.features)
      h.add(v.labels)
    }
    parts.append(("the validation data", h.value))
    var t = trainer
    h = Fingerprint()
    t.network.forEachParameter { name, p in
      h.add(Array(name.utf8))
      h.add(p.value)
    }
    parts.append(("the network's initial parameters", h.value))
    h = Fingerprint()
    t.loss.forEachParameter { name, p in
      h.add(Array(name.utf8))
      h.add(p.value)
    }
    parts.append(("the loss's initial parameters", h.value))
    h = Fingerprint()
    h.add(Array("\(settings.epochs) \(String(describing: settings.patience)) \(settings.seed) \(String(describing: settings.schedule)) \(String(describing: settings.augmentation)) \(String(describing: settings.offlineMining)) \(settings.instanceLabels) \(mode) \(type(of: batches)) \(batches.batchesPerEpoch) \(trainer.step)".utf8))
    parts.append(("the run's settings", h.value))
    h = Fingerprint()
    h.add(Array("\(trainer.compute.engine) \(trainer.compute.threads)".utf8))
    parts.append(("the GEMM engine and threads", h.value))
    for key in settings.rankAgreement.keys.sorted() {
      h = Fingerprint()
      h.add(Array(settings.rankAgreement[key]!.utf8))
      parts.append((key, h.value))
    }
    return parts
  }

  /// Compares every rank's `fingerprints()` at start-up; a difference is an error that names the
  /// part and the ranks.
  func checkRanksAgree() throws {
    let mine = fingerprints()
    var bytes: [UInt8] = []
    for (name, value) in mine {
      bytes += Array(name.utf8) + [0]
      withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    let all = try group.allGatherBytes(bytes, what: "the run's configuration")
    // Each part: its name, a zero byte, its 8-byte hash.
    func parts(_ b: [UInt8]) -> [(name: [UInt8], hash: [UInt8])] {
      var out: [(name: [UInt8], hash: [UInt8])] = [], i = 0
      while i < b.count, let zero = b[i...].firstIndex(of: 0), zero + 9 <= b.count {
        out.append((Array(b[i..<zero]), Array(b[(zero + 1)..<(zero + 9)])))
        i = zero + 9
      }
      return out
    }
    for (r, other) in all.enumerated() where other != all[0] {
      let reference = parts(all[0]), theirs = parts(other)
      let differing = reference.indices.filter { $0 >= theirs.count || theirs[$0] != reference[$0] }
        .map { String(decoding: reference[$0].name, as: UTF8.self) }
      throw TrainingError(
        "rank \(r) of \(group.size) was started with another configuration than rank 0 (different: \(differing.isEmpty ? "the list of parts" : differing.joined(separator: ", "))); start every rank with the same flags, data and version")
    }
  }

  /// Checks that every rank holds the same learned state (network and loss) after `epoch`.
  func checkParametersAgree(epoch: Int, batches: UInt64) throws {
    var h = Fingerprint()
    var t = trainer
    t.network.forEachParameter { _, p in h.add(p.value) }
    t.loss.forEachParameter { _, p in h.add(p.value) }
    var bytes: [UInt8] = []
    withUnsafeBytes(of: batches.littleEndian) { bytes += $0 }
    withUnsafeBytes(of: h.value.littleEndian) { bytes += $0 }
    let all = try group.allGatherBytes(bytes, what: "the hashes of epoch \(epoch)")
    if let r = all.firstIndex(where: { $0[0..<8] != all[0][0..<8] }) {
      throw TrainingError("in epoch \(epoch) rank \(r) drew other batches than rank 0: the ranks diverged")
    }
    if let r = all.firstIndex(where: { $0 != all[0] }) {
      throw TrainingError("after epoch \(epoch) rank \(r)'s parameters differ from rank 0's: the ranks diverged")
    }
  }

  /// Rank 0's check of the checkpoint folder of a new run: it must hold no other run's
  /// checkpoints.
  @usableFromInline static func checkpointFolderProblem(_ settings: RunSettings) -> String? {
    guard let c = settings.checkpoint, !c.resume else { return nil }
    let existing = ((try? FileManager.default.contentsOfDirectory(atPath: c.folder)) ?? []).filter { $0 == "latest" || $0.hasPrefix("step-") }
    return existing.isEmpty ? nil : "\(c.folder) holds another run's checkpoints: resume it, or remove them first"
  }

  /// Shares among the ranks whether any of them failed (`error`), so that all stop together:
  /// the failing rank rethrows its error, the others throw one that names it.
  func agree(_ error: (any Error)?) throws {
    let message = error.map { "\($0)" } ?? ""
    let all = try group.allGatherBytes(Array(message.utf8), what: "the ranks' status")
    if let error { throw error }
    if let r = all.firstIndex(where: { !$0.isEmpty }) {
      throw TrainingError("rank \(r) of \(group.size) failed: \(String(decoding: all[r], as: UTF8.self))")
    }
  }

  /// Freezes (`frozen`) or thaws the network's trainable parameters whose names do not start
  /// with one of `head`: the fine-tuning warm-up.
  mutating func freezeBackbone(_ frozen: Bool, head: [String]) {
    if frozen && frozenByWarmup.isEmpty {
      trainer.network.forEachParameter { name, p in
        guard p.trainable, !p.frozen, !head.contains(where: { name.hasPrefix($0) }) else { return }
        p.frozen = true
        frozenByWarmup.append(name)
      }
    } else if !frozen && !frozenByWarmup.isEmpty {
      let names = Set(frozenByWarmup)
      trainer.network.forEachParameter { name, p in if names.contains(name) { p.frozen = false } }
      frozenByWarmup = []
    }
  }

  /// Random layers (Dropout) and, in the local-anchor mode, a seeded miner draw on ranks other
  /// than 0 from a stream of the seed, the rank and the step alone (rank 0 keeps the run's
  /// streams, which checkpoints save), so that a resumed run draws as the uninterrupted one.
  mutating func deriveRankStreams() {
    let base = RandomSource(seed: settings.seed).derived(stream: 0xD15_0000 &+ UInt64(group.rank)).derived(stream: UInt64(trainer.step))
    var k: UInt64 = 0
    trainer.network.visitRandomSources {
      $0 = base.derived(stream: k)
      k += 1
    }
    if mode == .localAnchors {
      trainer.sampler.visitRandomSources {
        $0 = base.derived(stream: k)
        k += 1
      }
    }
  }
}

/// FNV-1a over 64-bit words: a cheap hash of data and parameters, for comparing ranks.
struct Fingerprint {
  var value: UInt64 = 0xCBF2_9CE4_8422_2325
  mutating func word(_ w: UInt64) {
    value = (value ^ w) &* 0x100_0000_01B3
  }
  mutating func add(_ bytes: [UInt8]) {
    word(UInt64(bytes.count))
    for b in bytes { word(UInt64(b)) }
  }
  mutating func add(_ labels: [Int]) {
    word(UInt64(labels.count))
    for l in labels { word(UInt64(bitPattern: Int64(l))) }
  }
  mutating func add<S: DMLScalar>(_ m: Matrix<S>) {
    word(UInt64(m.rows))
    word(UInt64(m.columns))
    m.withUnsafeBufferPointer { p in
      let raw = UnsafeRawBufferPointer(p)
      var i = 0
      while i + 8 <= raw.count {
        word(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        i += 8
      }
      while i < raw.count {
        word(UInt64(raw[i]))
        i += 1
      }
    }
  }
}
