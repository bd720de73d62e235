import CFaiss
import DMLCore
import DMLEvaluation
import Foundation

/// The library's exact search behind `VectorIndex`: every item is compared with every query, by
/// blocked GEMM and a running top-k (`nearestNeighbors`). Needs no training; any removal works.
public struct ExactIndex: VectorIndex, Sendable {
  /// The vectors, one per row (normalised under the cosine metric).
  public internal(set) var vectors: Matrix<Float>
  /// The items' ids, one per row of `vectors`.
  public internal(set) var ids: [Int64]
  /// The vectors' dimension.
  public let dimension: Int
  /// How vectors are compared.
  public let metric: IndexMetric
  /// The threads each search's products may use.
  public var compute: ComputeContext = .automatic

  /// An empty index.
  public init(dimension: Int, metric: IndexMetric) {
    self.dimension = dimension
    self.metric = metric
    vectors = Matrix(rows: 0, columns: dimension)
    ids = []
  }

  /// An index holding `vectors` (already normalised under the cosine metric) and `ids`.
  public init(vectors: Matrix<Float>, ids: [Int64], metric: IndexMetric) throws {
    self.init(dimension: vectors.columns, metric: metric)
    try add(vectors, ids: ids)
  }

  /// The number of items.
  public var count: Int { ids.count }
  /// Always true: exact search needs no training.
  public var isTrained: Bool { true }
  /// Does nothing: exact search needs no training.
  public mutating func train(_ vectors: Matrix<Float>) throws {}

  /// Appends the vectors (normalised under the cosine metric) and their ids.
  public mutating func add(_ new: Matrix<Float>, ids newIDs: [Int64]) throws {
    try checkAddition(new, ids: newIDs)
    guard new.rows > 0 else { return }
    let rows = metric == .cosine ? new.rowsNormalized() : new
    var all = Matrix<Float>(rows: vectors.rows + rows.rows, columns: dimension)
    all.withUnsafeMutableBufferPointer { out in
      vectors.withUnsafeBufferPointer { old in _ = UnsafeMutableBufferPointer(rebasing: out[0..<old.count]).initialize(from: old) }
      rows.withUnsafeBufferPointer { r in _ = UnsafeMutableBufferPointer(rebasing: out[(vectors.count)...]).initialize(from: r) }
    }
    vectors = all
    ids += newIDs
  }

  /// Exact nearest neighbours: Euclidean distances, or inner products.
  public func search(_ queries: Matrix<Float>, k: Int, parameters: IndexSearchParameters = IndexSearchParameters()) throws
    -> IndexSearchResult
  {
    try checkSearch(queries, k: k, parameters: parameters)
    let q = metric == .cosine ? queries.rowsNormalized() : queries
    let found = Swift.min(k, count)
    var result = IndexSearchResult(
      k: k, ids: [Int64](repeating: -1, count: q.rows * k),
      scores: [Float](repeating: metric.isSimilarity ? -.infinity : .infinity, count: q.rows * k))
    guard found > 0, q.rows > 0 else { return result }
    let distance = metric == .l2 ? Distance(.euclidean, normalizesEmbeddings: false) : .dotProduct
    let knn = try nearestNeighbors(queries: q, references: vectors, k: found, distance: distance, compute: compute)
    for i in 0..<q.rows {
      for j in 0..<found {
        result.ids[i * k + j] = ids[Int(knn.indices[i * found + j])]
        result.scores[i * k + j] = knn.scores[i, j]
      }
    }
    return result
  }

  /// Removes the items with these ids.
  public mutating func remove(ids gone: [Int64]) throws -> Int {
    let set = Set(gone)
    let keep = ids.indices.filter { !set.contains(ids[$0]) }
    let removed = ids.count - keep.count
    vectors = vectors.rows(keep)
    ids = keep.map { ids[$0] }
    return removed
  }
}

/// A faiss index behind `VectorIndex`, made from an index-factory string (`"IVF4096,Flat"`,
/// `"HNSW32"`, `"IVF1024,PQ16x8"`) and kept behind faiss's id map, so that every kind takes ids.
/// Every faiss exception becomes an `IndexError` with faiss's reason.
///
/// The index lives in faiss's memory; copies of this value share it (a class handle), and it is
/// freed with the last copy.
public struct FaissIndex: VectorIndex, @unchecked Sendable {
  final class Handle {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { dml_faiss_free(pointer) }
  }
  let handle: Handle
  /// The factory string it was made from (`"loaded"` for an index read from a file without one).
  public let factory: String
  /// How vectors are compared.
  public let metric: IndexMetric

  /// An empty index of `dimension` made by faiss's index factory; an unknown or invalid factory
  /// string is refused with faiss's reason.
  public init(factory: String, dimension: Int, metric: IndexMetric) throws {
    guard dimension >= 1 else { throw IndexError("dimension \(dimension) must be at least 1") }
    var pointer: OpaquePointer?
    try Self.call("factory string \"\(factory)\"") { error, size in
      dml_faiss_create(factory, Int64(dimension), metric == .l2 ? DML_FAISS_METRIC_L2 : DML_FAISS_METRIC_INNER_PRODUCT, &pointer, error, size)
    }
    handle = Handle(pointer!)
    self.factory = factory
    self.metric = metric
  }

  /// Reads an index that `write(to:)` wrote. `metric` is the one it was built with (the manifest
  /// records it; faiss keeps only L2 or inner product). A damaged or foreign file is refused with
  /// the path and faiss's reason.
  public init(reading path: String, factory: String, metric: IndexMetric) throws {
    var pointer: OpaquePointer?
    try Self.call(path) { error, size in dml_faiss_read(path, &pointer, error, size) }
    handle = Handle(pointer!)
    self.factory = factory
    self.metric = metric
    let stored = dml_faiss_metric(pointer) == DML_FAISS_METRIC_L2 ? "l2" : "inner product"
    guard (metric == .l2) == (stored == "l2") else {
      throw IndexError("\(path): faiss index of metric \(stored), but the manifest says \(metric.rawValue)")
    }
  }

  /// Calls a shim function, turning its failure into an `IndexError` about `subject` with the
  /// reason faiss gave (its source location left out).
  static func call(_ subject: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
    var error = [CChar](repeating: 0, count: 2048)
    let status = error.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
    guard status == 0 else {
      let text = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      // "Error in <function> at <file>:<line>: <reason>" → "<reason>".
      var reason = text
      if text.hasPrefix("Error in "), let range = text.range(of: #"\.(cpp|h):[0-9]+: "#, options: .regularExpression) {
        reason = String(text[range.upperBound...])
      }
      // A failed check: "Error: 'condition' failed: <reason>" → "<reason>".
      if reason.hasPrefix("Error: '"), let range = reason.range(of: "' failed: ") { reason = String(reason[range.upperBound...]) }
      throw IndexError("faiss, \(subject): \(reason)")
    }
  }

  /// The vectors' dimension.
  public var dimension: Int { Int(dml_faiss_dimension(handle.pointer)) }
  /// The number of items.
  public var count: Int { Int(dml_faiss_count(handle.pointer)) }
  /// Whether the index has been trained (always, for kinds that need no training).
  public var isTrained: Bool { dml_faiss_is_trained(handle.pointer) != 0 }
  /// Whether `nprobe` applies.
  public var isIVF: Bool { dml_faiss_is_ivf(handle.pointer) != 0 }
  /// Whether `efSearch` applies.
  public var isHNSW: Bool { dml_faiss_is_hnsw(handle.pointer) != 0 }
  /// The size of the serialised index in bytes: faiss's own measure of what it holds.
  public var serializedSize: Int { Int(dml_faiss_serialized_size(handle.pointer)) }

  /// The ids, in faiss's storage order.
  public var ids: [Int64] {
    var out = [Int64](repeating: 0, count: count)
    let pointer = handle.pointer
    try? out.withUnsafeMutableBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      try Self.call("ids") { error, size in dml_faiss_ids(pointer, base, error, size) }
    }
    return out
  }

  func prepared(_ vectors: Matrix<Float>) -> Matrix<Float> { metric == .cosine ? vectors.rowsNormalized() : vectors }

  /// Turns off faiss's polysemous training of a PQ or IVF-PQ index.
  public func skipPolysemousTraining() { _ = dml_faiss_skip_polysemous_training(handle.pointer) }

  /// Trains the index (IVF centroids, PQ codebooks) on `vectors`.
  public mutating func train(_ vectors: Matrix<Float>) throws {
    guard vectors.columns == dimension else {
      throw IndexError("the training vectors have dimension \(vectors.columns); the index holds dimension \(dimension)")
    }
    guard vectors.isFinite else { throw IndexError("the training vectors contain NaN or infinite values") }
    let x = prepared(vectors), pointer = handle.pointer
    try x.withUnsafeBufferPointer { p in
      try Self.call("train \(factory)") { error, size in dml_faiss_train(pointer, Int64(x.rows), p.baseAddress, error, size) }
    }
  }

  /// Adds the vectors with their ids; an untrained IVF index refuses them.
  public mutating func add(_ vectors: Matrix<Float>, ids: [Int64]) throws {
    try checkAddition(vectors, ids: ids)
    guard vectors.rows > 0 else { return }
    guard isTrained else { throw IndexError("faiss, add to \(factory): the index is not trained; train it first (dml index build trains it)") }
    let x = prepared(vectors), pointer = handle.pointer
    try x.withUnsafeBufferPointer { p in
      try ids.withUnsafeBufferPointer { i in
        try Self.call("add to \(factory)") { error, size in dml_faiss_add(pointer, Int64(x.rows), p.baseAddress, i.baseAddress, error, size) }
      }
    }
  }

  /// faiss's search, with `nprobe` and `efSearch` applied where they mean something. L2 distances
  /// are rooted, so that both backends report Euclidean distances.
  public func search(_ queries: Matrix<Float>, k: Int, parameters: IndexSearchParameters = IndexSearchParameters()) throws
    -> IndexSearchResult
  {
    try checkSearch(queries, k: k, parameters: parameters)
    guard isTrained else { throw IndexError("faiss, search \(factory): the index is not trained; train it and add vectors first") }
    let q = prepared(queries), pointer = handle.pointer
    var result = IndexSearchResult(
      k: k, ids: [Int64](repeating: -1, count: q.rows * k), scores: [Float](repeating: 0, count: q.rows * k))
    guard q.rows > 0 else { return result }
    try q.withUnsafeBufferPointer { p in
      try result.ids.withUnsafeMutableBufferPointer { i in
        try result.scores.withUnsafeMutableBufferPointer { s in
          try Self.call("search \(factory)") { error, size in
            dml_faiss_search(
              pointer, Int64(q.rows), p.baseAddress, Int64(k), Int64(parameters.nprobe ?? 0), Int64(parameters.efSearch ?? 0),
              s.baseAddress, i.baseAddress, error, size)
          }
        }
      }
    }
    for j in result.scores.indices {
      if result.ids[j] < 0 {
        result.scores[j] = metric.isSimilarity ? -.infinity : .infinity
      } else if metric == .l2 {
        result.scores[j] = Swift.max(0, result.scores[j]).squareRoot()
      }
    }
    return result
  }

  /// Removes the items with these ids; an HNSW index cannot remove, and says so.
  public mutating func remove(ids gone: [Int64]) throws -> Int {
    var removed: Int64 = 0
    let pointer = handle.pointer
    try gone.withUnsafeBufferPointer { i in
      try Self.call("remove from \(factory)") { error, size in dml_faiss_remove(pointer, Int64(gone.count), i.baseAddress, &removed, error, size) }
    }
    return Int(removed)
  }

  /// Writes faiss's own file of the index to `path`.
  public func write(to path: String) throws {
    let pointer = handle.pointer
    try Self.call(path) { error, size in dml_faiss_write(pointer, path, error, size) }
  }
}
