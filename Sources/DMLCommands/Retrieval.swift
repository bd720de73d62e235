import ArgumentParser
import Foundation
import MetricLearning

/// Embeddings of a data split: from a checkpoint's network, or the raw (L2-normalised) features.
struct EmbeddingSource: ParsableArguments {
  @Option(help: "A checkpoint folder; without it the raw features, L2-normalised, are used.") var checkpoint: String?

  func embed(_ d: Dataset) throws -> Matrix<Float> {
    guard let checkpoint else { return d.features.rowsNormalized() }
    var options = CheckpointOptions()
    options.checkpoint = checkpoint
    return try options.embed(d.features, imageShape: d.imageShape)
  }
}

/// A saved search index: embeddings, labels and ids, in safetensors.
public enum SearchIndex {
  public static func save(_ e: Matrix<Float>, labels: [Int], ids: [Int], to path: String) throws {
    let data = Checkpoint.safetensors([
      (name: "embeddings", shape: [e.rows, e.columns], values: e.elements),
      (name: "labels", shape: [labels.count], values: labels.map(Float.init)),
      (name: "ids", shape: [ids.count], values: ids.map(Float.init)),
    ], metadata: ["format": "swift-metric-learning index"])
    try atomicWrite(data, to: path)
  }

  public static func load(_ path: String) throws -> (Matrix<Float>, [Int], [Int]) {
    let t = try Checkpoint.readSafetensors(path)
    guard let e = t["embeddings"], e.shape.count == 2, let l = t["labels"], let i = t["ids"],
      l.values.count == e.shape[0], i.values.count == e.shape[0]
    else { throw ValidationError("--index \(path): not a search index (embeddings, labels, ids)") }
    // Labels and ids are whole numbers stored as F32; anything else is a damaged or foreign file.
    for v in l.values + i.values where !(v.isFinite && v == v.rounded() && abs(v) <= 16_777_216) {
      throw ValidationError("--index \(path): label or id \(v) is not a whole number")
    }
    guard e.values.allSatisfy(\.isFinite) else { throw ValidationError("--index \(path): embeddings contain NaN or infinite values") }
    return (Matrix(rows: e.shape[0], columns: e.shape[1], elements: e.values), l.values.map { Int($0) }, i.values.map { Int($0) })
  }
}

struct Search: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Find the k nearest references of each query (exact search), as CSV: query,rank,id,label,distance.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "References (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "Queries: a CSV (label, features) or NPY file (default: the references themselves, self excluded).") var queries: String?
  @Option(help: "Labels for an NPY --queries file.") var queryLabels: String?
  @Option(help: "Neighbours per query.") var k = 10
  @Option(help: "Save the reference embeddings as an index file (safetensors).") var saveIndex: String?
  @Option(help: "Search this saved index instead of embedding --data.") var index: String?
  @Option(help: "Print at most this many queries.") var limit = 20

  func validate() throws {
    guard k >= 1 else { throw ValidationError("--k \(k) must be at least 1") }
  }

  func run() throws {
    var refs: Matrix<Float>, refLabels: [Int], ids: [Int]
    if let index {
      (refs, refLabels, ids) = try SearchIndex.load(index)
    } else {
      let (_, _, test) = try dataOptions.splits()
      refs = try source.embed(test)
      refLabels = test.labels
      ids = Array(0..<test.labels.count)
    }
    if let saveIndex { try SearchIndex.save(refs, labels: refLabels, ids: ids, to: saveIndex) }
    var q = refs, qLabels = refLabels
    if let queries {
      let d = try dataOptions.load(queries, labels: queryLabels, train: false)
      q = try source.embed(d)
      qLabels = d.labels
    }
    let knn = try nearestNeighbors(queries: q, references: refs, k: k, excludeSelf: queries == nil)
    print("query,rank,id,label,distance")
    for i in 0..<Swift.min(q.rows, limit) {
      for (rank, j) in knn.row(i).enumerated() {
        print("\(i),\(rank + 1),\(ids[Int(j)]),\(refLabels[Int(j)]),\(knn.scores[i, rank])")
      }
    }
    let m = metricsFromNeighbors(
      knn.indices, k: k, metricK: k, queryLabels: qLabels, referenceLabels: refLabels,
      counts: Dictionary(refLabels.map { ($0, 1) }, uniquingKeysWith: +), sameSet: queries == nil, recallAt: [1, k])
    warn("\(q.rows) queries, \(refs.rows) references: Recall@1 \(m.recallAt[1]!), Recall@\(k) \(m.recallAt[k]!)")
  }
}

struct Verify: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Verification on labelled pairs: calibrate a threshold on one half of the pairs, report on the other.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "Data (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "A CSV of pairs i,j (row indices of the test split); default: sampled pairs.") var pairs: String?
  @Option(help: "Pairs sampled when no --pairs file is given.") var samplePairs = 200_000
  @Option(help: "Threshold rule: f1, or precision=P, or far=F.") var target = "f1"
  @Option(help: "Seed of the sampling.") var seed: UInt64 = 0

  func run() throws {
    let (_, _, test) = try dataOptions.splits()
    let e = try source.embed(test)
    var scores: [Double] = [], matches: [Bool] = []
    if let pairs {
      let text = String(decoding: try readFileBytes(pairs), as: UTF8.self)
      var a = Matrix<Float>(rows: 1, columns: e.columns), b = a, s = Matrix<Float>()
      var w = DistanceWorkspace<Float>()
      for (n, line) in text.split(separator: "\n").enumerated() {
        let cells = line.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard cells.count >= 2, let i = cells[0], let j = cells[1], (0..<e.rows).contains(i), (0..<e.rows).contains(j) else {
          if n == 0 { continue }  // a header
          throw ValidationError("--pairs \(pairs):\(n + 1): expected two row indices in 0..<\(e.rows)")
        }
        for k in 0..<e.columns { a[0, k] = e[i, k]; b[0, k] = e[j, k] }
        Distance.cosine.scores(a, b, into: &s, workspace: &w)
        scores.append(Double(s[0, 0]))
        matches.append(test.labels[i] == test.labels[j])
      }
    } else {
      (scores, matches) = try Verification.pairs(e, labels: test.labels, distance: .cosine, maxPairs: samplePairs, seed: seed)
    }
    let rule: Verification.Target
    if target == "f1" { rule = .bestF1 } else if target.hasPrefix("precision="), let p = Double(target.dropFirst(10)) {
      rule = .precision(p)
    } else if target.hasPrefix("far="), let f = Double(target.dropFirst(4)) { rule = .falseAcceptRate(f) } else {
      throw ValidationError("--target \(target): expected f1, precision=P or far=F")
    }
    let half = scores.count / 2
    guard half > 0 else { throw ValidationError("too few pairs to calibrate and test") }
    let calibration = try Verification.calibrate(
      scores: Array(scores[..<half]), matches: Array(matches[..<half]), higherIsMatch: true, target: rule)
    let report = try Verification.evaluate(scores: Array(scores[half...]), matches: Array(matches[half...]), higherIsMatch: true)
    let applied = Verification.apply(calibration, scores: Array(scores[half...]), matches: Array(matches[half...]))
    print(report)
    print(String(format: "threshold %.4f (cosine, calibrated for %@ on %d pairs): precision %.4f  recall %.4f  F1 %.4f  accuracy %.4f",
      calibration.threshold, target, half, applied.precision, applied.recall, applied.f1, applied.accuracy))
  }
}

struct Dedup: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Group near-duplicates (cosine similarity at least --threshold) and write the groups as CSV: group,index.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "Data (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "Cosine similarity at or above which two items are duplicates.") var threshold = 0.98
  @Option(help: "Output CSV (default: standard output).") var output: String?

  func validate() throws {
    guard threshold > -1 && threshold <= 1 else { throw ValidationError("--threshold \(threshold) must lie in (-1, 1]") }
  }

  func run() throws {
    let (_, _, test) = try dataOptions.splits()
    let groups = try nearDuplicateGroups(try source.embed(test), threshold: threshold, distance: .cosine)
    var text = "group,index\n"
    for (g, members) in groups.enumerated() { for i in members { text += "\(g),\(i)\n" } }
    if let output { try atomicWrite(Data(text.utf8), to: output) } else { print(text, terminator: "") }
    warn("\(groups.count) groups of near-duplicates among \(test.labels.count) items")
  }
}

struct FewShot: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fewshot", abstract: "N-way K-shot episodes with class prototypes on the test classes.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "Data (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "Classes per episode.") var ways = 5
  @Option(help: "Support examples per class, comma-separated.") var shots = "1,5"
  @Option(help: "Query examples per class.") var queries = 15
  @Option(help: "Episodes.") var episodes = 1000
  @Option(help: "Seed of the episodes.") var seed: UInt64 = 0

  func run() throws {
    let shotList = try shots.split(separator: ",").map { s -> Int in
      guard let v = Int(s), v >= 1 else { throw ValidationError("--shots \(shots): '\(s)' is not a positive integer") }
      return v
    }
    let (_, _, test) = try dataOptions.splits()
    let e = try source.embed(test)
    for k in shotList {
      print(try fewShotEvaluation(e, labels: test.labels, ways: ways, shots: k, queriesPerClass: queries, episodes: episodes, seed: seed))
    }
  }
}
