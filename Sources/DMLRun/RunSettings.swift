import DMLCore
import DMLData
import DMLEvaluation
import DMLKernels
import DMLTraining

/// Offline hard mining: every so often the whole training set is embedded, each sample's hardest
/// positives and negatives are found by exact k-NN, and batches are built from those lists
/// (`MinedPartnersBatchSampler`) instead of the run's batch sampler.
public struct OfflineMiningSettings: Sendable, Equatable {
  /// Mine again every this many epochs (when `everySteps` is `nil`).
  public var everyEpochs: Int
  /// Or every this many steps.
  public var everySteps: Int?
  /// Hard positives and negatives kept per anchor.
  public var k: Int
  /// Which negatives count as hard.
  public var window: OfflineWindow
  /// Hard positives per anchor in a batch.
  public var positives: Int
  /// Hard negatives per anchor in a batch.
  public var negatives: Int
  /// The distance of the search.
  public var distance: Distance
  /// Samples per mined batch.
  public var batchSize: Int

  /// Settings; see the properties. The defaults are the command line's.
  public init(
    everyEpochs: Int = 1, everySteps: Int? = nil, k: Int = 10, window: OfflineWindow = .hard, positives: Int = 1, negatives: Int = 3,
    distance: Distance = .euclidean, batchSize: Int
  ) {
    self.everyEpochs = everyEpochs
    self.everySteps = everySteps
    self.k = k
    self.window = window
    self.positives = positives
    self.negatives = negatives
    self.distance = distance
    self.batchSize = batchSize
  }
}

/// Where a run writes its checkpoints, and whether it continues the run already there.
public struct CheckpointSettings: Sendable {
  /// The folder (created if needed). Each epoch writes `step-N/` into it atomically.
  public var folder: String
  /// Continue the run whose checkpoints are in `folder`: the trainer's state, the epoch, early
  /// stopping's state, the best parameters and the offline-mined lists are restored, and the
  /// batch sampler is replayed to the same batch. A resumed run equals the uninterrupted one
  /// bitwise.
  public var resume: Bool
  /// The recipe, saved with every checkpoint: a resume is refused when the saved recipe differs
  /// at a key outside `changeableOnResume`. Readers such as `dml evaluate` rebuild the network
  /// from it.
  public var configuration: [String: String]
  /// Keys of `configuration` that a resumed run may change (for example more epochs).
  public var changeableOnResume: Set<String>

  /// Checkpoints into `folder`; see the properties.
  public init(folder: String, resume: Bool = false, configuration: [String: String] = [:], changeableOnResume: Set<String> = ["epochs"]) {
    self.folder = folder
    self.resume = resume
    self.configuration = configuration
    self.changeableOnResume = changeableOnResume
  }
}

/// How a `TrainingRun` trains: epochs, validation and early stopping, the schedule,
/// augmentation, offline mining and checkpoints. Everything has a default except the number of
/// epochs.
public struct RunSettings: Sendable {
  /// Epochs in all (a resumed run continues up to this count).
  public var epochs: Int
  /// Stop after this many epochs without a better validation MAP@R (needs validation data).
  public var patience: Int?
  /// The seed of the augmentation and of the offline-mined batches.
  public var seed: UInt64
  /// The learning-rate factor by step (`nil`: constant).
  public var schedule: (any LearningRateSchedule)?
  /// Image augmentation of each batch (`nil` or empty: none); needs image data.
  public var augmentation: ImageAugmentation?
  /// Offline hard mining (`nil`: off).
  public var offlineMining: OfflineMiningSettings?
  /// Label each batch row by its sample index instead of its class, so that a sample's views are
  /// its only positives (SimCLR batches).
  public var instanceLabels: Bool
  /// Report a `.step` event every this many steps (0: none).
  public var stepEventInterval: Int
  /// Fine-tuning warm-up: for the first `steps` steps only the network's parameters whose names
  /// start with one of `head` train (the optimizer leaves the backbone's parameters and their
  /// optimizer state untouched; its BatchNorm running statistics still follow the batches unless
  /// `frozen_bn`); then everything trains. `nil`: no warm-up.
  public var frozenBackbone: (steps: Int, head: [String])?
  /// Checkpoints (`nil`: none).
  public var checkpoint: CheckpointSettings?
  /// Values that every rank of a data-parallel run must share besides its data and initial
  /// parameters (flags, the program's version), by name; compared at start-up, and a difference
  /// names the value.
  public var rankAgreement: [String: String] = [:]

  /// Settings for `epochs` epochs; see the properties for the rest.
  public init(
    epochs: Int, patience: Int? = nil, seed: UInt64 = 0, schedule: (any LearningRateSchedule)? = nil,
    augmentation: ImageAugmentation? = nil, offlineMining: OfflineMiningSettings? = nil, instanceLabels: Bool = false,
    stepEventInterval: Int = 0, checkpoint: CheckpointSettings? = nil
  ) {
    self.epochs = epochs
    self.patience = patience
    self.seed = seed
    self.schedule = schedule
    self.augmentation = augmentation
    self.offlineMining = offlineMining
    self.instanceLabels = instanceLabels
    self.stepEventInterval = stepEventInterval
    self.checkpoint = checkpoint
  }
}

/// What a run reports while it trains, in this order: `started`, then `validationBaselines`
/// (with validation data), then per epoch any `offlineMining` and `step` events, the `epoch`
/// event, `checkpoint` (with checkpoints) and `earlyStop` (when patience runs out); last
/// `restored` (with validation data). `warning` may come at any point.
public enum RunEvent: Sendable {
  /// The run begins at `epoch` (0 for a new run) and `step`; `resumed` when it continues a
  /// checkpoint.
  case started(epoch: Int, step: Int, resumed: Bool)
  /// MAP@R on the validation data of the raw inputs and of the untrained network.
  case validationBaselines(rawInput: Double, untrained: Double)
  /// An offline mining ran.
  case offlineMining(OfflineMiningEvent)
  /// One step of `RunSettings.stepEventInterval`.
  case step(StepEvent)
  /// An epoch ended.
  case epoch(EpochEvent)
  /// A checkpoint was written (atomically) for the epoch that just ended.
  case checkpoint(folder: String, epoch: Int, step: Int)
  /// Validation MAP@R did not improve for `patience` epochs.
  case earlyStop(patience: Int, bestEpoch: Int, bestMapAtR: Double)
  /// The network holds the parameters of its best validation epoch again.
  case restored(epoch: Int, mapAtR: Double)
  /// Something a person should know that does not stop the run.
  case warning(String)
}

/// An offline mining: when, how long, and what it found.
public struct OfflineMiningEvent: Sendable, Equatable {
  /// The step before which it ran.
  public var step: Int
  /// Seconds it took (embedding the training set and the search).
  public var seconds: Double
  /// Anchors (training samples).
  public var anchors: Int
  /// Hard positives and negatives found in all.
  public var hardPositives: Int, hardNegatives: Int
}

/// One step's outcome.
public struct StepEvent: Sendable, Equatable {
  /// The epoch (from 1) and the step count after the step.
  public var epoch: Int, step: Int
  /// The batch within the epoch (from 1) and the batches per epoch.
  public var batch: Int, batchesPerEpoch: Int
  /// The batch's loss before the update.
  public var loss: Double
  /// Tuples mined (`nil` without a miner).
  public var mined: Int?
  /// Training speed so far in this epoch.
  public var imagesPerSecond: Double
  /// Rows in the batch.
  public var batchSize: Int
}

/// One epoch's outcome.
public struct EpochEvent: Sendable, Equatable {
  /// The epoch (from 1) and the step count at its end.
  public var epoch: Int, step: Int
  /// The mean loss of its batches.
  public var meanLoss: Double
  /// Training speed over the epoch.
  public var imagesPerSecond: Double
  /// Tuples mined per batch and batches where the miner found nothing (`nil` without a miner).
  public var meanMined: Int?, batchesWithNothingMined: Int?
  /// Loss terms that were not zero, per batch.
  public var meanActiveTerms: Int
  /// Seconds spent in offline mining during the epoch (`nil` without it).
  public var offlineMiningSeconds: Double?
  /// Embeddings held by the cross-batch memory (`nil` without one).
  public var memoryHeld: Int?
  /// Seconds this rank spent in collective operations during the epoch's steps (waiting for the
  /// other ranks included), with several ranks.
  public var communicationSeconds: Double?
  /// Seconds of the epoch's steps (validation excluded).
  public var seconds: Double?
  /// With training images read as the run goes: seconds the steps waited for decoded batches.
  public var inputWaitSeconds: Double?
  /// With training images read as the run goes: reads of images skipped as unreadable in the
  /// epoch.
  public var skippedImages: Int?
  /// Validation MAP@R and precision@1 (`nil` without validation data).
  public var validationMapAtR: Double?, validationPrecisionAt1: Double?
  /// Batches per epoch.
  public var batchesPerEpoch: Int
}

/// What a finished run found.
public struct RunSummary: Sendable, Equatable {
  /// The best validation MAP@R (`nil` without validation data).
  public var bestValidationMapAtR: Double?
  /// The epoch of the best validation MAP@R, from 1 (0 without validation data).
  public var bestEpoch = 0
  /// The last epoch trained (counted from 1).
  public var epochsRun = 0
  /// Validation MAP@R of the raw inputs, L2-normalised.
  public var validationRawMapAtR: Double?
  /// Validation MAP@R of the untrained network.
  public var validationUntrainedMapAtR: Double?
  /// Whether patience ran out before the last epoch.
  public var stoppedEarly = false
  /// Distinct training images skipped as unreadable in this process's epochs (with
  /// `TrainingImages.onBadImage` `.skip`).
  public var skippedImages = 0

  /// An empty summary, filled in as a run goes.
  public init() {}
}

/// Retrieval metrics of a trained network on test data beside the two baselines that need no
/// training: the untrained network (same seed) and the raw inputs, L2-normalised.
public struct TestReport: Sendable {
  /// The trained network's metrics.
  public var trained: RetrievalMetrics
  /// The untrained network's.
  public var untrained: RetrievalMetrics
  /// The raw inputs'.
  public var rawInput: RetrievalMetrics
  /// Whether training beat both baselines (MAP@R).
  public var helped: Bool { trained.mapAtR > max(untrained.mapAtR, rawInput.mapAtR) }
}

/// Training images read from their files as a run goes, instead of rows in memory: worker threads
/// decode and transform each epoch's batches ahead of the steps (a bounded queue of `prefetch`
/// batches), so memory does not grow with the number of images, and the random transforms of a
/// row depend on the seed, the step and the row's place in its batch alone.
public struct TrainingImages: Sendable {
  /// The loader of the training images (its list is the training set's, row for row).
  public var loader: ImageLoader
  /// Batches prepared ahead.
  public var prefetch: Int
  /// What an unreadable image does: stop the run, or leave its batch (one process only).
  public var onBadImage: BadImagePolicy

  /// Images from `loader`, `prefetch` batches ahead.
  public init(loader: ImageLoader, prefetch: Int = 2, onBadImage: BadImagePolicy = .stop) {
    self.loader = loader
    self.prefetch = prefetch
    self.onBadImage = onBadImage
  }
}
