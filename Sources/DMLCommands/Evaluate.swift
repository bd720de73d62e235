import ArgumentParser
import Foundation
import MetricLearning

/// Options shared by commands that load a trained network from a checkpoint.
struct CheckpointOptions: ParsableArguments {
  @Option(help: "A checkpoint folder written by `dml train --checkpoint`.") var checkpoint: String

  func validate() throws {
    guard !checkpoint.isEmpty else { throw ValidationError("--checkpoint FOLDER is required") }
  }

  /// The network of the latest checkpoint, rebuilt from its configuration and loaded.
  func network(inputFeatures: Int, imageShape: (height: Int, width: Int, channels: Int)?) throws -> AnyEmbeddingNetwork<Float> {
    try Self.network(checkpoint, inputFeatures: inputFeatures, imageShape: imageShape)
  }

  /// Embeddings of `x` by the checkpoint's network.
  func embed(_ x: Matrix<Float>, imageShape: (height: Int, width: Int, channels: Int)?) throws -> Matrix<Float> {
    try Self.embed(checkpoint, x, imageShape: imageShape)
  }

  /// The network of the latest checkpoint in `folder`, rebuilt from its configuration and loaded.
  static func network(_ checkpoint: String, inputFeatures: Int, imageShape: (height: Int, width: Int, channels: Int)?) throws -> AnyEmbeddingNetwork<Float> {
    let (dir, rejected) = try Checkpoint.verifiedLatest(in: checkpoint)
    for r in rejected { warn(r.hasSuffix("loaded unverified") ? "warning: \(r)" : "warning: \(r); using the previous checkpoint \(dir)") }
    guard let data = FileManager.default.contents(atPath: "\(dir)/state.json"),
      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let config = json["configuration"] as? [String: String], let spec = config["network"]
    else { throw ValidationError("--checkpoint \(checkpoint): no readable state.json in \(dir)") }
    if let progress = try? JSONDecoder().decode(RunProgress.self, from: data), let features = progress.inputFeatures,
      features != inputFeatures
    {
      throw ValidationError("these inputs have \(inputFeatures) features; the network of --checkpoint \(checkpoint) takes \(features)")
    }
    var net = try Builders.network(spec, inputFeatures: inputFeatures, imageShape: imageShape, seed: 0)
    // Prefer the best parameters when the run validated: by name, or by position (`best.0`, …) in
    // a checkpoint of the first format.
    let best = (try? Checkpoint.readSafetensors("\(dir)/best.safetensors")) ?? [:]
    var replacing: [String: (shape: [Int], values: [Float])] = [:]
    for (index, p) in net.namedParameters(prefix: ["network"]).enumerated() {
      if let t = best[p.name] ?? best["best.\(index)"] { replacing[p.name] = (p.parameter.shape, t.values) }
    }
    try net.loadNetwork(fromCheckpoint: dir, replacing: replacing)
    return net
  }

  /// Warns when `x` is not in the scale of the inputs `checkpoint`'s network was trained on: a
  /// mean more than half a standard deviation away, or a spread off by more than a factor of two.
  static func checkScale(_ checkpoint: String, _ x: Matrix<Float>) {
    guard let (dir, _) = try? Checkpoint.verifiedLatest(in: checkpoint),
      let data = FileManager.default.contents(atPath: "\(dir)/state.json"),
      let progress = try? JSONDecoder().decode(RunProgress.self, from: data), let mean = progress.inputMean,
      let std = progress.inputStd, std > 0, x.count > 0
    else { return }
    let s = RunProgress.statistics(x)
    if abs(s.mean - mean) > std / 2 || s.std > 2 * std || s.std < std / 2 {
      let scaling = progress.configuration["input_scaling"] ?? "?"
      warn(String(format: "warning: these inputs (mean %.3g, std %.3g) are not in the scale the network of %@ was trained on (mean %.3g, std %.3g; %@)", s.mean, s.std, checkpoint, mean, std, scaling))
    }
  }

  /// Embeddings of `x` by the network of the checkpoint in `folder`.
  static func embed(_ checkpoint: String, _ x: Matrix<Float>, imageShape: (height: Int, width: Int, channels: Int)?) throws -> Matrix<Float> {
    checkScale(checkpoint, x)
    var net = try network(checkpoint, inputFeatures: x.columns, imageShape: imageShape)
    return net.embed(x, compute: try Builders.compute())
  }
}

struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Evaluate a checkpoint on test classes: retrieval metrics, NMI and AMI.")

  @OptionGroup var checkpointOptions: CheckpointOptions
  @OptionGroup(title: "Data") var dataOptions: DataOptions
  @Flag(help: "Print one JSON object.") var json = false

  func run() throws {
    let (_, _, test) = try dataOptions.resolved(forCheckpoint: checkpointOptions.checkpoint).splits()
    let e = try checkpointOptions.embed(test.features, imageShape: test.imageShape)
    let m = try retrievalMetrics(queries: e, queryLabels: test.labels)
    let c = try clusteringScores(e, labels: test.labels)
    if json {
      print(jsonLine([
        "precision_at_1": m.precisionAt1, "r_precision": m.rPrecision, "map_at_r": m.mapAtR, "map": m.meanAveragePrecision,
        "mrr": m.meanReciprocalRank, "recall_at_1": m.recallAt[1]!, "recall_at_2": m.recallAt[2]!, "recall_at_4": m.recallAt[4]!,
        "recall_at_8": m.recallAt[8]!, "nmi": c.nmi, "ami": c.ami, "queries": m.queries, "lone_queries": m.loneQueries,
      ]))
    } else {
      print("\(m.queries) queries: \(m)  NMI \(String(format: "%.4f", c.nmi))  AMI \(String(format: "%.4f", c.ami))")
    }
  }
}

struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Write the embeddings of a checkpoint's network for a data split (NPY or CSV).")

  @OptionGroup var checkpointOptions: CheckpointOptions
  @OptionGroup(title: "Data") var dataOptions: DataOptions
  @Option(help: "Output file: .npy (float32, with the labels in NAME.labels.npy as int64) or .csv (label, then the embedding).")
  var output: String
  @Option(help: "train or test.") var split = "test"

  func validate() throws {
    guard output.hasSuffix(".npy") || output.hasSuffix(".csv") else { throw ValidationError("--output \(output) must end in .npy or .csv") }
    guard split == "train" || split == "test" else { throw ValidationError("--split \(split) must be train or test") }
  }

  func run() throws {
    let (train, _, test) = try dataOptions.resolved(forCheckpoint: checkpointOptions.checkpoint).splits()
    let data = split == "train" ? train : test
    let e = try checkpointOptions.embed(data.features, imageShape: data.imageShape)
    if output.hasSuffix(".npy") {
      // The labels beside the embeddings, row for row: NAME.labels.npy (int64).
      let labelsPath = String(output.dropLast(4)) + ".labels.npy"
      try NPY.write(e, to: output)
      try NPY.write(integers: data.labels, to: labelsPath)
      print("wrote \(e.rows) labels to \(labelsPath)")
    } else {
      var text = ""
      for i in 0..<e.rows { text += "\(data.labels[i])," + e.row(i).map { "\($0)" }.joined(separator: ",") + "\n" }
      try atomicWrite(Data(text.utf8), to: output)
    }
    print("wrote \(e.rows) embeddings of dimension \(e.columns) to \(output)")
  }
}
