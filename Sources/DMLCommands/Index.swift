import ArgumentParser
import Foundation
import MetricLearning

/// `dml index`: vector indexes on disk, exact or faiss (IVF, HNSW, IVF-PQ, any factory string).
struct IndexCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "index",
    abstract: "Build, grow, inspect, search and tune vector indexes: exact, or faiss (IVF, HNSW, IVF-PQ, any factory string).",
    discussion: """
      An index is a folder: manifest.json (kind, metric, dimension, count, the model that made the \
      vectors), items.safetensors (ids and labels) and the index itself (faiss's index.faiss, or the \
      exact backend's vectors). It is written atomically, and never over another folder without --force.
      """,
    subcommands: [BuildIndex.self, AddToIndex.self, IndexInfo.self, SearchIndexCommand.self, TuneIndex.self])
}

/// Vectors from NPY files: embeddings (n × d), optional labels and ids (int64 read exactly).
struct VectorInput: ParsableArguments {
  @Option(help: "Embeddings, an NPY matrix (one vector per row), for example from `dml embed`.") var embeddings: String
  @Option(help: "Labels of the rows, an NPY vector (default: EMBEDDINGS.labels.npy if it exists, as `dml embed` writes; for `add`, only if the index holds labels).")
  var labels: String?
  @Option(help: "Ids of the rows, an NPY vector of non-negative integers (default: row numbers, after the index's largest id).")
  var ids: String?

  /// The vectors, their labels (if any) and ids (row numbers from `firstID` when none are given).
  /// `EMBEDDINGS.labels.npy` is read without `--labels` only when `besideLabels`.
  func load(firstID: Int64 = 0, besideLabels: Bool = true) throws -> (vectors: Matrix<Float>, labels: [Int]?, ids: [Int64]) {
    let (shape, values) = try NPY.read(embeddings)
    guard shape.count == 2, shape[0] >= 1, shape[1] >= 1 else {
      throw ValidationError("--embeddings \(embeddings): expected a non-empty matrix, got shape \(shape)")
    }
    guard values.allSatisfy(\.isFinite) else { throw ValidationError("--embeddings \(embeddings): contains NaN or infinite values") }
    let vectors = Matrix(rows: shape[0], columns: shape[1], elements: values)
    var labelPath = labels
    if labelPath == nil && besideLabels {
      let beside = (embeddings as NSString).deletingPathExtension + ".labels.npy"
      if FileManager.default.fileExists(atPath: beside) { labelPath = beside }
    }
    let l = try labelPath.map { p in
      let l = try NPY.readIntegers(p)
      guard l.count == vectors.rows else { throw ValidationError("--labels \(p): \(l.count) labels for \(vectors.rows) rows of \(embeddings)") }
      return l
    }
    let i: [Int64]
    if let ids {
      i = try NPY.readIntegers(ids).map(Int64.init)
      guard i.count == vectors.rows else { throw ValidationError("--ids \(ids): \(i.count) ids for \(vectors.rows) rows of \(embeddings)") }
    } else {
      i = (0..<Int64(vectors.rows)).map { firstID + $0 }
    }
    return (vectors, l, i)
  }
}

/// Search-time options of approximate indexes.
struct SearchEffort: ParsableArguments {
  @Option(help: "Inverted lists an IVF index visits per query (default: the index's tuned value, else faiss's 1).") var nprobe: Int?
  @Option(help: "The candidate list of an HNSW search (default: the index's tuned value, else faiss's 16).") var efSearch: Int?

  func validate() throws {
    if let nprobe, nprobe < 1 { throw ValidationError("--nprobe \(nprobe) must be at least 1") }
    if let efSearch, efSearch < 1 { throw ValidationError("--ef-search \(efSearch) must be at least 1") }
  }

  /// The given values, else the manifest's.
  func parameters(_ defaults: IndexSearchParameters?) -> IndexSearchParameters {
    IndexSearchParameters(nprobe: nprobe ?? defaults?.nprobe, efSearch: efSearch ?? defaults?.efSearch)
  }
}

extension IndexFolder {
  /// Prints the first `queries` rows of `result` as CSV, `query,rank,id,label,score` (an empty
  /// label where the folder holds none).
  func printResult(_ result: IndexSearchResult, queries: Int) {
    print("query,rank,id,label,score")
    for i in 0..<queries {
      for (rank, id) in result.ids(ofQuery: i).enumerated() where id >= 0 {
        print("\(i),\(rank + 1),\(id),\(labels[id].map(String.init) ?? ""),\(result.scores[i * result.k + rank])")
      }
    }
  }
}

func indexError<T>(_ body: () throws -> T) throws -> T {
  do { return try body() } catch let e as IndexError { throw RuntimeError(e.description) }
}

func formatBytes(_ bytes: Int) -> String {
  bytes >= 1 << 30 ? String(format: "%.2f GiB", Double(bytes) / 1_073_741_824)
    : bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576) : "\(bytes) bytes"
}

struct BuildIndex: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "build", abstract: "Build an index of embeddings: train it if its kind needs it, add every vector, write the folder.")

  @OptionGroup var input: VectorInput
  @Option(help: "flat (exact, ours), faiss-flat, ivf:nlist=N, hnsw:m=M, ivfpq:nlist=N,m=M,bits=B, or a faiss factory string.")
  var kind = "flat"
  @Option(help: "l2, inner-product or cosine (vectors and queries L2-normalised).") var metric = "l2"
  @Option(help: "The index folder to write.") var output: String
  @Flag(help: "Replace an index folder at --output.") var force = false
  @Option(help: "Train on this many rows, sampled with --seed (default: every row; faiss samples 256 per IVF list itself).")
  var trainSize: Int?
  @Option(help: "Seed of the training sample.") var seed: UInt64 = 0
  @Option(help: "The checkpoint whose network made the embeddings, recorded so that searches embed queries with it.")
  var checkpoint: String?

  func validate() throws {
    guard IndexMetric(rawValue: metric) != nil else { throw ValidationError("--metric \(metric): expected l2, inner-product or cosine") }
    if let trainSize, trainSize < 1 { throw ValidationError("--train-size \(trainSize) must be at least 1") }
    do { _ = try IndexKind(parsing: kind) } catch let e as IndexError { throw ValidationError("--kind \(kind): \(e.description)") }
  }

  func run() throws {
    // The output is checked before any work.
    if FileManager.default.fileExists(atPath: output) {
      guard force else { throw ValidationError("--output \(output) exists: choose another folder, or --force to replace it") }
      guard IndexFolder.exists(at: output) else { throw ValidationError("--output \(output) exists and is not an index folder: refusing to replace it") }
    }
    let model = try SearchIndex.model(of: checkpoint)
    let (vectors, labels, ids) = try input.load()
    let metric = IndexMetric(rawValue: metric)!
    let kind = try indexError { try IndexKind(parsing: self.kind) }
    let start = DispatchTime.now().uptimeNanoseconds
    var index = try indexError { try kind.make(dimension: vectors.columns, metric: metric) }
    if !index.isTrained {
      var sample = vectors
      if let trainSize, trainSize < vectors.rows {
        var rng = RandomSource(seed: seed)
        sample = vectors.rows(Array(rng.permutation(vectors.rows).prefix(trainSize)).sorted())
      }
      try indexError { try index.train(sample) }
    }
    try indexError { try index.add(vectors, ids: ids) }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let manifest = IndexManifest(
      backend: "", kind: self.kind, factory: kind.factory, metric: metric, dimension: vectors.columns, count: index.count, model: model,
      source: checkpoint ?? input.embeddings)
    let labelMap = labels.map { l in Dictionary(uniqueKeysWithValues: zip(ids, l)) } ?? [:]
    try indexError { try IndexFolder(path: output, manifest: manifest, index: index, labels: labelMap).write(replace: force) }
    print(String(format: "built %@ (%@, %@): %d vectors of dimension %d in %.2f s", output, self.kind, metric.rawValue, index.count, vectors.columns, seconds))
  }
}

struct AddToIndex: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "add", abstract: "Add embeddings to an index folder (rewritten atomically); ids continue after the largest one.")

  @Option(help: "The index folder.") var index: String
  @OptionGroup var input: VectorInput

  func run() throws {
    var folder = try indexError { try IndexFolder.load(index) }
    let next = (folder.index.ids.max() ?? -1) + 1
    // A labels file beside the embeddings is used only if the index holds labels.
    let (vectors, labels, ids) = try input.load(firstID: next, besideLabels: !folder.labels.isEmpty)
    guard (labels == nil) == folder.labels.isEmpty || folder.index.count == 0 else {
      throw ValidationError(
        folder.labels.isEmpty ? "--index \(index) holds no labels; add vectors without --labels" : "--index \(index) holds labels: give --labels for the new vectors")
    }
    try indexError { try folder.index.add(vectors, ids: ids) }
    if let labels { for (id, l) in zip(ids, labels) { folder.labels[id] = l } }
    try indexError { try folder.write(replace: true) }
    print("added \(vectors.rows) vectors to \(index): \(folder.index.count) in all")
  }
}

struct IndexInfo: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "info", abstract: "Describe an index folder.")
  @Option(help: "The index folder.") var index: String

  func run() throws {
    let folder = try indexError { try IndexFolder.load(index) }
    let m = folder.manifest
    print("index \(index)")
    print("  kind \(m.kind) (\(m.backend)\(m.factory.map { ", faiss \"\($0)\"" } ?? "")), metric \(m.metric.rawValue)")
    print("  \(folder.index.count) vectors of dimension \(m.dimension)\(folder.labels.isEmpty ? "" : ", with labels")")
    print("  from \(m.source) (\(m.model))")
    if let faiss = folder.index as? FaissIndex {
      print("  faiss: \(formatBytes(faiss.serializedSize)), trained \(faiss.isTrained)\(faiss.isIVF ? ", IVF (nprobe applies)" : "")\(faiss.isHNSW ? ", HNSW (efSearch applies)" : "")")
    }
    if let p = m.defaultParameters { print("  tuned search parameters: nprobe \(p.nprobe.map(String.init) ?? "-"), efSearch \(p.efSearch.map(String.init) ?? "-")") }
  }
}

struct SearchIndexCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "search", abstract: "The k nearest items of each query in an index folder, as CSV: query,rank,id,label,score.")

  @Option(help: "The index folder.") var index: String
  @Option(help: "Queries, an NPY matrix of embeddings.") var queries: String
  @Option(name: [.short, .long], help: "Neighbours per query.") var k = 10
  @OptionGroup var effort: SearchEffort
  @Option(help: "Print at most this many queries.") var limit = 20

  func validate() throws {
    guard k >= 1 else { throw ValidationError("-k \(k) must be at least 1") }
    guard limit >= 0 else { throw ValidationError("--limit \(limit) must be ≥ 0") }
  }

  func run() throws {
    let folder = try indexError { try IndexFolder.load(index) }
    let (shape, values) = try NPY.read(queries)
    guard shape.count == 2 else { throw ValidationError("--queries \(queries): expected a matrix, got shape \(shape)") }
    let q = Matrix(rows: shape[0], columns: shape[1], elements: values)
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try indexError { try folder.index.search(q, k: k, parameters: effort.parameters(folder.manifest.defaultParameters)) }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    folder.printResult(result, queries: Swift.min(q.rows, limit))
    warn(String(format: "%d queries in %.3f s (%.0f queries/s)", q.rows, seconds, Double(q.rows) / Swift.max(seconds, 1e-9)))
  }
}

struct TuneIndex: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tune",
    abstract: "Pick nprobe (IVF) or efSearch (HNSW) for a target Recall@k against exact search on held-out queries.")

  @Option(help: "The index folder.") var index: String
  @Option(help: "Held-out queries, an NPY matrix of embeddings.") var queries: String
  @OptionGroup var input: VectorInput
  @Option(name: [.short, .long], help: "Neighbours per query.") var k = 10
  @Option(help: "The Recall@k to reach.") var target = 0.95
  @Flag(help: "Record the chosen value in the index's manifest, as the default of later searches.") var save = false

  func validate() throws {
    guard k >= 1 else { throw ValidationError("-k \(k) must be at least 1") }
    guard target > 0 && target <= 1 else { throw ValidationError("--target \(target) must be in (0, 1]") }
  }

  func run() throws {
    var folder = try indexError { try IndexFolder.load(index) }
    let (shape, values) = try NPY.read(queries)
    guard shape.count == 2 else { throw ValidationError("--queries \(queries): expected a matrix, got shape \(shape)") }
    let q = Matrix(rows: shape[0], columns: shape[1], elements: values)
    // The exact neighbours, from the indexed vectors themselves.
    let (vectors, _, ids) = try input.load(besideLabels: false)
    guard Set(ids) == Set(folder.index.ids) else {
      throw ValidationError("--embeddings \(input.embeddings): its ids are not the index's; give the vectors the index was built from (and their --ids)")
    }
    let exact = try indexError { try ExactIndex(vectors: vectors, ids: ids, metric: folder.manifest.metric).search(q, k: k, parameters: .init()) }
    let tuning = try indexError { try IndexTuning.tune(folder.index, queries: q, exact: exact, k: k, target: target) }
    print("parameter,value,recall_at_\(k),queries_per_second")
    for t in tuning.trials {
      let (name, value) = t.parameters.nprobe.map { ("nprobe", $0) } ?? ("efSearch", t.parameters.efSearch ?? 0)
      print(String(format: "%@,%d,%.4f,%.0f", name, value, t.recall, t.queriesPerSecond))
    }
    guard let chosen = tuning.chosen else {
      throw RuntimeError("no setting reached Recall@\(k) \(target); the best was \(String(format: "%.4f", tuning.trials.map(\.recall).max() ?? 0))")
    }
    warn("chosen: \(chosen.parameters.nprobe.map { "nprobe \($0)" } ?? "efSearch \(chosen.parameters.efSearch ?? 0)"), Recall@\(k) \(String(format: "%.4f", chosen.recall))")
    if save {
      folder.manifest.defaultParameters = chosen.parameters
      try indexError { try folder.write(replace: true) }
    }
  }
}
