import DMLCore
import DMLData
import DMLEvaluation
import DMLKernels
import DMLNetworks
import DMLRun
import DMLSamplers
import DMLTesting
import DMLTraining
import Foundation
import Testing
import TripletLosses

/// Gaussian clusters: `classes` classes of `perClass` samples in `features` dimensions, as a
/// 4 × (features / 4) one-channel image so that augmentation applies.
func clusters(classes: Int, perClass: Int, features: Int = 16, spread: Float = 0.6, seed: UInt64) -> Dataset {
  var rng = RandomSource(seed: seed)
  var centres: [[Float]] = []
  for _ in 0..<classes { centres.append((0..<features).map { _ in rng.normal(Float.self) }) }
  var x: [Float] = [], labels: [Int] = []
  for c in 0..<classes {
    for _ in 0..<perClass {
      x += centres[c].map { $0 + spread * rng.normal(Float.self) }
      labels.append(c)
    }
  }
  return Dataset(
    features: Matrix(rows: labels.count, columns: features, elements: x), labels: labels, imageShape: (4, features / 4, 1))
}

let trainingData = clusters(classes: 6, perClass: 16, seed: 1)
let validationData: Dataset = {
  var v = clusters(classes: 4, perClass: 12, seed: 2)
  v.labels = v.labels.map { $0 + 100 }
  return v
}()

/// The run of these tests: an MLP, the triplet loss (a `PairwiseLoss`, given as it is) with
/// semi-hard mining, Adam, m-per-class batches.
func makeRun(
  epochs: Int, learningRate: Double = 1e-3, settings: (inout RunSettings) -> Void = { _ in }
) throws -> TrainingRun<MLP<Float>, LossEvaluator<TripletMarginLoss<Float>>, TripletMarginMiner<Float>, Adam<Float>> {
  let network = MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3)
  let trainer = Trainer(
    network: network, loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
    optimizer: Adam<Float>(learningRate: learningRate))
  var s = RunSettings(epochs: epochs, seed: 5)
  settings(&s)
  return try TrainingRun(
    trainer: trainer, training: trainingData, validation: validationData,
    batches: MPerClassSampler(labels: trainingData.labels, m: 4, batchSize: 24, seed: 6), settings: s)
}

/// Every parameter of the network and the loss, and the optimizer's step, as raw bits.
func bits<N, L, S, O>(_ run: TrainingRun<N, L, S, O>) -> [UInt32] where N.Scalar == Float {
  var out: [UInt32] = [UInt32(run.trainer.step)]
  for p in run.trainer.network.parameters { out += p.value.elements.map(\.bitPattern) }
  return out
}

/// A name of an event, for comparing sequences.
func kind(_ e: RunEvent) -> String {
  switch e {
  case .started: "started"
  case .validationBaselines: "baselines"
  case .offlineMining: "mining"
  case .step: "step"
  case .epoch: "epoch"
  case .checkpoint: "checkpoint"
  case .earlyStop: "earlyStop"
  case .restored: "restored"
  case .warning: "warning"
  }
}

struct ObserverStop: Error {}

@Suite("The training run")
struct TrainingRunTests {
  @Test("observers receive every event in order: started, baselines, steps, epoch, checkpoint per epoch, restored")
  func eventsInOrder() throws {
    let folder = ScratchSpace.path("events")
    var run = try makeRun(epochs: 2) {
      $0.stepEventInterval = 2
      $0.checkpoint = CheckpointSettings(folder: folder)
    }
    var events: [RunEvent] = []
    _ = try run.fit { events.append($0) }
    let perEpoch = run.batches.batchesPerEpoch
    let epoch = Array(repeating: "step", count: perEpoch / 2) + ["epoch", "checkpoint"]
    #expect(events.map(kind).filter { $0 != "warning" } == ["started", "baselines"] + epoch + epoch + ["restored"])
    var steps: [Int] = []
    for case .step(let s) in events { steps.append(s.step) }
    #expect(steps == Array(stride(from: 2, through: 2 * perEpoch, by: 2)))
    var epochs: [EpochEvent] = []
    for case .epoch(let e) in events { epochs.append(e) }
    #expect(epochs.map(\.epoch) == [1, 2] && epochs.map(\.step) == [perEpoch, 2 * perEpoch])
    #expect(epochs.allSatisfy { $0.validationMapAtR != nil && $0.meanMined != nil && $0.meanLoss.isFinite })
    guard case .started(0, 0, false) = events[0] else { Issue.record("first event \(events[0])"); return }
  }

  @Test("early stopping ends the run when validation stops improving and restores the best epoch's parameters")
  func earlyStoppingRestoresBest() throws {
    // A learning rate this high overshoots after the first epochs, so the best epoch is early.
    var run = try makeRun(epochs: 40, learningRate: 0.05) { $0.patience = 2 }
    var validation: [Double] = []
    var restored: (epoch: Int, map: Double)?
    let summary = try run.fit { event in
      if case .epoch(let e) = event { validation.append(e.validationMapAtR!) }
      if case .restored(let epoch, let map) = event { restored = (epoch, map) }
    }
    #expect(summary.stoppedEarly && summary.epochsRun < 40 && summary.epochsRun == validation.count)
    let best = validation.indices.max { validation[$0] < validation[$1] }!
    #expect(summary.bestEpoch == best + 1 && summary.bestEpoch == summary.epochsRun - 2)
    #expect(summary.bestValidationMapAtR == validation[best] && restored?.epoch == best + 1)
    // The network now embeds as it did at the best epoch, not as at the last one.
    let now = try retrievalMetrics(queries: run.trainer.network.embed(validationData.features), queryLabels: validationData.labels).mapAtR
    #expect(now == validation[best] && now != validation.last!)
  }

  @Test("a run stopped and resumed from its checkpoint equals the uninterrupted run bitwise", arguments: [false, true])
  func resumeIsExact(offline: Bool) throws {
    func settings(_ folder: String, resume: Bool = false) -> (inout RunSettings) -> Void {
      {
        $0.checkpoint = CheckpointSettings(folder: folder, resume: resume, configuration: ["recipe": "test"])
        $0.augmentation = try? ImageAugmentation(parsing: "flip,crop:pad=1")
        $0.schedule = CosineSchedule(totalSteps: 16)
        $0.patience = 3
        if offline { $0.offlineMining = OfflineMiningSettings(everySteps: 3, k: 4, batchSize: 24) }
      }
    }
    let whole = ScratchSpace.path("whole-\(offline)"), parted = ScratchSpace.path("parted-\(offline)")
    var a = try makeRun(epochs: 4, settings: settings(whole))
    let summaryA = try a.fit()
    var b = try makeRun(epochs: 2, settings: settings(parted))
    _ = try b.fit()
    var c = try makeRun(epochs: 4, settings: settings(parted, resume: true))
    var started: RunEvent?
    let summaryC = try c.fit { if started == nil { started = $0 } }
    guard case .started(2, let step, true) = started, step == 2 * c.batches.batchesPerEpoch else {
      Issue.record("resumed at \(String(describing: started))")
      return
    }
    #expect(bits(a) == bits(c) && bits(a) != bits(b))
    #expect(summaryA.bestEpoch == summaryC.bestEpoch && summaryA.bestValidationMapAtR == summaryC.bestValidationMapAtR)
    #expect(try a.test(on: validationData).trained == c.test(on: validationData).trained)
  }

  @Test("a resume with another recipe is refused by key; a folder holding another run is refused without resume")
  func resumeRefusals() throws {
    let folder = ScratchSpace.path("refusals")
    var a = try makeRun(epochs: 1) { $0.checkpoint = CheckpointSettings(folder: folder, configuration: ["loss": "triplet"]) }
    _ = try a.fit()
    var b = try makeRun(epochs: 2) { $0.checkpoint = CheckpointSettings(folder: folder, resume: true, configuration: ["loss": "contrastive"]) }
    #expect(throws: ConfigurationMismatch(key: "loss", current: "contrastive", saved: "triplet")) { try b.fit() }
    #expect(throws: TrainingError.self) { try makeRun(epochs: 2) { $0.checkpoint = CheckpointSettings(folder: folder) } }
    // Fewer epochs than the checkpoint has done: refused, not a trap.
    func resumed(epochs: Int) throws -> TrainingRun<MLP<Float>, LossEvaluator<TripletMarginLoss<Float>>, TripletMarginMiner<Float>, Adam<Float>> {
      try makeRun(epochs: epochs) { $0.checkpoint = CheckpointSettings(folder: folder, resume: true, configuration: ["loss": "triplet"]) }
    }
    var same = try resumed(epochs: 1)
    #expect(try same.fit().epochsRun == 0)  // as many epochs as done: nothing left to train
    var more = try resumed(epochs: 2)
    #expect(try more.fit().epochsRun == 2)
    var fewer = try resumed(epochs: 1)
    #expect(throws: TrainingError.self) { try fewer.fit() }
  }

  @Test("an observer that throws stops the run at once; the last checkpoint is intact and resumes")
  func throwingObserver() throws {
    let folder = ScratchSpace.path("stopped")
    var run = try makeRun(epochs: 5) { $0.checkpoint = CheckpointSettings(folder: folder) }
    var epochsSeen = 0
    #expect(throws: ObserverStop.self) {
      _ = try run.fit { event in
        if case .epoch = event {
          epochsSeen += 1
          if epochsSeen == 3 { throw ObserverStop() }
        }
      }
    }
    let perEpoch = run.batches.batchesPerEpoch
    let (latest, rejected) = try Checkpoint.verifiedLatest(in: folder)
    #expect(rejected.isEmpty && latest.hasSuffix(String(format: "step-%08d", 2 * perEpoch)), "\(latest)")
    #expect(RunProgress.read(latest)?.epoch == 2)
    var resumed = try makeRun(epochs: 5) { $0.checkpoint = CheckpointSettings(folder: folder, resume: true) }
    let summary = try resumed.fit()
    #expect(summary.epochsRun == 5 && resumed.trainer.step == 5 * perEpoch)
  }

  @Test("settings that cannot run are refused by name before training")
  func refusedSettings() throws {
    #expect(throws: TrainingError("RunSettings.epochs 0 must be at least 1")) { try makeRun(epochs: 0) }
    #expect(throws: TrainingError("RunSettings.patience 0 must be at least 1")) { try makeRun(epochs: 1) { $0.patience = 0 } }
    #expect(throws: TrainingError.self) {
      try makeRun(epochs: 1) { $0.offlineMining = OfflineMiningSettings(positives: 0, negatives: 0, batchSize: 24) }
    }
  }
}
