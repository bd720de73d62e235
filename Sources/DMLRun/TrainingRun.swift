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

  /// A run of `trainer` on `training`. The settings are checked here: an error names the
  /// setting at fault.
  @inlinable
  public init(
    trainer: Trainer<Network, Loss, Sampler, Opt>, training: Dataset, validation: Dataset? = nil, batches: any BatchSampler,
    settings: RunSettings
  ) throws {
    guard settings.epochs >= 1 else { throw TrainingError("RunSettings.epochs \(settings.epochs) must be at least 1") }
    if let p = settings.patience {
      guard p >= 1 else { throw TrainingError("RunSettings.patience \(p) must be at least 1") }
      guard validation != nil else { throw TrainingError("RunSettings.patience needs validation data") }
    }
    guard settings.stepEventInterval >= 0 else { throw TrainingError("RunSettings.stepEventInterval must be ≥ 0") }
    guard batches.batchesPerEpoch >= 1 else { throw TrainingError("the batch sampler yields no batch per epoch") }
    guard training.labels.count == training.features.rows, !training.labels.isEmpty else {
      throw TrainingError("the training data has \(training.features.rows) rows and \(training.labels.count) labels")
    }
    if let v = validation, v.features.columns != training.features.columns {
      throw TrainingError("the validation data has \(v.features.columns) features, the training data \(training.features.columns)")
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
    if let c = settings.checkpoint, !c.resume {
      let existing = ((try? FileManager.default.contentsOfDirectory(atPath: c.folder)) ?? []).filter { $0 == "latest" || $0.hasPrefix("step-") }
      guard existing.isEmpty else {
        throw TrainingError("\(c.folder) holds another run's checkpoints: resume it, or remove them first")
      }
    }
    self.trainer = trainer
    self.training = training
    self.validation = validation
    self.batches = batches
    self.settings = settings
    untrained = trainer.network
    step = { try $0.train($1, labels: $2) }
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
    if let c = settings.checkpoint, c.resume {
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
    try observe(.started(epoch: state.epoch, step: trainer.step, resumed: settings.checkpoint?.resume ?? false))
    for w in warnings { try observe(.warning(w)) }
    var augmenter: ImageAugmenter?
    if let a = settings.augmentation, !a.operations.isEmpty, let shape = training.imageShape {
      augmenter = ImageAugmenter(a, height: shape.height, width: shape.width, channels: shape.channels)
    }
    var validationBaselines: (raw: Double, untrained: Double)?
    if let validation {
      var fresh = untrained
      let raw = try retrievalMetrics(queries: validation.features.rowsNormalized(), queryLabels: validation.labels, compute: trainer.compute).mapAtR
      let initial = try retrievalMetrics(queries: fresh.embed(validation.features, compute: trainer.compute), queryLabels: validation.labels, compute: trainer.compute).mapAtR
      validationBaselines = (raw, initial)
      summary.validationRawMapAtR = raw
      summary.validationUntrainedMapAtR = initial
      try observe(.validationBaselines(rawInput: raw, untrained: initial))
    }
    var indices: [Int] = [], labels: [Int] = []
    var x = Matrix<Float>(rows: 0, columns: training.features.columns)
    let d = training.features.columns
    var best = state.best
    var stale = state.stale
    let inputStatistics = settings.checkpoint == nil ? nil : RunProgress.statistics(training.features)  // saved with every checkpoint
    for epoch in state.epoch..<settings.epochs {
      summary.epochsRun = epoch + 1
      var lossSum = 0.0, emptyMined = 0, minedTotal = 0, activeTuples = 0
      var miningSeconds = 0.0
      let start = Date()
      for b in 0..<perEpoch {
        if let offline, let interval = miningInterval {
          if minedSampler == nil || trainer.step - (state.mined?.step ?? 0) >= interval {
            let t0 = Date()
            let e = trainer.network.embed(training.features, compute: trainer.compute)
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
        } else {
          batches.next(into: &indices)
        }
        gather(indices, into: &x, labels: &labels, width: d)
        if augmenter != nil {
          // Drawn from the seed and the step alone, so a resumed run augments identically.
          var rng = RandomSource(seed: seed).derived(stream: 0xA064_0000 &+ UInt64(trainer.step))
          augmenter!.apply(to: &x, rng: &rng)
        }
        if let schedule = settings.schedule { trainer.optimizer.learningRateScale = schedule.factor(at: trainer.step) }
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
      let seconds = Date().timeIntervalSince(start)
      var event = EpochEvent(
        epoch: epoch + 1, step: trainer.step, meanLoss: lossSum / Double(perEpoch),
        imagesPerSecond: Double(perEpoch * indices.count) / seconds, meanActiveTerms: activeTuples / Swift.max(1, perEpoch),
        batchesPerEpoch: perEpoch)
      if trainer.mines {
        event.meanMined = minedTotal / Swift.max(1, perEpoch)
        event.batchesWithNothingMined = emptyMined
      }
      if offline != nil { event.offlineMiningSeconds = miningSeconds }
      event.memoryHeld = trainer.memory?.count
      if let validation {
        let e = trainer.network.embed(validation.features, compute: trainer.compute)
        let m = try retrievalMetrics(queries: e, queryLabels: validation.labels, compute: trainer.compute)
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
        try s.save(c.folder, trainer: trainer, configuration: c.configuration)
        try observe(.checkpoint(folder: c.folder, epoch: epoch + 1, step: trainer.step))
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

  /// Copies rows `indices` of the training inputs into `x` and their labels (or, with instance
  /// labels, the indices themselves) into `labels`.
  func gather(_ indices: [Int], into x: inout Matrix<Float>, labels: inout [Int], width d: Int) {
    x.resize(rows: indices.count, columns: d)
    labels.removeAll(keepingCapacity: true)
    training.features.withUnsafeBufferPointer { src in
      x.withUnsafeMutableBufferPointer { dst in
        for (r, i) in indices.enumerated() {
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
    let trained = try retrievalMetrics(queries: trainer.network.embed(test.features, compute: trainer.compute), queryLabels: test.labels, compute: trainer.compute)
    let random = try retrievalMetrics(queries: fresh.embed(test.features, compute: trainer.compute), queryLabels: test.labels, compute: trainer.compute)
    let raw = try retrievalMetrics(queries: test.features.rowsNormalized(), queryLabels: test.labels, compute: trainer.compute)
    return TestReport(trained: trained, untrained: random, rawInput: raw)
  }
}
