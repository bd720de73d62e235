import DMLCore
import DMLData
import DMLEvaluation
import DMLTraining
import Foundation

/// What an index folder holds besides the index: its kind, metric, size, where its vectors came
/// from, and each item's label (optional) in `items.safetensors`.
public struct IndexManifest: Codable, Sendable, Equatable {
  /// `"swift-metric-learning index 1"`.
  public var format = IndexManifest.currentFormat
  /// `"exact"` or `"faiss"`.
  public var backend: String
  /// The kind as given to `dml index build` (`"ivf:nlist=4096"`).
  public var kind: String
  /// The faiss factory string (`nil` for the exact backend).
  public var factory: String?
  /// How vectors are compared.
  public var metric: IndexMetric
  /// The vectors' dimension.
  public var dimension: Int
  /// The number of items.
  public var count: Int
  /// What made the vectors: a checkpoint's parameters (`"parameters crc32 …"`) or a file.
  public var model: String
  /// The checkpoint or file the vectors came from.
  public var source: String
  /// The search parameters `dml index tune` chose, used when a search gives none.
  public var defaultParameters: IndexSearchParameters?

  /// The format this library writes and reads.
  public static let currentFormat = "swift-metric-learning index 1"

  /// A manifest; see the properties.
  public init(
    backend: String, kind: String, factory: String?, metric: IndexMetric, dimension: Int, count: Int, model: String, source: String,
    defaultParameters: IndexSearchParameters? = nil
  ) {
    self.backend = backend
    self.kind = kind
    self.factory = factory
    self.metric = metric
    self.dimension = dimension
    self.count = count
    self.model = model
    self.source = source
    self.defaultParameters = defaultParameters
  }
}

/// An index on disk: a folder with `manifest.json`, `items.safetensors` (ids and labels, I64),
/// and the index itself, faiss's own file `index.faiss` or the exact backend's
/// `vectors.safetensors`. Folders are written into a sibling temporary folder, then renamed into
/// place (an existing folder first moves aside, and back if the rename fails), so a folder is
/// never a mixture of two writes; a crash between the two renames leaves the previous folder at
/// `PATH.old-PID`.
public struct IndexFolder {
  /// The folder's path.
  public let path: String
  /// The manifest.
  public var manifest: IndexManifest
  /// The index.
  public var index: any VectorIndex
  /// Each item's label, by id (empty when the vectors came without labels).
  public var labels: [Int64: Int]

  /// A folder value, not yet written (`path` is standardised: a trailing `/` is dropped).
  public init(path: String, manifest: IndexManifest, index: any VectorIndex, labels: [Int64: Int]) {
    self.path = (path as NSString).standardizingPath
    self.manifest = manifest
    self.index = index
    self.labels = labels
  }

  /// Whether `path` holds an index folder (a `manifest.json`).
  public static func exists(at path: String) -> Bool { FileManager.default.fileExists(atPath: path + "/manifest.json") }

  /// Reads the folder at `path`; a missing, damaged or foreign file is refused with its path.
  public static func load(_ path: String) throws -> IndexFolder {
    let path = (path as NSString).standardizingPath
    let manifestPath = path + "/manifest.json"
    guard let data = FileManager.default.contents(atPath: manifestPath) else {
      throw IndexError("\(path): not an index folder (no manifest.json)")
    }
    let manifest: IndexManifest
    do { manifest = try JSONDecoder().decode(IndexManifest.self, from: data) } catch {
      throw IndexError("\(manifestPath): not a manifest this version reads (\(error))")
    }
    guard manifest.format == IndexManifest.currentFormat else {
      throw IndexError("\(manifestPath): format '\(manifest.format)'; this version reads '\(IndexManifest.currentFormat)'")
    }
    let itemsPath = path + "/items.safetensors"
    let extras: [String: (shape: [Int], values: [Int])]
    do { extras = try Checkpoint.readSafetensorsExtras(itemsPath).integers } catch { throw IndexError("\(itemsPath): \(error)") }
    guard let idValues = extras["ids"]?.values else { throw IndexError("\(itemsPath): no ids") }
    let ids = idValues.map(Int64.init)
    var labels: [Int64: Int] = [:]
    if let l = extras["labels"]?.values {
      guard l.count == ids.count else { throw IndexError("\(itemsPath): \(ids.count) ids but \(l.count) labels") }
      for (id, label) in zip(ids, l) { labels[id] = label }
    }
    let index: any VectorIndex
    switch manifest.backend {
    case "exact":
      let vectorsPath = path + "/vectors.safetensors"
      let t: [String: (shape: [Int], values: [Float])]
      do { t = try Checkpoint.readSafetensors(vectorsPath) } catch { throw IndexError("\(vectorsPath): \(error)") }
      guard let v = t["vectors"], v.shape.count == 2, v.shape[1] == manifest.dimension, v.shape[0] == ids.count else {
        throw IndexError("\(vectorsPath): not \(ids.count) vectors of dimension \(manifest.dimension)")
      }
      index = try ExactIndex(vectors: Matrix(rows: v.shape[0], columns: v.shape[1], elements: v.values), ids: ids, metric: manifest.metric == .cosine ? .innerProduct : manifest.metric)
        .recast(manifest.metric)
    case "faiss":
      let faiss = try FaissIndex(reading: path + "/index.faiss", factory: manifest.factory ?? "loaded", metric: manifest.metric)
      guard faiss.dimension == manifest.dimension else {
        throw IndexError("\(path)/index.faiss: dimension \(faiss.dimension), but the manifest says \(manifest.dimension)")
      }
      guard faiss.ids == ids else { throw IndexError("\(path): index.faiss and items.safetensors hold different ids") }
      index = faiss
    default:
      throw IndexError("\(manifestPath): unknown backend '\(manifest.backend)'")
    }
    guard index.count == manifest.count else {
      throw IndexError("\(path): the index holds \(index.count) items, the manifest says \(manifest.count)")
    }
    return IndexFolder(path: path, manifest: manifest, index: index, labels: labels)
  }

  /// Writes the folder atomically. An existing folder at `path` is replaced only with `replace`
  /// (incremental additions, or `--force`); anything else there is refused.
  public func write(replace: Bool) throws {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
      guard replace else { throw IndexError("\(path) exists: choose another folder, or --force to replace it") }
      guard isDirectory.boolValue, Self.exists(at: path) else {
        throw IndexError("\(path) exists and is not an index folder: refusing to replace it")
      }
    }
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) }
    let temporary = path + ".writing-\(getpid())", old = path + ".old-\(getpid())"
    var movedAside = false
    try? fm.removeItem(atPath: temporary)
    try fm.createDirectory(atPath: temporary, withIntermediateDirectories: false)
    do {
      var m = manifest
      m.count = index.count
      let ids = index.ids
      var integers = [(name: "ids", shape: [ids.count], values: ids.map { Int($0) })]
      if !labels.isEmpty {
        integers.append((name: "labels", shape: [ids.count], values: try ids.map { id in
          guard let l = labels[id] else { throw IndexError("no label for id \(id)") }
          return l
        }))
      }
      try Checkpoint.safetensors([], integers: integers, metadata: ["format": IndexManifest.currentFormat])
        .write(to: URL(fileURLWithPath: temporary + "/items.safetensors"))
      switch index {
      case let exact as ExactIndex:
        m.backend = "exact"
        try Checkpoint.safetensors([(name: "vectors", shape: [exact.vectors.rows, dimension], values: exact.vectors.elements)], integers: [], metadata: [:])
          .write(to: URL(fileURLWithPath: temporary + "/vectors.safetensors"))
      case let faiss as FaissIndex:
        m.backend = "faiss"
        m.factory = faiss.factory
        try faiss.write(to: temporary + "/index.faiss")
      default:
        throw IndexError("an index of type \(type(of: index)) cannot be saved")
      }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try encoder.encode(m).write(to: URL(fileURLWithPath: temporary + "/manifest.json"))
      // Swap: the old folder moves aside, the new one takes its place, the old one goes. If the
      // second rename fails, the old folder moves back.
      if fm.fileExists(atPath: path) {
        try? fm.removeItem(atPath: old)
        try fm.moveItem(atPath: path, toPath: old)
        movedAside = true
        try fm.moveItem(atPath: temporary, toPath: path)
        movedAside = false
        try? fm.removeItem(atPath: old)
      } else {
        try fm.moveItem(atPath: temporary, toPath: path)
      }
    } catch {
      if movedAside, !fm.fileExists(atPath: path) { try? fm.moveItem(atPath: old, toPath: path) }
      try? fm.removeItem(atPath: temporary)
      throw error
    }
  }

  var dimension: Int { index.dimension }
}

extension ExactIndex {
  /// The same vectors under `metric` (the stored vectors of a cosine index are already normalised).
  func recast(_ metric: IndexMetric) throws -> ExactIndex {
    var copy = ExactIndex(dimension: dimension, metric: metric)
    copy.vectors = vectors
    copy.ids = ids
    return copy
  }
}

/// The setting of `nprobe` (IVF) or `efSearch` (HNSW) that reaches a target Recall@k against
/// exact search on held-out queries, with the queries per second at each setting tried.
public struct IndexTuning: Sendable {
  /// One setting tried.
  public struct Trial: Sendable, Equatable {
    /// The parameters.
    public var parameters: IndexSearchParameters
    /// Recall@k against exact search: the fraction of the exact k neighbours found.
    public var recall: Double
    /// Queries per second.
    public var queriesPerSecond: Double
  }

  /// Every setting tried, in increasing order.
  public var trials: [Trial]
  /// The cheapest setting that reached the target, or `nil` if none did.
  public var chosen: Trial?

  /// Tries `nprobe` (IVF) at 1, 2, 4, … or `efSearch` (HNSW) at `k` and the powers of two above
  /// it, until Recall@`k` of `queries`
  /// against `exact` (the exact neighbours' ids, `queries × k`) reaches `target`.
  public static func tune(_ index: any VectorIndex, queries: Matrix<Float>, exact: IndexSearchResult, k: Int, target: Double) throws
    -> IndexTuning
  {
    guard let faiss = index as? FaissIndex, faiss.isIVF || faiss.isHNSW else {
      throw IndexError("only IVF indexes (nprobe) and HNSW indexes (efSearch) have a search parameter to tune")
    }
    guard target > 0, target <= 1 else { throw IndexError("target recall \(target) must be in (0, 1]") }
    var trials: [Trial] = []
    // nprobe 1, 2, 4, …; efSearch k (its least useful value), then the powers of two above it.
    var value = faiss.isIVF ? 1 : k
    let limit = faiss.isIVF ? 65_536 : Swift.max(4_096, k)
    while value <= limit {
      let p = faiss.isIVF ? IndexSearchParameters(nprobe: value) : IndexSearchParameters(efSearch: value)
      let start = DispatchTime.now().uptimeNanoseconds
      let found = try faiss.search(queries, k: k, parameters: p)
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      let trial = Trial(parameters: p, recall: recall(found, exact: exact, k: k), queriesPerSecond: Double(queries.rows) / Swift.max(seconds, 1e-9))
      trials.append(trial)
      if trial.recall >= target { return IndexTuning(trials: trials, chosen: trial) }
      value = faiss.isIVF || value < 1 ? value * 2 : 1 << (Int.bitWidth - (value).leadingZeroBitCount)
    }
    return IndexTuning(trials: trials, chosen: nil)
  }

  /// Recall@k of `found` against `exact`: the fraction of each query's exact `k` neighbours that
  /// `found` returned among its first `k`, averaged.
  public static func recall(_ found: IndexSearchResult, exact: IndexSearchResult, k: Int) -> Double {
    let queries = exact.queries
    guard queries > 0 else { return 1 }
    var hits = 0, total = 0
    for i in 0..<queries {
      let truth = Set(exact.ids(ofQuery: i).prefix(k).filter { $0 >= 0 })
      hits += found.ids(ofQuery: i).prefix(k).filter { truth.contains($0) }.count
      total += truth.count
    }
    return total == 0 ? 1 : Double(hits) / Double(total)
  }
}
