import DMLCore
import DMLEvaluation
import DMLKernels
import DMLTraining
import Foundation

/// `state.json` in every checkpoint of a `TrainingRun`: the run's progress beside the trainer's
/// own files (`Trainer.checkpointFiles`), typed. Readers of a checkpoint (`dml evaluate`) find the
/// recipe in `configuration` and the training inputs' scale and width in the `input…` fields.
public struct RunProgress: Codable, Sendable, Equatable {
  /// The format of this file.
  public var version = 2
  /// Epochs completed.
  public var epoch: Int
  /// Epochs since the best validation MAP@R.
  public var stale: Int
  /// The best validation MAP@R so far (-1 without validation).
  public var bestMapAtR: Double
  /// The epoch of the best validation MAP@R (0 without validation).
  public var bestEpoch: Int
  /// The recipe the run was made with (`CheckpointSettings.configuration`).
  public var configuration: [String: String]
  /// The step of the last offline mining, whose lists are in `offline.safetensors`.
  public var offlineMinedAtStep: Int?
  /// The mean of the training inputs, so that later inputs in another scale can be noticed.
  public var inputMean: Double?
  /// The standard deviation of the training inputs.
  public var inputStd: Double?
  /// The number of input features the network takes.
  public var inputFeatures: Int?

  enum CodingKeys: String, CodingKey {
    case version, epoch, stale, configuration
    case bestMapAtR = "best_map_at_r", bestEpoch = "best_epoch", offlineMinedAtStep = "offline_mined_at_step"
    case inputMean = "input_mean", inputStd = "input_std", inputFeatures = "input_features"
  }

  /// The mean and standard deviation of every value of `x`, as `inputMean` and `inputStd` hold them
  /// for the training inputs.
  public static func statistics(_ x: Matrix<Float>) -> (mean: Double, std: Double) {
    var sum = 0.0, squares = 0.0
    x.withUnsafeBufferPointer { for v in $0 { sum += Double(v); squares += Double(v) * Double(v) } }
    let n = Double(Swift.max(1, x.count)), mean = sum / n
    return (mean, Swift.max(0, squares / n - mean * mean).squareRoot())
  }

  /// The progress in `directory/state.json`, or `nil` when the file is missing or unreadable.
  public static func read(_ directory: String) -> RunProgress? {
    guard let data = FileManager.default.contents(atPath: "\(directory)/state.json") else { return nil }
    return try? JSONDecoder().decode(RunProgress.self, from: data)
  }
}

/// A resumed run's recipe differs from the checkpoint's at a key that may not change.
public struct ConfigurationMismatch: Error, CustomStringConvertible, Equatable {
  /// The configuration key, its value in this run and in the checkpoint.
  public var key: String, current: String, saved: String
  /// The mismatch at `key`: `current` in this run, `saved` in the checkpoint.
  public init(key: String, current: String, saved: String) {
    self.key = key
    self.current = current
    self.saved = saved
  }
  /// The mismatch in words, naming the key and both values.
  public var description: String { "resume: \(key) is '\(current)' but the checkpoint was made with '\(saved)'" }
}

/// A run's progress in memory: what a checkpoint holds beside the trainer.
struct RunState {
  var epoch = 0
  var stale = 0
  var best: (map: Double, epoch: Int, values: [Matrix<Float>]) = (-1, 0, [])
  /// The last offline mining: the step it ran at and what it found.
  var mined: (step: Int, lists: HardNeighbors)?
  var inputStatistics: (mean: Double, std: Double)?
  var inputFeatures: Int?

  /// Writes a checkpoint of `trainer` and this state into `folder` (atomically, as `step-N/`).
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

  /// Restores `trainer` and returns the state from the newest intact checkpoint in `folder`.
  /// Checkpoints that failed verification are reported to `warn`.
  static func load<N, L, S, O>(
    _ folder: String, into trainer: inout Trainer<N, L, S, O>, configuration: [String: String], changeable: Set<String>,
    warn: (String) -> Void
  ) throws -> RunState where N.Scalar == Float {
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
    // A key the checkpoint lacks (written before it existed) counts as empty.
    for key in configuration.keys.sorted() where (saved[key] ?? "") != configuration[key] && !changeable.contains(key) {
      throw ConfigurationMismatch(key: key, current: configuration[key]!, saved: saved[key] ?? "")
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
