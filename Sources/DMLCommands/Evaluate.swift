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
    // The checkpoint's parameters replace any pretrained weights the spec names.
    var net = try Builders.network(spec, inputFeatures: inputFeatures, imageShape: imageShape, seed: 0, loadsWeights: false)
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
  @Option(help: "Also report the metrics from an approximate index of the test embeddings: an index kind (ivf:nlist=N, hnsw:m=M, ivfpq:..., a faiss factory string) or an index folder, whose kind and tuned parameters are used.")
  var index: String?
  @OptionGroup(title: "Approximate search (with --index)") var effort: SearchEffort
  @Option(help: "Under mpirun: seconds a rank may wait for the others in one exchange.") var mpiTimeout: Double = 300

  func validate() throws {
    guard mpiTimeout > 0 && mpiTimeout.isFinite else { throw ValidationError("--mpi-timeout \(mpiTimeout) must be a positive number of seconds") }
  }

  func run() throws {
    let (_, _, test) = try dataOptions.resolved(forCheckpoint: checkpointOptions.checkpoint).splits()
    if test.labelSets != nil, let index {
      throw ValidationError("--index \(index): multi-label rows are evaluated with the exact search only; leave --index out")
    }
    // The index kind is checked before the embeddings are computed.
    var kind: IndexKind?, tuned: IndexSearchParameters?
    if let index {
      if IndexFolder.exists(at: index) {
        let m = try indexError { try IndexFolder.load(index) }.manifest
        kind = try indexError { try IndexKind(parsing: m.kind) }
        tuned = m.defaultParameters
      } else {
        do { kind = try IndexKind(parsing: index) } catch let e as IndexError { throw ValidationError("--index \(index): \(e.description)") }
      }
    }
    // Under mpirun the ranks embed and search their shares of the test rows; rank 0 reports.
    let group: any Collective = MPIGroup.launchedByMPI ? try Ranks.start(timeout: mpiTimeout) : SingleProcess()
    CheckpointOptions.checkScale(checkpointOptions.checkpoint, test.features)
    var network = try checkpointOptions.network(inputFeatures: test.features.columns, imageShape: test.imageShape)
    let compute = try Builders.compute()
    let e = try embed(test.features, with: &network, over: group, compute: compute)
    // Multi-label rows: relevance is a shared label (every rank holds every embedding).
    let m = try test.labelSets.map { try multiLabelRetrievalMetrics(e, labelSets: $0, compute: compute) }
      ?? retrievalMetrics(embeddings: e, labels: test.labels, over: group, compute: compute)
    guard group.rank == 0 else { return }
    // Clustering scores compare one label per row: none for multi-label rows.
    let c = test.labelSets == nil ? try clusteringScores(e, labels: test.labels) : (nmi: Double.nan, ami: Double.nan, clusters: [])
    let approximate = try kind.map { try approximateMetrics(e, labels: test.labels, kind: $0, parameters: effort.parameters(tuned)) }
    if json {
      var object: [String: Any] = [
        "precision_at_1": m.precisionAt1, "r_precision": m.rPrecision, "map_at_r": m.mapAtR, "map": m.meanAveragePrecision,
        "mrr": m.meanReciprocalRank, "recall_at_1": m.recallAt[1]!, "recall_at_2": m.recallAt[2]!, "recall_at_4": m.recallAt[4]!,
        "recall_at_8": m.recallAt[8]!, "queries": m.queries, "lone_queries": m.loneQueries,
      ]
      if !c.nmi.isNaN {
        object["nmi"] = c.nmi
        object["ami"] = c.ami
      }
      if let a = approximate, let kind {
        object["index"] = [
          "kind": kind.description, "precision_at_1": a.precisionAt1, "r_precision": a.rPrecision, "map_at_r": a.mapAtR,
          "recall_at_1": a.recallAt[1]!, "recall_at_2": a.recallAt[2]!, "recall_at_4": a.recallAt[4]!, "recall_at_8": a.recallAt[8]!,
        ]
      }
      print(jsonLine(object))
    } else {
      print("\(m.queries) queries: \(m)" + (c.nmi.isNaN ? "  (multi-label rows: relevance is a shared label)" : "  NMI \(String(format: "%.4f", c.nmi))  AMI \(String(format: "%.4f", c.ami))"))
      if let a = approximate, let kind { print("approximate, \(kind): \(a)") }
    }
  }

  /// The retrieval metrics with neighbours from an approximate index of `e` (each row its own
  /// query, itself excluded), Euclidean as the exact evaluation.
  func approximateMetrics(_ e: Matrix<Float>, labels: [Int], kind: IndexKind, parameters: IndexSearchParameters) throws -> RetrievalMetrics {
    var counts: [Int: Int] = [:]
    for y in labels { counts[y, default: 0] += 1 }
    let maxBin = (counts.values.max() ?? 1) - 1
    let k = Swift.max(1, Swift.min(e.rows - 1, Swift.max(maxBin, 8)))
    var index = try indexError { try kind.make(dimension: e.columns, metric: .l2) }
    try indexError { try index.train(e) }
    try indexError { try index.add(e, ids: (0..<Int64(e.rows)).map { $0 }) }
    let found = try indexError { try index.search(e, k: k + 1, parameters: parameters) }
    // Each query's own row is dropped (or its last neighbour, if the index missed itself); a
    // neighbour the index did not return counts as a miss.
    var indices: [Int32] = []
    indices.reserveCapacity(e.rows * k)
    let missing = Int32(e.rows)
    for i in 0..<e.rows {
      var row = found.ids(ofQuery: i).filter { $0 != Int64(i) }.prefix(k).map { $0 < 0 ? missing : Int32($0) }
      while row.count < k { row.append(missing) }
      indices += row
    }
    // The missing neighbour gets a label no query has.
    let sentinel = (labels.max() ?? 0) + 1
    return metricsFromNeighbors(
      indices, k: k, metricK: Swift.min(k, maxBin), queryLabels: labels, referenceLabels: labels + [sentinel], counts: counts, sameSet: true,
      recallAt: [1, 2, 4, 8])
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
    let options = dataOptions.resolved(forCheckpoint: checkpointOptions.checkpoint)
    let (train, _, test) = try options.splits()
    let data = split == "train" ? try options.decoded(train) : test
    if data.labelSets != nil && output.hasSuffix(".npy") {
      throw ValidationError("--output \(output): multi-label rows have label sets, which an NPY labels file cannot hold; write .csv (labels joined by |)")
    }
    let e = try checkpointOptions.embed(data.features, imageShape: data.imageShape)
    if output.hasSuffix(".npy") {
      // The labels beside the embeddings, row for row: NAME.labels.npy (int64).
      let labelsPath = String(output.dropLast(4)) + ".labels.npy"
      try NPY.write(e, to: output)
      try NPY.write(integers: data.labels, to: labelsPath)
      print("wrote \(e.rows) labels to \(labelsPath)")
      try writePaths(data, beside: String(output.dropLast(4)))
    } else {
      var text = ""
      for i in 0..<e.rows {
        let label = data.labelSets.map { $0[i].map(String.init).joined(separator: "|") } ?? "\(data.labels[i])"
        text += "\(label)," + e.row(i).map { "\($0)" }.joined(separator: ",") + "\n"
      }
      try atomicWrite(Data(text.utf8), to: output)
      try writePaths(data, beside: String(output.dropLast(4)))
    }
    print("wrote \(e.rows) embeddings of dimension \(e.columns) to \(output)")
  }

  /// For image files: NAME.paths.csv beside the embeddings, row by row (row, path, label, class).
  func writePaths(_ data: Dataset, beside name: String) throws {
    guard let paths = data.paths else { return }
    var text = "row,path,label,class\n"
    for (i, p) in paths.enumerated() {
      let y = data.labels[i]
      let cls = data.classNames.map { y < $0.count ? $0[y] : "" } ?? ""
      text += "\(i),\(CSV.field(p)),\(y),\(CSV.field(cls))\n"
    }
    try atomicWrite(Data(text.utf8), to: "\(name).paths.csv")
    print("wrote the \(paths.count) images' paths to \(name).paths.csv")
  }
}
