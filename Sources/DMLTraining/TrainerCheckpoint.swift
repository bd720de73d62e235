import Foundation

/// The typed manifest of a checkpoint, `checkpoint.json`: what each file holds, by name, shape and
/// element type, so that a load can check everything before it changes anything.
public struct CheckpointManifest: Codable, Sendable, Equatable {
  /// The manifest's file name in a checkpoint folder.
  public static let fileName = "checkpoint.json"
  /// The format this version writes. Format 1 (no manifest; parameters named by position,
  /// `network.p0.weight`) is read for the network alone, by `loadNetwork`.
  public static let currentFormat = 2

  /// One tensor of `parameters.safetensors`.
  public struct Tensor: Codable, Sendable, Equatable {
    /// The full name, `network.0.weight` or `loss.class_weights`.
    public var name: String
    /// The logical shape.
    public var shape: [Int]
    /// The element type, as safetensors spells it (`F32`).
    public var dtype: String
    /// Whether the optimizer steps it (false: running statistics, center loss's centers).
    public var trainable: Bool
  }

  /// The optimizer's part, in `optimizer.safetensors` as `NAME.BUFFER` tensors.
  public struct OptimizerPart: Codable, Sendable, Equatable {
    /// The buffer names (`m`, `v`; `velocity`).
    public var buffers: [String]
    /// Updates taken, by parameter name.
    public var stepCounts: [String: Int]
  }

  /// The cross-batch memory's part, in `memory.safetensors`.
  public struct MemoryPart: Codable, Sendable, Equatable {
    /// Embeddings held.
    public var held: Int
    /// The slot the next embedding goes to.
    public var next: Int
  }

  /// The format version (`currentFormat` when written by this version).
  public var format: Int
  /// Optimizer steps taken.
  public var step: Int
  /// The learned tensors, in visiting order: the network's, then the loss's.
  public var tensors: [Tensor]
  /// The optimizer's state.
  public var optimizer: OptimizerPart
  /// Random generators that advance while training (the network's Dropout, the miner, the loss's
  /// draws), as hexadecimal words: JSON numbers cannot hold 64 bits exactly.
  public var randomStates: [String: [[String]]]
  /// The cross-batch memory, if the run has one and it holds embeddings.
  public var memory: MemoryPart?
}

extension Trainer where Scalar == Float {
  /// The files of a checkpoint of everything this trainer has learned or advanced: every learned
  /// tensor by name (`parameters.safetensors`), the optimizer's state by parameter name
  /// (`optimizer.safetensors`), the cross-batch memory (`memory.safetensors`) and the typed
  /// manifest (`checkpoint.json`). Pass them, with any of the caller's own, to `Checkpoint.save`.
  public func checkpointFiles() throws -> [String: Data] {
    let parameters = network.namedParameters(prefix: ["network"]) + loss.namedParameters(prefix: ["loss"])
    let names = parameters.map(\.name)
    if let duplicate = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
      throw TrainingError("two parameters are named \(duplicate): give the parts of a composed network or loss scopes of their own")
    }
    let state = optimizer.state
    var optimizerTensors: [(name: String, shape: [Int], values: [Float])] = []
    for buffer in state.buffers.keys.sorted() {
      for (name, values) in state.buffers[buffer]!.sorted(by: { $0.key < $1.key }) {
        optimizerTensors.append(("\(name).\(buffer)", [values.count], values))
      }
    }
    func hex(_ states: [[UInt64]]) -> [[String]] { states.map { $0.map { String($0, radix: 16) } } }
    var manifest = CheckpointManifest(
      format: CheckpointManifest.currentFormat, step: step,
      tensors: parameters.map { .init(name: $0.name, shape: $0.parameter.shape, dtype: "F32", trainable: $0.parameter.trainable) },
      optimizer: .init(buffers: state.buffers.keys.sorted(), stepCounts: state.stepCounts),
      randomStates: ["network": hex(network.randomStates), "sampler": hex(sampler.randomStates), "loss": hex(loss.randomStates)], memory: nil)
    var files: [String: Data] = [
      "parameters.safetensors": Checkpoint.safetensors(parameters.map { ($0.name, $0.parameter.shape, $0.parameter.value.elements) }),
      "optimizer.safetensors": Checkpoint.safetensors(optimizerTensors),
    ]
    if let m = memory, m.count > 0 {
      let held = m.heldEmbeddings
      files["memory.safetensors"] = Checkpoint.safetensors([
        (name: "embeddings", shape: [held.rows, held.columns], values: held.elements),
        (name: "labels", shape: [m.count], values: m.slotLabels[0..<m.count].map { Float($0) }),
      ])
      manifest.memory = .init(held: m.count, next: m.next)
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    files[CheckpointManifest.fileName] = try encoder.encode(manifest)
    return files
  }

  /// Restores everything `checkpointFiles()` wrote from the checkpoint folder `directory` (one
  /// `step-…` folder, or `Checkpoint.verifiedLatest`'s choice). Every name, shape and element type
  /// is checked against this trainer's components before anything changes; an error names the
  /// file and the parameter at fault, the shape expected and the shape found.
  public mutating func restore(fromCheckpoint directory: String) throws {
    let manifest = try CheckpointManifest.read(directory)
    let parametersPath = "\(directory)/parameters.safetensors"
    for t in manifest.tensors where t.dtype != "F32" {
      throw TrainingError("\(directory)/\(CheckpointManifest.fileName): \(t.name) is \(t.dtype); this version reads F32 only")
    }
    let tensors = try Checkpoint.readSafetensors(parametersPath)
    var restored = self
    try restored.network.load(tensors, prefix: "network", from: parametersPath)
    try restored.loss.load(tensors, prefix: "loss", from: parametersPath)
    let extra = tensors.keys.filter { !$0.hasPrefix("network.") && !$0.hasPrefix("loss.") }.sorted()
    guard extra.isEmpty else { throw TrainingError("\(parametersPath): \(extra.joined(separator: ", ")) belong to neither the network nor the loss") }

    // The optimizer's buffers, by parameter name, for trainable parameters of this model only.
    let optimizerPath = "\(directory)/optimizer.safetensors"
    let saved = try Checkpoint.readSafetensors(optimizerPath)
    let trainable = Dictionary(
      (restored.network.namedParameters(prefix: ["network"]) + restored.loss.namedParameters(prefix: ["loss"]))
        .filter(\.parameter.trainable).map { ($0.name, $0.parameter.count) }, uniquingKeysWith: { a, _ in a })
    var state = OptimizerState<Float>(stepCounts: manifest.optimizer.stepCounts)
    for (key, value) in saved {
      guard let dot = key.lastIndex(of: ".") else { throw TrainingError("\(optimizerPath): \(key) is not NAME.BUFFER") }
      let name = String(key[..<dot]), buffer = String(key[key.index(after: dot)...])
      guard manifest.optimizer.buffers.contains(buffer) else { throw TrainingError("\(optimizerPath): \(key): unknown buffer \(buffer)") }
      guard let count = trainable[name] else { throw TrainingError("\(optimizerPath): \(key) is for \(name), which is not a trainable parameter of this model") }
      guard value.values.count == count else {
        throw TrainingError("\(optimizerPath): \(key) holds \(value.values.count) values, the model's \(name) has \(count)")
      }
      state.buffers[buffer, default: [:]][name] = value.values
    }
    for name in state.stepCounts.keys where trainable[name] == nil {
      throw TrainingError("\(directory)/\(CheckpointManifest.fileName): step count for \(name), which is not a trainable parameter of this model")
    }
    restored.optimizer.state = state
    restored.step = manifest.step

    func words(_ key: String) throws -> [[UInt64]] {
      try (manifest.randomStates[key] ?? []).map { state in
        try state.map {
          guard let v = UInt64($0, radix: 16) else {
            throw TrainingError("\(directory)/\(CheckpointManifest.fileName): random state '\($0)' is not a hexadecimal word")
          }
          return v
        }
      }
    }
    guard restored.network.restoreRandomStates(try words("network")), restored.sampler.restoreRandomStates(try words("sampler")) else {
      throw TrainingError("\(directory)/\(CheckpointManifest.fileName): the saved random generators do not fit this network and miner")
    }
    // The loss's generators (the manifold loss's meta-classes); a checkpoint written before they
    // were saved has none, and leaves them as built.
    if manifest.randomStates["loss"] != nil, !restored.loss.restoreRandomStates(try words("loss")) {
      throw TrainingError("\(directory)/\(CheckpointManifest.fileName): the saved random generators do not fit this loss")
    }

    if restored.memory != nil {
      if let part = manifest.memory {
        let path = "\(directory)/memory.safetensors"
        let t = try Checkpoint.readSafetensors(path)
        guard let e = t["embeddings"], e.shape.count == 2, e.shape[0] == part.held, e.shape[1] == restored.network.embeddingDimension,
          let l = t["labels"], l.values.count == e.shape[0],
          l.values.allSatisfy({ $0.isFinite && $0 == $0.rounded() && abs($0) <= 16_777_216 })
        else {
          throw TrainingError("\(path): the cross-batch memory's embeddings and labels are missing, malformed or of another dimension")
        }
        do {
          try restored.memory!.restore(
            embeddings: Matrix(rows: e.shape[0], columns: e.shape[1], elements: e.values), labels: l.values.map { Int($0) }, next: part.next)
        } catch { throw TrainingError("\(path): \(error)") }
      }
    } else if manifest.memory != nil {
      throw TrainingError("\(directory): the checkpoint holds a cross-batch memory, and this run has none")
    }
    self = restored
  }
}

extension CheckpointManifest {
  /// Reads and decodes `checkpoint.json` in `directory`. A checkpoint of the first format (no
  /// manifest) is refused with what to do instead.
  public static func read(_ directory: String) throws -> CheckpointManifest {
    let path = "\(directory)/\(fileName)"
    guard let data = FileManager.default.contents(atPath: path) else {
      if FileManager.default.fileExists(atPath: "\(directory)/state.json") {
        throw TrainingError(
          "\(directory): written by an older version (parameters named by position, no \(fileName)); it cannot be resumed. "
            + "embed, evaluate and search still read its network; to train on, start a new run")
      }
      throw TrainingError("\(path): missing")
    }
    let manifest: CheckpointManifest
    do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
      throw TrainingError("\(path): not a checkpoint manifest (\(error))")
    }
    guard manifest.format == currentFormat else {
      throw TrainingError("\(path): format \(manifest.format); this version reads format \(currentFormat)")
    }
    return manifest
  }
}

extension EmbeddingNetwork where Scalar == Float {
  /// Loads this network's parameters from the checkpoint folder `directory`: the partial load that
  /// `embed`, `evaluate` and `search` need (the loss, the optimizer and the rest are not read).
  ///
  /// `replacing` maps full names to tensors that take the place of the saved ones (a run's best
  /// parameters). A checkpoint of the first format, whose parameters are named by position
  /// (`network.p0.weight`), is mapped by position, each shape checked.
  public mutating func loadNetwork(
    fromCheckpoint directory: String, replacing: [String: (shape: [Int], values: [Float])] = [:]
  ) throws {
    let path = "\(directory)/parameters.safetensors"
    var tensors = try Checkpoint.readSafetensors(path)
    if !FileManager.default.fileExists(atPath: "\(directory)/\(CheckpointManifest.fileName)"),
      tensors.keys.contains(where: { $0.hasPrefix("network.p") })
    {
      // The first format: `network.p<index>.<name>`, in visiting order.
      let current = namedParameters(prefix: ["network"])
      var mapped: [String: (shape: [Int], values: [Float])] = [:]
      for (index, p) in current.enumerated() {
        guard let t = tensors["network.p\(index).\(p.parameter.name)"] else {
          throw TrainingError("\(path): no tensor network.p\(index).\(p.parameter.name) (an older checkpoint) for \(p.name)")
        }
        mapped[p.name] = t
      }
      tensors = mapped
    }
    for (name, t) in replacing { tensors[name] = t }
    try load(tensors.filter { $0.key.hasPrefix("network.") }, prefix: "network", from: path)
  }
}
