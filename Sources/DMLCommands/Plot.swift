import ArgumentParser
import Foundation
import MetricLearning

/// `dml plot`: pictures of embeddings, retrievals and training curves, as PNG.
struct Plot: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Draw embedding maps, retrieval grids and training curves as PNG files.",
    subcommands: [PlotEmbeddings.self, PlotRetrieval.self, PlotCurves.self])
}

/// The embeddings a picture shows: a checkpoint's network applied to a data split, or, without
/// `--checkpoint`, the data's own features (raw pixels, or an NPY file of embeddings).
struct PictureSource: ParsableArguments {
  @Option(help: "A checkpoint folder from `dml train --checkpoint` (default: plot the data's own features).")
  var checkpoint: String?
  @OptionGroup(title: "Data") var dataOptions: DataOptions
  @Option(help: "train or test.") var split = "test"
  @Option(help: "The seed of the sampled points, queries and thumbnails.") var seed: UInt64 = 0

  func validate() throws {
    guard split == "train" || split == "test" else { throw ValidationError("--split \(split) must be train or test") }
  }

  /// The data split and its embeddings.
  func load() throws -> (data: Dataset, embeddings: Matrix<Float>, names: [Int: String], what: String) {
    let options = dataOptions.resolved(forCheckpoint: checkpoint)
    let (train, _, test) = try options.splits()
    var data = split == "train" ? try options.decoded(train) : test
    if split == "train", dataOptions.data == "fashion-mnist" {
      // Training labels were remapped to 0..<classes; plot the original ones.
      let original = try dataOptions.decoded(try dataOptions.load(dataOptions.data, labels: nil, train: true))
      let keep = Set(try dataOptions.trainClasses.map { try ClassSplit.parse($0) } ?? Set(original.labels))
      let v = try dataOptions.validationClasses.map { try ClassSplit.parse($0) } ?? []
      data = original.restricted(to: keep.subtracting(v))
    }
    let names = data.classNames.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($0, $1) }) }
      ?? (dataOptions.data == "fashion-mnist" ? Pictures.fashionNames : [:])
    if let checkpoint {
      let e = try CheckpointOptions.embed(checkpoint, data.features, imageShape: data.imageShape)
      return (data, e, names, "embeddings of \(checkpoint)")
    }
    // Raw pixels are compared after L2 normalisation, as in the raw-input baseline of `dml train`.
    if data.imageShape != nil { return (data, data.features.rowsNormalized(), names, "raw pixels") }
    return (data, data.features, names, "features")
  }
}

struct PlotEmbeddings: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "embeddings",
    abstract: "A 2-D map (t-SNE or PCA) of embeddings coloured by class, with a legend and, for images, thumbnails.")

  @OptionGroup var source: PictureSource
  @Option(help: "tsne or pca.") var method = "tsne"
  @Option(help: "t-SNE perplexity.") var perplexity = 30.0
  @Option(help: "t-SNE iterations.") var iterations = 1000
  @Option(help: "Plot at most this many points (a seeded sample).") var maxPoints = 10_000
  @Option(help: "Thumbnails drawn at sampled points, for image data (0: none).") var thumbnails = 24
  @Option(help: "The PNG file to write.") var output: String

  func validate() throws {
    guard method == "tsne" || method == "pca" else { throw ValidationError("--method \(method) must be tsne or pca") }
    guard perplexity >= 1 else { throw ValidationError("--perplexity \(perplexity) must be at least 1") }
    guard iterations >= 1 else { throw ValidationError("--iterations \(iterations) must be at least 1") }
    guard maxPoints >= 4 else { throw ValidationError("--max-points \(maxPoints) must be at least 4") }
    guard thumbnails >= 0 else { throw ValidationError("--thumbnails \(thumbnails) must be ≥ 0") }
    guard output.hasSuffix(".png") else { throw ValidationError("--output \(output) must end in .png") }
  }

  func run() throws {
    let (data, embeddings, names, what) = try source.load()
    var options = Pictures.MapOptions()
    options.method = method
    options.perplexity = perplexity
    options.iterations = iterations
    options.maxPoints = maxPoints
    options.thumbnails = thumbnails
    options.seed = source.seed
    let start = Date()
    let map = try Pictures.embeddingMap(embeddings, data: data, names: names, title: "\(what), \(source.split) split", options: options)
    try PNG.write(map.image, to: output)
    print(String(format: "wrote %@: %d points of %d classes (%@, %.1f s)", output, map.positions.count, map.legend.count, method, Date().timeIntervalSince(start)))
  }
}

struct PlotRetrieval: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "retrieval",
    abstract: "For image data: queries in rows, each followed by its nearest neighbours framed green (same class) or red.")

  @OptionGroup var source: PictureSource
  @Option(help: "Number of queries (rows), spread over the classes.") var queries = 8
  @Option(help: "Neighbours per query.") var k = 8
  @Option(help: "The PNG file to write.") var output: String

  func validate() throws {
    guard queries >= 1 && queries <= 100 else { throw ValidationError("--queries \(queries) must lie in 1...100") }
    guard k >= 1 && k <= 50 else { throw ValidationError("--k \(k) must lie in 1...50") }
    guard output.hasSuffix(".png") else { throw ValidationError("--output \(output) must end in .png") }
  }

  func run() throws {
    let (data, embeddings, names, _) = try source.load()
    let grid = try Pictures.retrievalGrid(embeddings, data: data, names: names, queries: queries, k: k, seed: source.seed)
    try PNG.write(grid.image, to: output)
    let hits = grid.matches.flatMap { $0 }.filter { $0 }.count
    print("wrote \(output): \(grid.matches.count) queries × \(k) neighbours, \(hits) of \(grid.matches.count * k) of the same class")
  }
}

struct PlotCurves: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "curves",
    abstract: "Training loss and validation metrics over epochs, from the JSON log of `dml train --log json`.")

  @Option(help: "The JSON-lines log written by `dml train --log json > FILE`.") var log: String
  @Option(help: "The PNG file to write.") var output: String

  func validate() throws {
    guard output.hasSuffix(".png") else { throw ValidationError("--output \(output) must end in .png") }
  }

  func run() throws {
    guard let data = FileManager.default.contents(atPath: log) else { throw ValidationError("--log \(log): cannot read the file") }
    var records: [[String: Any]] = []
    for (number, line) in textLines([UInt8](data)).enumerated() {
      let text = line.trimmingCharacters(in: .whitespaces)
      if text.isEmpty { continue }
      guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw ValidationError("\(log):\(number + 1): not a JSON object (expected the output of `dml train --log json`)")
      }
      records.append(object)
    }
    guard records.contains(where: { $0["event"] as? String == "epoch" }) else {
      throw ValidationError("\(log): no epoch record (expected the output of `dml train --log json`)")
    }
    try PNG.write(try Pictures.curves(records).image, to: output)
    print("wrote \(output): \(records.filter { $0["event"] as? String == "epoch" }.count) epochs")
  }
}

/// The pictures, shared by `dml plot` and `dml train --plots`.
enum Pictures {
  static let fashionNames = Dictionary(uniqueKeysWithValues: FashionMNIST.classNames.enumerated().map { ($0, $1) })

  struct MapOptions {
    var method = "tsne"
    var perplexity = 30.0
    var iterations = 1000
    var maxPoints = 10_000
    var thumbnails = 24
    var seed: UInt64 = 0
  }

  static func embeddingMap(_ embeddings: Matrix<Float>, data: Dataset, names: [Int: String], title: String, options: MapOptions) throws -> EmbeddingMap {
    var rows = Array(0..<embeddings.rows)
    if rows.count > options.maxPoints {
      var rng = RandomSource(seed: options.seed)
      rng.shuffle(&rows)
      rows = Array(rows.prefix(options.maxPoints)).sorted()
    }
    let e = rows.count == embeddings.rows ? embeddings : embeddings.rows(rows)
    let labels = rows.map { data.labels[$0] }
    let points: Matrix<Double>
    var method = "PCA"
    if options.method == "tsne" {
      var tsne = TSNE()
      tsne.perplexity = options.perplexity
      tsne.iterations = options.iterations
      points = try tsne.embed(e)
      method = "t-SNE"
    } else {
      points = try PCA(fitting: e, count: 2).project(e)
    }
    var thumbs: (images: Matrix<Float>, height: Int, width: Int)?
    if let shape = data.imageShape, shape.channels == 1 || shape.channels == 3, options.thumbnails > 0 {
      thumbs = (data.features.rows(rows), shape.height, shape.width)
    }
    // Photos (image files) are drawn as they are; Fashion-MNIST's white-on-black as ink on paper.
    return try EmbeddingMap(
      points: points, labels: labels, names: names, title: "\(method) map of \(title) (\(rows.count) points)", method: method,
      thumbnails: thumbs, thumbnailCount: options.thumbnails, seed: options.seed, invertGrey: data.paths == nil)
  }

  static func retrievalGrid(_ embeddings: Matrix<Float>, data: Dataset, names: [Int: String], queries count: Int, k: Int, seed: UInt64) throws -> RetrievalGrid {
    guard let shape = data.imageShape, shape.channels == 1 || shape.channels == 3 else {
      throw ValidationError("a retrieval grid needs image data (such as fashion-mnist or folder:PATH); this data has no image shape")
    }
    guard data.labels.count > k else { throw ValidationError("--k \(k) needs more than \(k) samples; the split has \(data.labels.count)") }
    // Queries spread over the classes: class by class in turn, a seeded sample within each.
    var rng = RandomSource(seed: seed)
    var byClass: [[Int]] = data.classes.map { c in data.labels.indices.filter { data.labels[$0] == c } }
    for i in byClass.indices { rng.shuffle(&byClass[i]) }
    var queries: [Int] = []
    var round = 0
    while queries.count < count && round < data.labels.count {
      for members in byClass where round < members.count && queries.count < count { queries.append(members[round]) }
      round += 1
    }
    let neighbors = try nearestNeighbors(
      queries: embeddings.rows(queries), references: embeddings, k: k + 1)
    let lists = queries.enumerated().map { (r, q) in Array(neighbors.row(r).map(Int.init).filter { $0 != q }.prefix(k)) }
    return try RetrievalGrid(
      images: data.features, height: shape.height, width: shape.width, labels: data.labels, queries: queries, neighbors: lists, names: names,
      invertGrey: data.paths == nil)
  }

  /// Loss and validation panels from the training log's records.
  static func curves(_ records: [[String: Any]]) throws -> LineCharts {
    func number(_ r: [String: Any], _ key: String) -> Double? { (r[key] as? NSNumber)?.doubleValue }
    let epochs = records.filter { $0["event"] as? String == "epoch" }
    let steps = records.filter { $0["event"] as? String == "step" }
    // Steps per epoch, to place step records on the epoch axis.
    let perEpoch = epochs.compactMap { r -> Double? in
      guard let s = number(r, "step"), let e = number(r, "epoch"), e > 0 else { return nil }
      return s / e
    }.first ?? 1
    let stepLoss = steps.compactMap { r -> (x: Double, y: Double)? in
      guard let s = number(r, "step"), let l = number(r, "loss"), l.isFinite else { return nil }
      return (s / perEpoch, l)
    }
    let meanLoss = epochs.compactMap { r -> (x: Double, y: Double)? in
      guard let e = number(r, "epoch"), let l = number(r, "mean_loss"), l.isFinite else { return nil }
      return (e, l)
    }
    func metric(_ key: String) -> [(x: Double, y: Double)] {
      epochs.compactMap { r in number(r, "epoch").flatMap { e in number(r, key).map { (e, $0) } } }
    }
    var lossSeries = [Series(name: "epoch mean", points: meanLoss, color: Palette.color(4))]
    if !stepLoss.isEmpty { lossSeries.insert(Series(name: "step", points: stepLoss, markers: false, color: Color(hex: 0xAAAAAA)), at: 0) }
    let validation = [
      Series(name: "MAP@R", points: metric("validation_map_at_r"), color: Palette.color(5)),
      Series(name: "Precision@1", points: metric("validation_precision_at_1"), color: Palette.color(2)),
    ]
    return try LineCharts(
      panels: [
        (title: "Training loss", yLabel: "loss", series: lossSeries),
        (title: "Validation (held-out training classes)", yLabel: "metric", series: validation),
      ], xLabel: "epoch")
  }
}
