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

/// A saved search index: embeddings (F32), labels and ids (I64, exact at any size), in
/// safetensors, with the model that made the embeddings in its metadata.
public enum SearchIndex {
  /// What made an index's embeddings: a checkpoint's parameters, or the raw features.
  public static func model(of checkpoint: String?) throws -> String {
    guard let checkpoint else { return "raw features" }
    let (dir, _) = try Checkpoint.verifiedLatest(in: checkpoint)
    guard let data = FileManager.default.contents(atPath: "\(dir)/parameters.safetensors") else {
      throw ValidationError("--checkpoint \(checkpoint): no parameters.safetensors in \(dir)")
    }
    return "parameters crc32 " + String(format: "%08x", CRC32.checksum(data))
  }

  /// Writes embeddings `e`, one per row, with each row's label and id to `path`, atomically;
  /// `model` (from `model(of:)`) and `source` (the checkpoint's folder) go into the metadata.
  public static func save(
    _ e: Matrix<Float>, labels: [Int], ids: [Int], to path: String, model: String = "raw features", source: String = ""
  ) throws {
    let data = Checkpoint.safetensors(
      [(name: "embeddings", shape: [e.rows, e.columns], values: e.elements)],
      integers: [(name: "labels", shape: [labels.count], values: labels), (name: "ids", shape: [ids.count], values: ids)],
      metadata: ["format": "swift-metric-learning index", "model": model, "checkpoint": source])
    try atomicWrite(data, to: path)
  }

  /// Reads an index written by ``save(_:labels:ids:to:model:source:)``: the embeddings, labels and
  /// ids. An index of the first format (labels and ids as F32) is read too.
  ///
  /// - Throws: `ValidationError` if the file is not a search index, a label or id is not a whole
  ///   number, or an embedding is NaN or infinite.
  public static func load(_ path: String) throws -> (Matrix<Float>, [Int], [Int]) {
    let (e, labels, ids, _) = try loadWithModel(path)
    return (e, labels, ids)
  }

  /// `load`, with the model recorded in the index (`nil` for an index of the first format).
  public static func loadWithModel(_ path: String) throws -> (Matrix<Float>, [Int], [Int], model: String?) {
    let t = try Checkpoint.readSafetensors(path)
    let extras = try Checkpoint.readSafetensorsExtras(path)
    guard let e = t["embeddings"], e.shape.count == 2 else { throw ValidationError("--index \(path): not a search index (embeddings, labels, ids)") }
    var labels: [Int], ids: [Int]
    if let l = extras.integers["labels"], let i = extras.integers["ids"] {
      (labels, ids) = (l.values, i.values)
    } else if let l = t["labels"], let i = t["ids"] {
      // The first format: whole numbers stored as F32; anything else is a damaged or foreign file.
      for v in l.values + i.values where !(v.isFinite && v == v.rounded() && abs(v) <= 16_777_216) {
        throw ValidationError("--index \(path): label or id \(v) is not a whole number")
      }
      (labels, ids) = (l.values.map { Int($0) }, i.values.map { Int($0) })
    } else {
      throw ValidationError("--index \(path): not a search index (embeddings, labels, ids)")
    }
    guard labels.count == e.shape[0], ids.count == e.shape[0] else {
      throw ValidationError("--index \(path): \(e.shape[0]) embeddings but \(labels.count) labels and \(ids.count) ids")
    }
    guard e.values.allSatisfy(\.isFinite) else { throw ValidationError("--index \(path): embeddings contain NaN or infinite values") }
    return (Matrix(rows: e.shape[0], columns: e.shape[1], elements: e.values), labels, ids, extras.metadata["model"])
  }
}

struct Search: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Find the k nearest references of each query (exact search), as CSV: query,rank,id,label,distance.",
    discussion: "An id is a reference's row in its data file (0 for the first data row); a query is its row in --queries, or in --data.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "References (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "Queries: a CSV (label, features) or NPY file, a JPEG or PNG image, folder:PATH or list:FILE.csv (default: the references themselves, self excluded).") var queries: String?
  @Option(help: "Also write the neighbours as CSV to this file.") var output: String?
  @Option(help: "Labels for an NPY --queries file.") var queryLabels: String?
  @Option(help: "Neighbours per query.") var k = 10
  @Option(help: "Save the reference embeddings as an index file (safetensors).") var saveIndex: String?
  @Option(help: "Search this saved index instead of embedding --data: an index folder (`dml index build`) or a --save-index file.")
  var index: String?
  @OptionGroup(title: "Approximate search (an index folder)") var effort: SearchEffort
  @Option(help: "Print at most this many queries.") var limit = 20

  func validate() throws {
    guard k >= 1 else { throw ValidationError("--k \(k) must be at least 1") }
    guard limit >= 0 else { throw ValidationError("--limit \(limit) must be ≥ 0") }
    try DataOptions.checkLabels(queryLabels, flag: "--query-labels", for: queries, dataFlag: "--queries")
  }

  func run() throws {
    var refs: Matrix<Float>, refLabels: [Int], ids: [Int]
    var refPaths: [String]?, refClassNames: [String]?
    let model = try SearchIndex.model(of: source.checkpoint)
    if let index, IndexFolder.exists(at: index) { return try searchFolder(index, model: model) }
    if let index {
      let saved: String?
      (refs, refLabels, ids, saved) = try SearchIndex.loadWithModel(index)
      // Queries must be embedded by the model that embedded the references.
      if let saved, saved != model {
        throw ValidationError(
          "--index \(index) holds embeddings of \(saved), and the queries would be embedded by \(model)"
            + (source.checkpoint.map { " (--checkpoint \($0))" } ?? "") + ": search it with the checkpoint that built it")
      }
    } else {
      let (_, _, test) = try dataOptions.resolved(forCheckpoint: source.checkpoint).splits()
      refs = try source.embed(test)
      refLabels = test.labels
      ids = test.ids  // rows of the user's file
      refPaths = test.paths
      refClassNames = test.classNames
    }
    if let saveIndex {
      try SearchIndex.save(refs, labels: refLabels, ids: ids, to: saveIndex, model: model, source: source.checkpoint ?? "")
    }
    var q = refs, qLabels = refLabels
    var queryNames = refPaths
    if let queries {
      let options = dataOptions.resolved(forCheckpoint: source.checkpoint)
      var d = ImageFile.isImagePath(queries) && !DataOptions.isImages(queries)
        ? try options.loadImage(queries) : try options.decoded(try options.load(queries, labels: queryLabels, train: false))
      // Another image folder numbers its own classes: match them to the references' by name.
      if let refClassNames { d = d.relabeled(toClassNames: refClassNames) }
      q = try source.embed(d)
      qLabels = d.labels
      queryNames = d.paths
    }
    let available = refs.rows - (queries == nil ? 1 : 0)
    guard k <= available else {
      throw ValidationError("--k \(k) exceeds the \(available) references\(queries == nil ? " (each query's own row excluded)" : ""); pass a smaller --k")
    }
    let knn = try nearestNeighbors(queries: q, references: refs, k: k, excludeSelf: queries == nil)
    // With image files, each row names the query's and the neighbour's files.
    var lines = [refPaths == nil ? "query,rank,id,label,distance" : "query,rank,id,label,distance,path"]
    for i in 0..<q.rows {
      for (rank, j) in knn.row(i).enumerated() {
        let query = queryNames.map { CSV.field($0[i]) } ?? "\(i)"
        lines.append("\(query),\(rank + 1),\(ids[Int(j)]),\(refLabels[Int(j)]),\(knn.scores[i, rank])" + (refPaths.map { "," + CSV.field($0[Int(j)]) } ?? ""))
      }
    }
    for line in lines.prefix(1 + Swift.min(q.rows, limit) * k) { print(line) }
    if let output { try atomicWrite(Data((lines.joined(separator: "\n") + "\n").utf8), to: output) }
    let m = metricsFromNeighbors(
      knn.indices, k: k, metricK: k, queryLabels: qLabels, referenceLabels: refLabels,
      counts: Dictionary(refLabels.map { ($0, 1) }, uniquingKeysWith: +), sameSet: queries == nil, recallAt: k == 1 ? [1] : [1, k])
    // A query image has no label to score.
    if queries.map({ ImageFile.isImagePath($0) && !DataOptions.isImages($0) }) != true {
      warn("\(q.rows) queries, \(refs.rows) references: Recall@1 \(m.recallAt[1]!)" + (k == 1 ? "" : ", Recall@\(k) \(m.recallAt[k]!)"))
    }
  }

  /// Searches an index folder: the queries (--queries, else the test split of --data) embedded
  /// by the model that made the index's vectors.
  func searchFolder(_ path: String, model: String) throws {
    guard saveIndex == nil else { throw ValidationError("--save-index: an index folder is already saved; use `dml index add` to grow it") }
    let folder = try indexError { try IndexFolder.load(path) }
    guard folder.manifest.model == model else {
      throw ValidationError(
        "--index \(path) holds embeddings of \(folder.manifest.model), and the queries would be embedded by \(model)"
          + (source.checkpoint.map { " (--checkpoint \($0))" } ?? "") + ": search it with the checkpoint that built it")
    }
    let options = dataOptions.resolved(forCheckpoint: source.checkpoint)
    let d = try queries.map {
      ImageFile.isImagePath($0) && !DataOptions.isImages($0)
        ? try options.loadImage($0) : try options.decoded(try options.load($0, labels: queryLabels, train: false))
    }
      ?? dataOptions.resolved(forCheckpoint: source.checkpoint).splits().test
    let q = try source.embed(d)
    let result = try indexError { try folder.index.search(q, k: k, parameters: effort.parameters(folder.manifest.defaultParameters)) }
    folder.printResult(result, queries: Swift.min(q.rows, limit))
    if !folder.labels.isEmpty {
      var hits1 = 0, hitsK = 0
      for i in 0..<q.rows {
        let labels = result.ids(ofQuery: i).map { folder.labels[$0] }
        if labels.first == d.labels[i] { hits1 += 1 }
        if labels.contains(d.labels[i]) { hitsK += 1 }
      }
      warn("\(q.rows) queries, \(folder.index.count) indexed items: Recall@1 \(Double(hits1) / Double(max(1, q.rows))), Recall@\(k) \(Double(hitsK) / Double(max(1, q.rows)))")
    }
  }
}

struct Verify: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Verification on labelled pairs: calibrate a threshold on one half of the pairs, report on the other.")

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "Data (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "A CSV of pairs i,j: rows of the data file (0 for the first data row) in the test classes; default: sampled pairs.")
  var pairs: String?
  @Option(help: "Pairs sampled when no --pairs file is given.") var samplePairs = 200_000
  @Option(help: "Threshold rule: f1, or precision=P, or far=F.") var target = "f1"
  @Option(help: "Seed of the sampling.") var seed: UInt64 = 0

  func validate() throws {
    guard samplePairs >= 2 else { throw ValidationError("--sample-pairs \(samplePairs) must be at least 2 (one to calibrate, one to test)") }
    _ = try rule()
  }

  /// The threshold rule `--target` names, its value checked: a precision in (0, 1], a false
  /// accept rate in [0, 1].
  func rule() throws -> Verification.Target {
    if target == "f1" { return .bestF1 }
    if target.hasPrefix("precision="), let p = Double(target.dropFirst(10)) {
      guard p > 0 && p <= 1 else { throw ValidationError("--target \(target): the precision must lie in (0, 1]") }
      return .precision(p)
    }
    if target.hasPrefix("far="), let f = Double(target.dropFirst(4)) {
      guard f >= 0 && f <= 1 else { throw ValidationError("--target \(target): the false accept rate must lie in [0, 1]") }
      return .falseAcceptRate(f)
    }
    throw ValidationError("--target \(target): expected f1, precision=P or far=F")
  }

  func run() throws {
    let rule = try rule()
    let (_, _, test) = try dataOptions.resolved(forCheckpoint: source.checkpoint).splits()
    guard test.labelSets == nil else {
      throw ValidationError("dml verify matches pairs by one label per row; the test rows are multi-label (labels joined by |)")
    }
    let e = try source.embed(test)
    var scores: [Double] = [], matches: [Bool] = []
    if let pairs {
      var a = Matrix<Float>(rows: 1, columns: e.columns), b = a, s = Matrix<Float>()
      var w = DistanceWorkspace<Float>()
      let position = Dictionary(test.ids.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
      for (n, line) in textLines(try readFileBytes(pairs)).enumerated() where !line.allSatisfy({ $0 == " " }) {
        let cells = line.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard cells.count >= 2, let ri = cells[0], let rj = cells[1] else {
          if n == 0 { continue }  // a header
          throw ValidationError("--pairs \(pairs):\(n + 1): expected two row numbers i,j")
        }
        guard let i = position[ri], let j = position[rj] else {
          throw ValidationError(
            "--pairs \(pairs):\(n + 1): row \(position[ri] == nil ? ri : rj) of the data is not among the \(e.rows) test rows (their classes: --test-classes)")
        }
        for k in 0..<e.columns { a[0, k] = e[i, k]; b[0, k] = e[j, k] }
        Distance.cosine.scores(a, b, into: &s, workspace: &w)
        scores.append(Double(s[0, 0]))
        matches.append(test.labels[i] == test.labels[j])
      }
    } else {
      (scores, matches) = try Verification.pairs(e, labels: test.labels, distance: .cosine, maxPairs: samplePairs, seed: seed)
    }
    let half = scores.count / 2
    guard half > 0 else { throw ValidationError("too few pairs to calibrate and test") }
    // The calibration half is drawn at random (seeded), so that a pairs file sorted by match (as
    // LFW ships it) calibrates on both kinds.
    var rng = RandomSource(seed: seed &+ 0xCA1B)
    let order = rng.permutation(scores.count)
    let (calibrationPairs, testPairs) = (Array(order[..<half]), Array(order[half...]))
    let calibration = try Verification.calibrate(
      scores: calibrationPairs.map { scores[$0] }, matches: calibrationPairs.map { matches[$0] }, higherIsMatch: true, target: rule)
    let testScores = testPairs.map { scores[$0] }, testMatches = testPairs.map { matches[$0] }
    let report = try Verification.evaluate(scores: testScores, matches: testMatches, higherIsMatch: true)
    let applied = Verification.apply(calibration, scores: testScores, matches: testMatches)
    print(report)
    print(String(format: "threshold %.4f (cosine, calibrated for %@ on %d pairs): precision %.4f  recall %.4f  F1 %.4f  accuracy %.4f",
      calibration.threshold, target, half, applied.precision, applied.recall, applied.f1, applied.accuracy))
  }
}

struct Dedup: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Group near-duplicates and write the groups as CSV: group,index.",
    discussion: """
      Embeddings (a --checkpoint's, or the L2-normalised inputs) are linked at cosine similarity
      --threshold or above. With --shift N, images are compared pixel by pixel under the best
      shift of up to N pixels (noisy and shifted copies), linked within --max-distance, or within
      the distance that --calibrate finds best on copies planted in the training images.
      --plant K adds a noisy and a shifted copy of K test images and reports precision and recall;
      on image files (folder: or list: data), with or without --shift, it adds four edited copies
      of K files instead (and --calibrate plants the same): saved again at JPEG quality 50, scaled
      to 75%, cropped by 5%, brightened by 20%; --noise is then unused.
      Example: dml dedup --test-classes 0-9 --shift 2 --calibrate --plant 500
      Example: dml dedup --data folder:shop --test-classes 5-9 --plant 100 --threshold 0.99
      """)

  @OptionGroup var source: EmbeddingSource
  @OptionGroup(title: "Data (the --test-classes of --data)") var dataOptions: DataOptions
  @Option(help: "Without --shift: the cosine similarity at or above which two embeddings are duplicates.") var threshold = 0.98
  @Option(help: "Compare images under shifts of up to this many pixels (0: compare embeddings).") var shift = 0
  @Option(help: "With --shift: the shift-tolerant pixel distance at or below which two images are duplicates.") var maxDistance: Double?
  @Flag(help: "Choose the threshold by the best F1 on copies planted in the training images: --max-distance with --shift, else --threshold (image files: the edited copies of --plant).") var calibrate = false
  @Option(help: "Plant copies of this many test images (appended: their ids are planted-0, planted-1, …), and report precision and recall: with --shift a noisy and a shifted copy; on image files without --shift, four edited files (JPEG quality 50, 75% size, 5% crop, 20% brighter).") var plant = 0
  @Option(help: "Standard deviation of the planted noise, as a fraction of the pixel range.") var noise = 0.05
  @Option(help: "Seed of the planted copies.") var seed: UInt64 = 1
  @Option(help: "Output CSV (default: standard output).") var output: String?

  func validate() throws {
    guard threshold > -1 && threshold <= 1 else { throw ValidationError("--threshold \(threshold) must lie in (-1, 1]") }
    guard (0...8).contains(shift) else { throw ValidationError("--shift \(shift) must lie in 0...8") }
    guard plant >= 0 else { throw ValidationError("--plant \(plant) must be ≥ 0") }
    guard noise >= 0 && noise <= 1 else { throw ValidationError("--noise \(noise) must lie in [0, 1]") }
    if let maxDistance, !(maxDistance >= 0 && maxDistance.isFinite) { throw ValidationError("--max-distance \(maxDistance) must be a finite distance ≥ 0") }
    if shift > 0 {
      guard (maxDistance != nil) != calibrate else { throw ValidationError("--shift needs exactly one of --max-distance D or --calibrate") }
      guard source.checkpoint == nil else { throw ValidationError("--shift compares the input images; it cannot be combined with --checkpoint") }
    } else if maxDistance != nil {
      throw ValidationError("--max-distance needs --shift N (image comparison)")
    }
  }

  func run() throws {
    let options = dataOptions.resolved(forCheckpoint: source.checkpoint)
    // For images, `train` is an index: only the sample copies are planted in is decoded.
    let split = try options.splitsAndClasses()
    var train = split.train
    let test = split.test
    if split.classes.sameRows {
      // Calibration never plants copies in the test classes' rows.
      let seen = split.classes.seen.sorted()
      train = train.restricted(to: Set(seen.indices.filter { !split.classes.test.contains(seen[$0]) }))
    }
    var items = test.features
    var planted: Int?, plantedSource: [Int]?, plantedNames: [String]?
    var groups: [[Int]]
    if shift > 0 {
      guard let shape = test.imageShape else { throw ValidationError("--shift needs image data (such as fashion-mnist)") }
      let finder = ImageDuplicateFinder(height: shape.height, width: shape.width, channels: shape.channels, maxShift: shift)
      var distance = maxDistance ?? 0
      if calibrate {
        // Copies planted in (a seeded sample of) the training images, never in the test split.
        guard train.labels.count >= 8 else { throw ValidationError("--calibrate needs training images outside the test classes to plant copies in; --train-classes selects \(train.labels.count)") }
        let sample = train.labels.count > 10_000 ? Array(Array(0..<train.labels.count).shuffled(seed: seed &+ 0xCA1).prefix(10_000)).sorted() : Array(0..<train.labels.count)
        let base = try options.decoded(train.subset(sample))
        let originals = Swift.max(1, Swift.min(plant > 0 ? plant : 500, base.features.rows / 4))
        let calibration: (images: Matrix<Float>, source: [Int])
        if let paths = base.paths {
          // Image files: the same edits as --plant's.
          let copies = try Self.editedCopies(of: paths, count: originals, seed: seed &+ 0xCA1, options: options, shape: shape)
          calibration = (base.features.appendingRows(copies.rows), Array(0..<base.features.rows) + copies.originals)
        } else {
          calibration = try PlantedDuplicates.plant(
            base.features, height: shape.height, width: shape.width, channels: shape.channels, originals: originals, noise: noise, maxShift: shift,
            seed: seed &+ 0xCA1)
        }
        let c = PlantedDuplicates.calibrate(try finder.candidatePairs(calibration.images), source: calibration.source)
        distance = c.threshold
        warn(String(format: "calibrated on %d training images with %d planted pairs: max distance %.4f (precision %.4f, recall %.4f there)", base.features.rows, PlantedDuplicates.pairScores(groups: [], source: calibration.source).truePairs, c.threshold, c.precision, c.recall))
      }
      if plant > 0, let paths = test.paths {
        let copies = try Self.editedCopies(of: paths, count: plant, seed: seed, options: options, shape: shape)
        items = items.appendingRows(copies.rows)
        planted = Set(copies.originals).count
        plantedSource = Array(0..<test.labels.count) + copies.originals
        plantedNames = copies.names
      } else if plant > 0 {
        planted = Swift.min(plant, items.rows)
        let p = try PlantedDuplicates.plant(
          items, height: shape.height, width: shape.width, channels: shape.channels, originals: planted!, noise: noise, maxShift: shift, seed: seed)
        items = p.images
        plantedSource = p.source
      }
      groups = finder.groups(try finder.candidatePairs(items), count: items.rows, maxDistance: distance)
    } else {
      var data = test
      var cosine = threshold
      if calibrate {
        cosine = try calibratedThreshold(train, options: options)
      }
      if plant > 0 {
        guard let paths = test.paths, let shape = test.imageShape else {
          throw ValidationError("--plant without --shift plants edited copies of image files (folder: or list: data); for other images give --shift N")
        }
        let copies = try Self.editedCopies(of: paths, count: plant, seed: seed, options: options, shape: shape)
        data.features = test.features.appendingRows(copies.rows)
        data.labels += copies.originals.map { test.labels[$0] }
        items = data.features
        planted = Set(copies.originals).count
        plantedSource = Array(0..<test.labels.count) + copies.originals
        plantedNames = copies.names
      }
      groups = try nearDuplicateGroups(try source.embed(data), threshold: cosine, distance: .cosine)
    }
    // Ids are rows of the data file; copies planted by --plant follow as planted-0, planted-1, ….
    var text = test.paths == nil ? "group,id\n" : "group,id,path\n"
    for (g, members) in groups.enumerated() {
      for i in members {
        text += "\(g),\(i < test.ids.count ? String(test.ids[i]) : "planted-\(i - test.ids.count)")"
        if let paths = test.paths { text += "," + CSV.field(i < paths.count ? paths[i] : plantedNames?[i - paths.count] ?? "") }
        text += "\n"
      }
    }
    if let output { try atomicWrite(Data(text.utf8), to: output) } else { print(text, terminator: "") }
    warn("\(groups.count) groups of near-duplicates among \(items.rows) items")
    if let planted, let plantedSource, plantedNames != nil {
      let s = PlantedDuplicates.pairScores(groups: groups, source: plantedSource)
      warn(String(format: "planted %d edited copies of %d test images (JPEG quality 50, 75%% size, 5%% crop, 20%% brighter): pair precision %.4f, recall %.4f (%d pairs predicted, %d planted)", plantedNames?.count ?? 0, planted, s.precision, s.recall, s.predicted, s.truePairs))
    } else if let planted, let plantedSource {
      let s = PlantedDuplicates.pairScores(groups: groups, source: plantedSource)
      warn(String(format: "planted copies of %d test images (noise %.2f, shifts up to %d px): pair precision %.4f, recall %.4f (%d pairs predicted, %d planted)", planted, noise, shift, s.precision, s.recall, s.predicted, s.truePairs))
    }
  }
}

extension Matrix<Float> {
  /// This matrix with `other`'s rows below its own (the same number of columns).
  func appendingRows(_ other: Matrix<Float>) -> Matrix<Float> {
    precondition(columns == other.columns, "appendingRows: \(columns) and \(other.columns) columns")
    return Matrix(rows: rows + other.rows, columns: columns, elements: elements + other.elements)
  }
}

extension Dedup {
  /// The cosine threshold with the best pair F1 on edited copies planted in (a seeded sample of at
  /// most 2,000) training images: each item's 10 nearest neighbours are the candidate pairs.
  func calibratedThreshold(_ train: Dataset, options: DataOptions) throws -> Double {
    guard train.paths != nil, let shape = train.imageShape else {
      throw ValidationError("--calibrate without --shift plants edited copies of image files (folder: or list: data); for other images give --shift N")
    }
    guard train.labels.count >= 8 else { throw ValidationError("--calibrate needs training images outside the test classes to plant copies in; --train-classes selects \(train.labels.count)") }
    let sample = Array(Array(0..<train.labels.count).shuffled(seed: seed &+ 0xCA1).prefix(2000)).sorted()
    var base = try options.decoded(train.subset(sample))
    let originals = Swift.max(1, Swift.min(plant > 0 ? plant : 100, base.features.rows / 4))
    let copies = try Self.editedCopies(of: base.paths!, count: originals, seed: seed &+ 0xCA1, options: options, shape: shape)
    let sourceOf = Array(0..<base.features.rows) + copies.originals
    base.features = base.features.appendingRows(copies.rows)
    base.labels += copies.originals.map { base.labels[$0] }
    let e = try source.embed(base).rowsNormalized()
    let knn = try nearestNeighbors(queries: e, references: e, k: Swift.min(10, e.rows - 1), distance: .cosine, excludeSelf: true)
    var pairs: [ImageDuplicateFinder.Pair] = []
    for i in 0..<e.rows {
      for (rank, j) in knn.row(i).enumerated() where i < Int(j) {
        pairs.append(ImageDuplicateFinder.Pair(i: Int32(i), j: Int32(j), distance: 1 - Float(knn.scores[i, rank])))
      }
    }
    let c = PlantedDuplicates.calibrate(pairs, source: sourceOf)
    let cosine = 1 - c.threshold
    warn(String(format: "calibrated on %d training images with %d edited copies: threshold %.4f (precision %.4f, recall %.4f there)", sample.count, copies.names.count, cosine, c.precision, c.recall))
    return cosine
  }

  /// Four edited copies (``NearCopy``) of each of `count` seeded files of `paths`, as rows made by
  /// the evaluation transforms, with the original of each row and its name.
  static func editedCopies(of paths: [String], count: Int, seed: UInt64, options: DataOptions, shape: (height: Int, width: Int, channels: Int))
    throws -> (rows: Matrix<Float>, originals: [Int], names: [String])
  {
    let chosen = Array(Array(0..<paths.count).shuffled(seed: seed &+ 0xC09).prefix(count)).sorted()
    var rng = RandomSource(seed: seed).derived(stream: 0xC09)
    var files: [[UInt8]] = [], originals: [Int] = [], names: [String] = []
    for i in chosen {
      let image = try ImageFile.read(paths[i])
      for kind in NearCopy.allCases {
        files.append(try kind.file(of: image, rng: &rng))
        originals.append(i)
        names.append("\(kind.rawValue) copy of \(paths[i])")
      }
    }
    let loader = try ImageLoader(
      list: ImageList(paths: [], labels: [], classNames: []), transforms: try options.imageTransforms(options.imageTransformsText),
      height: shape.height, width: shape.width, channels: shape.channels)
    return (try loader.load(files: files, names: names), originals, names)
  }
}

extension Array where Element == Int {
  /// A seeded shuffle.
  func shuffled(seed: UInt64) -> [Int] {
    var copy = self
    var rng = RandomSource(seed: seed)
    rng.shuffle(&copy)
    return copy
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

  func validate() throws {
    guard ways >= 2 else { throw ValidationError("--ways \(ways) must be at least 2") }
    guard queries >= 1 else { throw ValidationError("--queries \(queries) must be at least 1") }
    guard episodes >= 1 else { throw ValidationError("--episodes \(episodes) must be at least 1") }
    _ = try shotList()
  }

  /// The `--shots` list: positive integers, at least one.
  func shotList() throws -> [Int] {
    let list = try shots.split(separator: ",", omittingEmptySubsequences: false).map { s -> Int in
      guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 1 else {
        throw ValidationError("--shots \(shots): '\(s)' is not a positive integer")
      }
      return v
    }
    guard !list.isEmpty else { throw ValidationError("--shots is empty; give support sizes such as 1,5") }
    return list
  }

  func run() throws {
    let shotList = try shotList()
    let (_, _, test) = try dataOptions.resolved(forCheckpoint: source.checkpoint).splits()
    guard test.labelSets == nil else {
      throw ValidationError("dml few-shot draws episodes of classes, one label per row; the test rows are multi-label (labels joined by |)")
    }
    let e = try source.embed(test)
    for k in shotList {
      print(try fewShotEvaluation(e, labels: test.labels, ways: ways, shots: k, queriesPerClass: queries, episodes: episodes, seed: seed))
    }
  }
}
