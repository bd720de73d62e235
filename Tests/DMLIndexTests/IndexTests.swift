import DMLCore
import DMLIndex
import DMLTesting
import Foundation
import Testing

/// Clustered vectors: `n` rows of dimension `d` around `clusters` random centres.
func clustered(_ n: Int, d: Int = 16, clusters: Int = 20, seed: UInt64) -> Matrix<Float> {
  var rng = RandomSource(seed: seed)
  let centres = (0..<clusters).map { _ in (0..<d).map { _ in 3 * rng.normal(Float.self) } }
  var m = Matrix<Float>(rows: n, columns: d)
  for i in 0..<n {
    let c = rng.index(below: clusters)
    for j in 0..<d { m[i, j] = centres[c][j] + rng.normal(Float.self) }
  }
  return m
}

let base = clustered(3000, seed: 1)
let queries = clustered(200, seed: 2)
let baseIDs = (0..<Int64(3000)).map { 10_000 + 7 * $0 }

/// The backends the same cases run on.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
  case exact, faissFlat, ivf, hnsw, ivfpq
  var kind: String {
    switch self {
    case .exact: "flat"
    case .faissFlat: "faiss-flat"
    case .ivf: "ivf:nlist=32"
    case .hnsw: "hnsw:m=16"
    case .ivfpq: "ivfpq:nlist=16,m=8,bits=6"
    }
  }
  var testDescription: String { kind }

  func built(_ metric: IndexMetric = .l2, vectors: Matrix<Float> = base, ids: [Int64] = baseIDs) throws -> any VectorIndex {
    var index = try IndexKind(parsing: kind).make(dimension: vectors.columns, metric: metric)
    try index.train(vectors)
    try index.add(vectors, ids: ids)
    return index
  }
}

@Suite("Vector indexes: the exact and the faiss backend behind one protocol")
struct IndexTests {
  @Test("faiss's flat index equals the exact backend: the same ids and the same distances, for every metric", arguments: IndexMetric.allCases)
  func flatEqualsExact(metric: IndexMetric) throws {
    let exact = try Backend.exact.built(metric), flat = try Backend.faissFlat.built(metric)
    let a = try exact.search(queries, k: 10, parameters: .init()), b = try flat.search(queries, k: 10, parameters: .init())
    #expect(a.ids == b.ids)
    let worst = zip(a.scores, b.scores).map { abs($0 - $1) / max(1, abs($0)) }.max()!
    #expect(worst < 1e-4)
    // The nearest item of a stored vector is itself (L2 and cosine).
    if metric != .innerProduct {
      let own = try exact.search(base.rows([5, 17]), k: 1, parameters: .init())
      #expect(own.ids == [baseIDs[5], baseIDs[17]])
    }
  }

  @Test("every backend finds most exact neighbours, and with more effort finds them all or nearly", arguments: Backend.allCases)
  func recall(backend: Backend) throws {
    let exact = try Backend.exact.built().search(queries, k: 10, parameters: .init())
    let index = try backend.built()
    let effort = IndexSearchParameters(nprobe: 32, efSearch: 256)
    let r = IndexTuning.recall(try index.search(queries, k: 10, parameters: effort), exact: exact, k: 10)
    #expect(r >= (backend == .ivfpq ? 0.5 : 0.99), "recall \(r)")
    #expect(index.count == 3000 && index.dimension == 16 && index.isTrained)
  }

  @Test("save and load round-trip every backend: the same results, ids, labels and manifest", arguments: Backend.allCases)
  func roundTrip(backend: Backend) throws {
    let index = try backend.built(.cosine)
    let folder = ScratchSpace.path("index-\(backend.rawValue)")
    let labels = Dictionary(uniqueKeysWithValues: baseIDs.enumerated().map { ($1, $0 % 13) })
    let manifest = IndexManifest(
      backend: "", kind: backend.kind, factory: nil, metric: .cosine, dimension: 16, count: 0, model: "raw features", source: "test")
    try IndexFolder(path: folder, manifest: manifest, index: index, labels: labels).write(replace: false)
    let loaded = try IndexFolder.load(folder)
    #expect(loaded.manifest.count == 3000 && loaded.manifest.backend == (backend == .exact ? "exact" : "faiss"))
    #expect(loaded.labels == labels && loaded.index.ids == index.ids)
    let p = IndexSearchParameters(nprobe: 4, efSearch: 32)
    #expect(try loaded.index.search(queries, k: 5, parameters: p) == index.search(queries, k: 5, parameters: p))
    // A second write without replace is refused; with replace it swaps atomically.
    #expect { try IndexFolder(path: folder, manifest: manifest, index: index, labels: labels).write(replace: false) } throws: {
      "\($0)".contains("exists: choose another folder, or --force")
    }
    try IndexFolder(path: folder, manifest: manifest, index: index, labels: [:]).write(replace: true)
    #expect(try IndexFolder.load(folder).labels.isEmpty)
    let name = (folder as NSString).lastPathComponent
    #expect(try FileManager.default.contentsOfDirectory(atPath: (folder as NSString).deletingLastPathComponent).filter { $0.hasPrefix(name + ".") }.isEmpty)
  }

  @Test("incremental add equals building at once; removal works where the index supports it", arguments: Backend.allCases)
  func incremental(backend: Backend) throws {
    var index = try IndexKind(parsing: backend.kind).make(dimension: 16, metric: .l2)
    try index.train(base)
    try index.add(base.rows(Array(0..<1500)), ids: Array(baseIDs[0..<1500]))
    try index.add(base.rows(Array(1500..<3000)), ids: Array(baseIDs[1500...]))
    let whole = try backend.built()
    let p = IndexSearchParameters(nprobe: 8, efSearch: 64)
    if backend == .hnsw {
      // faiss builds HNSW graphs on several threads, so two builds differ: both find the exact
      // neighbours.
      let exact = try Backend.exact.built().search(queries, k: 10, parameters: .init())
      let deep = IndexSearchParameters(efSearch: 256)
      #expect(IndexTuning.recall(try index.search(queries, k: 10, parameters: deep), exact: exact, k: 10) >= 0.99)
      #expect(IndexTuning.recall(try whole.search(queries, k: 10, parameters: deep), exact: exact, k: 10) >= 0.99)
      #expect { _ = try index.remove(ids: [baseIDs[0]]) } throws: { "\($0)".contains("remove_ids not implemented for this type of index") }
    } else {
      #expect(try index.search(queries, k: 10, parameters: p) == whole.search(queries, k: 10, parameters: p))
      let removed = try index.remove(ids: [baseIDs[0], baseIDs[1], 42])
      #expect(removed == 2 && index.count == 2998 && !index.ids.contains(baseIDs[0]))
      let again = try index.search(base.rows([0]), k: 3, parameters: p)
      #expect(!again.ids.contains(baseIDs[0]))
    }
  }

  @Test("errors are named and never crash: dimension, ids, values, k, untrained IVF, factory strings, damaged files")
  func errors() throws {
    func message(_ body: () throws -> Void) -> String {
      do {
        try body()
        return "no error"
      } catch { return "\(error)" }
    }
    for backend in [Backend.exact, .faissFlat] {
      var index = try backend.built()
      #expect(message { _ = try index.search(Matrix(rows: 2, columns: 8), k: 3, parameters: .init()) }.contains("the queries have dimension 8; the index holds dimension 16"))
      #expect(message { try index.add(Matrix(rows: 1, columns: 9), ids: [1]) }.contains("the vectors have dimension 9"))
      #expect(message { try index.add(base.rows([0]), ids: [baseIDs[3]]) }.contains("id \(baseIDs[3]) is already in the index"))
      #expect(message { try index.add(base.rows([0, 1]), ids: [5, 5]) }.contains("id 5 is already in the index, or given twice"))
      #expect(message { try index.add(base.rows([0]), ids: [-1]) }.contains("id -1 is negative"))
      var bad = base.rows([0])
      bad[0, 3] = .nan
      #expect(message { try index.add(bad, ids: [1]) }.contains("NaN or infinite"))
      #expect(message { _ = try index.search(queries, k: 0, parameters: .init()) }.contains("k 0 must be at least 1"))
      #expect(index.count == 3000)
      // More neighbours than items: the rest are -1 with an infinite distance.
      var small = try IndexKind(parsing: backend.kind).make(dimension: 16, metric: .l2)
      try small.add(base.rows([0, 1]), ids: [1, 2])
      let r = try small.search(base.rows([0]), k: 4, parameters: .init())
      #expect(r.ids == [1, 2, -1, -1] && r.scores[2] == .infinity)
    }
    var ivf = try IndexKind(parsing: "ivf:nlist=8").make(dimension: 16, metric: .l2)
    #expect(!ivf.isTrained)
    #expect(message { _ = try ivf.search(queries, k: 3, parameters: .init()) }.contains("not trained"))
    #expect(message { try ivf.add(base, ids: baseIDs) }.contains("not trained"))
    #expect(message { _ = try IndexKind(parsing: "Bogus12").make(dimension: 16, metric: .l2) } == "faiss, factory string \"Bogus12\": could not parse index string Bogus12")
    #expect(message { _ = try IndexKind(parsing: "ivf:nlists=8") }.contains("unknown key 'nlists'; known: nlist"))
    #expect(message { _ = try IndexKind(parsing: "ivf:nlist=0") }.contains("'nlist=0' is not key=positive integer"))
    #expect(message { _ = try IndexKind(parsing: "hnsw:m=16").make(dimension: 0, metric: .l2) }.contains("dimension 0 must be at least 1"))

    // Damaged files: truncated, garbage, missing, a manifest of another format.
    let folder = ScratchSpace.path("damaged")
    let manifest = IndexManifest(backend: "", kind: "ivf:nlist=32", factory: nil, metric: .l2, dimension: 16, count: 0, model: "m", source: "s")
    try IndexFolder(path: folder, manifest: manifest, index: try Backend.ivf.built(), labels: [:]).write(replace: false)
    let file = folder + "/index.faiss"
    let data = try Data(contentsOf: URL(fileURLWithPath: file))
    try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: file))
    #expect(message { _ = try IndexFolder.load(folder) }.hasPrefix("faiss, \(file): "))
    try Data("not an index".utf8).write(to: URL(fileURLWithPath: file))
    #expect(message { _ = try IndexFolder.load(folder) }.hasPrefix("faiss, \(file): "))
    try FileManager.default.removeItem(atPath: file)
    #expect(message { _ = try IndexFolder.load(folder) }.hasPrefix("faiss, \(file): "))
    try Data(#"{"format": "other"}"#.utf8).write(to: URL(fileURLWithPath: folder + "/manifest.json"))
    #expect(message { _ = try IndexFolder.load(folder) }.contains("manifest.json: not a manifest this version reads"))
    #expect(message { _ = try IndexFolder.load(ScratchSpace.path("nothing-here")) }.contains("not an index folder (no manifest.json)"))
  }

  @Test("a search's nprobe or efSearch applies to that search only; a trailing slash names the same folder")
  func parametersDoNotStick() throws {
    for backend in [Backend.ivf, .hnsw] {
      let index = try backend.built()
      let plain = try index.search(queries, k: 10, parameters: .init())
      _ = try index.search(queries, k: 10, parameters: IndexSearchParameters(nprobe: 32, efSearch: 512))
      #expect(try index.search(queries, k: 10, parameters: .init()) == plain)
    }
    let folder = ScratchSpace.path("slash-index")
    let manifest = IndexManifest(backend: "", kind: "flat", factory: nil, metric: .l2, dimension: 16, count: 0, model: "m", source: "s")
    try IndexFolder(path: folder + "/", manifest: manifest, index: try Backend.exact.built(), labels: [:]).write(replace: false)
    var loaded = try IndexFolder.load(folder + "/")
    try loaded.index.add(base.rows([0]), ids: [1])
    try loaded.write(replace: true)
    #expect(try IndexFolder.load(folder).index.count == 3001)
  }

  @Test("tuning finds the smallest nprobe or efSearch that reaches the target recall")
  func tuning() throws {
    let exact = try Backend.exact.built().search(queries, k: 10, parameters: .init())
    for backend in [Backend.ivf, .hnsw] {
      let t = try IndexTuning.tune(try backend.built(), queries: queries, exact: exact, k: 10, target: 0.95)
      let chosen = try #require(t.chosen)
      #expect(chosen.recall >= 0.95 && t.trials.dropLast().allSatisfy { $0.recall < 0.95 })
      #expect(t.trials.allSatisfy { $0.queriesPerSecond > 0 })
    }
    #expect(throws: IndexError.self) { _ = try IndexTuning.tune(try Backend.faissFlat.built(), queries: queries, exact: exact, k: 10, target: 0.9) }
  }
}
