import DMLCore
import Foundation

/// An error of an index, naming the file, the value or the operation at fault.
public struct IndexError: Error, CustomStringConvertible, Equatable {
  /// The message.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// How an index compares vectors.
public enum IndexMetric: String, Sendable, Codable, CaseIterable {
  /// Euclidean distance; results are distances, smallest first (faiss's `METRIC_L2`, whose
  /// squared distances are rooted for the results).
  case l2
  /// Inner product; results are similarities, largest first (`METRIC_INNER_PRODUCT`).
  case innerProduct = "inner-product"
  /// Cosine similarity: vectors and queries are L2-normalised, then compared by inner product.
  case cosine

  /// Whether larger scores are closer.
  public var isSimilarity: Bool { self != .l2 }
}

/// Search-time settings of approximate indexes; `nil` keeps the index's own.
public struct IndexSearchParameters: Sendable, Equatable, Codable {
  /// Inverted lists an IVF index visits per query (faiss's `nprobe`).
  public var nprobe: Int?
  /// The candidate list of an HNSW search (faiss's `efSearch`).
  public var efSearch: Int?

  /// Parameters; see the properties.
  public init(nprobe: Int? = nil, efSearch: Int? = nil) {
    self.nprobe = nprobe
    self.efSearch = efSearch
  }
}

/// The `k` nearest items of each query: ids and scores, `queries × k`, row-major, nearest first.
/// A row holds id `-1` and an infinite score (`+∞` for L2, `−∞` for similarities) where the index
/// returned fewer than `k` items.
public struct IndexSearchResult: Sendable, Equatable {
  /// Neighbours per query.
  public var k: Int
  /// The items' ids.
  public var ids: [Int64]
  /// Their distances (L2) or similarities.
  public var scores: [Float]

  /// A result of `k` per query.
  public init(k: Int, ids: [Int64], scores: [Float]) {
    self.k = k
    self.ids = ids
    self.scores = scores
  }

  /// The number of queries.
  public var queries: Int { k == 0 ? 0 : ids.count / k }

  /// Query `i`'s ids, nearest first.
  public func ids(ofQuery i: Int) -> ArraySlice<Int64> { ids[(i * k)..<((i + 1) * k)] }
}

/// A searchable set of vectors with ids, in memory: the library's exact blocked k-NN
/// (`ExactIndex`) or a faiss index (`FaissIndex`). Both take the same calls and the same errors,
/// and `IndexFolder` saves and loads either.
public protocol VectorIndex {
  /// The vectors' dimension.
  var dimension: Int { get }
  /// How vectors are compared.
  var metric: IndexMetric { get }
  /// The number of items.
  var count: Int { get }
  /// Whether the index can take vectors (an IVF index must be trained first).
  var isTrained: Bool { get }
  /// The items' ids, in storage order.
  var ids: [Int64] { get }
  /// Trains the index on representative vectors (IVF centroids, PQ codebooks); nothing for an
  /// index that needs no training.
  mutating func train(_ vectors: Matrix<Float>) throws
  /// Adds one vector per row with its id. An id the index already holds, or one given twice, is
  /// refused, and nothing is added.
  mutating func add(_ vectors: Matrix<Float>, ids: [Int64]) throws
  /// The `k` nearest items of each query (one per row).
  func search(_ queries: Matrix<Float>, k: Int, parameters: IndexSearchParameters) throws -> IndexSearchResult
  /// Removes the items with these ids; returns how many it held.
  mutating func remove(ids: [Int64]) throws -> Int
}

extension VectorIndex {
  /// The checks every backend makes before adding: the shape, finite values, distinct new ids.
  func checkAddition(_ vectors: Matrix<Float>, ids: [Int64]) throws {
    guard vectors.columns == dimension || vectors.rows == 0 else {
      throw IndexError("the vectors have dimension \(vectors.columns); the index holds dimension \(dimension)")
    }
    guard ids.count == vectors.rows else { throw IndexError("\(vectors.rows) vectors but \(ids.count) ids") }
    guard vectors.isFinite else { throw IndexError("the vectors contain NaN or infinite values") }
    var seen = Set(self.ids)
    for id in ids {
      guard id >= 0 else { throw IndexError("id \(id) is negative (-1 marks a missing neighbour)") }
      guard seen.insert(id).inserted else { throw IndexError("id \(id) is already in the index, or given twice") }
    }
  }

  /// The checks before a search: the queries' shape and values, and `k`.
  func checkSearch(_ queries: Matrix<Float>, k: Int, parameters: IndexSearchParameters) throws {
    guard queries.columns == dimension || queries.rows == 0 else {
      throw IndexError("the queries have dimension \(queries.columns); the index holds dimension \(dimension)")
    }
    guard k >= 1 else { throw IndexError("k \(k) must be at least 1") }
    guard k <= 1 << 20 else { throw IndexError("k \(k) must be at most 1,048,576") }
    guard queries.isFinite else { throw IndexError("the queries contain NaN or infinite values") }
    if let p = parameters.nprobe, p < 1 { throw IndexError("nprobe \(p) must be at least 1") }
    if let e = parameters.efSearch, e < 1 { throw IndexError("efSearch \(e) must be at least 1") }
  }
}

/// An index's kind as `dml index build --kind` names it: `flat` (our exact search), `faiss-flat`,
/// `ivf:nlist=4096`, `hnsw:m=32`, `ivfpq:nlist=1024,m=16,bits=8`, or any faiss index-factory
/// string (`"IVF256,SQ8"`).
public struct IndexKind: Sendable, Equatable, CustomStringConvertible {
  /// The faiss index-factory string, or `nil` for the library's exact index.
  public var factory: String?
  /// The kind as given.
  public var description: String

  /// Parses a kind; an unknown key or a value out of range is refused by name. Any other text is
  /// taken as a factory string, which faiss checks when the index is made.
  public init(parsing text: String) throws {
    description = text
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else { throw IndexError("empty index kind") }
    let parts = trimmed.split(separator: ":", maxSplits: 1).map(String.init)
    var values: [String: Int] = [:]
    if parts.count == 2, ["flat", "faiss-flat", "ivf", "hnsw", "ivfpq"].contains(parts[0]) {
      for pair in parts[1].split(separator: ",") {
        let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, let v = Int(kv[1]), v >= 1 else {
          throw IndexError("index kind \(text): '\(pair)' is not key=positive integer")
        }
        values[kv[0]] = v
      }
    }
    func take(_ known: [String: Int]) throws -> [String: Int] {
      for key in values.keys where known[key] == nil {
        throw IndexError("index kind \(text): unknown key '\(key)'; known: " + known.keys.sorted().joined(separator: ", "))
      }
      return known.merging(values) { _, given in given }
    }
    switch parts[0] {
    case "flat":
      _ = try take([:])
      factory = nil
    case "faiss-flat":
      _ = try take([:])
      factory = "Flat"
    case "ivf":
      let v = try take(["nlist": 1024])
      factory = "IVF\(v["nlist"]!),Flat"
    case "hnsw":
      let v = try take(["m": 32])
      factory = "HNSW\(v["m"]!)"
    case "ivfpq":
      let v = try take(["nlist": 1024, "m": 16, "bits": 8])
      guard v["bits"]! <= 16 else { throw IndexError("index kind \(text): bits=\(v["bits"]!) must be at most 16") }
      factory = "IVF\(v["nlist"]!),PQ\(v["m"]!)x\(v["bits"]!)"
    default:
      guard parts.count == 1 else { throw IndexError("index kind \(text): unknown kind '\(parts[0])'; known: flat, faiss-flat, ivf, hnsw, ivfpq, or a faiss factory string") }
      factory = trimmed
    }
  }

  /// An empty index of this kind. The `ivfpq:` shorthand skips faiss's polysemous training (a
  /// code reordering for Hamming filtering that plain searches do not use, and most of the
  /// training time: 21 s of 21 for 5,000 vectors); a factory string keeps faiss's defaults.
  public func make(dimension: Int, metric: IndexMetric) throws -> any VectorIndex {
    guard let factory else { return ExactIndex(dimension: dimension, metric: metric) }
    let index = try FaissIndex(factory: factory, dimension: dimension, metric: metric)
    if description.trimmingCharacters(in: .whitespaces).hasPrefix("ivfpq") { index.skipPolysemousTraining() }
    return index
  }
}
