import ArgumentParser
import Foundation
import MetricLearning

/// `dml tune`: random search over recipes, scored by class-disjoint cross-validation on the
/// training classes (MAP@R on held-out training classes, as in Musgrave et al. 2020). The test
/// classes are never loaded.
struct Tune: ParsableCommand, TrainingDataFlags {
  static let configuration = CommandConfiguration(
    abstract: "Search recipes by class-disjoint cross-validation on the training classes, within a budget; resumable.",
    discussion: """
      Each component flag takes a template; placeholders are drawn per trial: {a..b} uniform,
      {a..b log} log-uniform (whole numbers when both ends are), {x|y|z} a choice. A repeated flag
      lists alternatives; in --loss, + sums losses. Example:
        dml tune --train-classes 0-4 --folds 2 --network mlp:embedding={64|128|256} \\
          --loss proxy-anchor:margin={0.05..0.2} --loss "contrastive+softmax:weight={0.01..1 log}" \\
          --optimizer "adamw:lr={1e-5..1e-3 log},weight_decay={0..0.2}" --trials 20 --output runs/tune
      """)

  @OptionGroup(title: "Data") var dataFlags: DataOptions
  @OptionGroup(title: "Data") var validation: ValidationOption
  @Option(help: "Class-disjoint folds of the training classes (1: use --validation-classes).") var folds = 2
  @Option(help: "Network templates (alternatives).") var network: [String] = ["mlp"]
  @Option(help: "Loss templates (alternatives; + sums losses).") var loss: [String] = ["contrastive"]
  @Option(help: "Miner templates (alternatives).") var miner: [String] = ["none"]
  @Option(help: "Batch sampler templates (alternatives).") var batch: [String] = ["m-per-class:m=4,size=128"]
  @Option(help: "Optimizer templates (alternatives).") var optimizer: [String] = ["adam:lr={1e-5..1e-3 log}"]
  @Option(help: "Schedule templates (alternatives).") var schedule: [String] = ["constant"]
  @Option(help: "Augmentation templates (alternatives), e.g. none or crop:pad={1..3}.") var augment: [String] = ["none"]
  @Option(help: "Epochs per trial and fold (early stopping with --patience inside).") var epochs = 8
  @Option(help: "Epochs without a better validation MAP@R before a fold stops.") var patience = 2
  @Option(help: "Trials in all (a resumed search counts those done).") var trials = 20
  @Option(help: "Start no new trial after this many minutes.") var minutes: Double?
  @Option(help: "The seed of the search and of every trial.") var seed: UInt64 = 0
  @Option(help: "Images: the random transforms of training images, read from their files as each trial trains (default: random-resized-crop:size=S,scale=0.16/1,flip).")
  var trainTransforms: String?
  @Option(help: "Folder of the trial table (trials.csv) and the choice (best.json); an existing one is resumed.") var output: String

  func validate() throws {
    guard folds >= 1 else { throw ValidationError("--folds \(folds) must be at least 1") }
    if let trainTransforms { _ = try dataOptions.imageTransforms(trainTransforms) }
    if folds == 1 && dataOptions.validationClasses == nil { throw ValidationError("--folds 1 needs --validation-classes") }
    if folds > 1 && dataOptions.validationClasses != nil {
      throw ValidationError("--validation-classes is for --folds 1; with --folds \(folds) the folds are drawn from --train-classes")
    }
    guard dataOptions.testClasses == nil else { throw ValidationError("--test-classes: tuning never looks at test classes; evaluate the chosen recipe with dml train") }
    guard epochs >= 1, patience >= 1, trials >= 1 else { throw ValidationError("--epochs, --patience and --trials must be at least 1") }
    if let minutes, !(minutes > 0) { throw ValidationError("--minutes \(minutes) must be positive") }
    for (flag, list) in [("network", network), ("loss", loss), ("miner", miner), ("batch", batch), ("optimizer", optimizer), ("schedule", schedule), ("augment", augment)] {
      for template in list {
        let parsed: Template
        do { parsed = try Template(template) } catch { throw ValidationError("--\(flag) \(template): \(error)") }
        try Self.checkRanges(parsed, flag: flag, template: template)
      }
    }
  }

  /// Refuses a `{low..high}` range that reaches outside the values its hyperparameter accepts,
  /// before any trial: otherwise some trials would fail one by one.
  static func checkRanges(_ template: Template, flag: String, template text: String) throws {
    for r in template.ranges {
      let declared = CommandRegistry.hyperparameters(kind: flag, name: r.component)
      guard let spec = declared?.first(where: { $0.name == r.key }), let range = spec.range else { continue }
      for end in [r.low, r.high] where !range.contains(end) {
        throw ValidationError("--\(flag) \(text): \(r.key)=\(end == end.rounded() && abs(end) < 1e15 ? String(Int(end)) : String(end)) is outside the range of \(r.component)'s \(r.key) (\(range))")
      }
    }
  }

  /// The search space and data, which must match to resume.
  var signature: [String: String] {
    [
      "network": network.joined(separator: " | "), "loss": loss.joined(separator: " | "), "miner": miner.joined(separator: " | "),
      "batch": batch.joined(separator: " | "), "optimizer": optimizer.joined(separator: " | "), "schedule": schedule.joined(separator: " | "),
      "augment": augment.joined(separator: " | "), "epochs": "\(epochs)", "patience": "\(patience)", "folds": "\(folds)", "seed": "\(seed)",
      "data": dataOptions.data, "train_classes": dataOptions.trainClasses ?? "all", "validation_classes": dataOptions.validationClasses ?? "",
    ].merging(imageSignature) { a, _ in a }
  }

  /// For image data: what decides the pixels the trials see.
  var imageSignature: [String: String] {
    guard DataOptions.isImages(dataOptions.data) else { return [:] }
    return [
      "image_size": "\(dataOptions.imageSize)", "channels": "\(dataOptions.channels)", "transforms": dataOptions.imageTransformsText,
      "train_transforms": trainTransformsText, "on_bad_image": dataOptions.onBadImage,
    ]
  }

  var trainTransformsText: String { trainTransforms ?? dataOptions.defaultTrainTransforms }

  /// Trains one trial's recipe on one fold through the library's run (quietly, early-stopped on
  /// the fold's validation classes) and returns what it found. The fold's data is loaded once and
  /// kept in `data`.
  func trialRun(
    _ settings: Settings, trial: Int, fold: String, data: inout [String: (train: Dataset, validation: Dataset)]
  ) throws -> RunSummary {
    if data[fold] == nil {
      var options = dataOptions
      options.validationClasses = fold
      // Never the test data: the folds are held-out training classes, scored as validation.
      options.testData = nil
      options.testLabels = nil
      options.testClasses = fold
      let s = try options.splitsAndClasses()
      // Images stay files, read with the random training transforms as the trial trains.
      data[fold] = (s.train, s.validation!)
    }
    let (train, validation) = data[fold]!
    let images = try dataOptions.trainingImages(train, transforms: trainTransformsText, seed: seed, cache: false)
    guard Set(train.labels).count >= 2 else {
      throw ValidationError("fold {\(fold)}: training needs at least 2 classes, the fold leaves \(Set(train.labels).count)")
    }
    var recipe = Recipe(
      network: settings.network, loss: settings.loss.split(separator: "+").map(String.init), miner: settings.miner, batch: settings.batch,
      optimizer: settings.optimizer, schedule: settings.schedule, augment: settings.augment, epochs: epochs, patience: patience, seed: seed,
      logEvery: 0)
    try recipe.validate()
    recipe.compute = try Builders.compute()
    let (trainer, batches, runSettings) = try recipe.parts(train: train) { warn("trial \(trial + 1): \($0)") }
    var run = try TrainingRun(trainer: trainer, training: train, validation: validation, batches: batches, settings: runSettings, images: images)
    return try run.fit { event in
      if case .warning(let text) = event { warn("trial \(trial + 1): \(text)") }
    }
  }

  /// A trial's settings, one per flag.
  struct Settings: Equatable {
    var network, loss, miner, batch, optimizer, schedule, augment: String

    var arguments: [String] {
      var a = ["--network", network]
      for l in loss.split(separator: "+") { a += ["--loss", String(l)] }
      a += ["--miner", miner, "--batch", batch, "--optimizer", optimizer, "--schedule", schedule, "--augment", augment]
      return a
    }
  }

  func draw(_ trial: Int) throws -> Settings {
    var rng = RandomSource(seed: seed).derived(stream: 0x7475_6E65 &+ UInt64(trial))
    func pick(_ list: [String]) throws -> String { try Template(list[rng.index(below: list.count)]).sample(&rng) }
    return Settings(
      network: try pick(network), loss: try pick(loss), miner: try pick(miner), batch: try pick(batch),
      optimizer: try pick(optimizer), schedule: try pick(schedule), augment: try pick(augment))
  }

  /// The folds: validation classes of each (strings for --validation-classes).
  func foldClasses() throws -> [String] {
    if folds == 1 { return [dataOptions.validationClasses!] }
    let all = try dataOptions.trainClasses.map { try ClassSplit.parse($0) }
      ?? Set(try dataOptions.load(dataOptions.data, labels: dataOptions.labels, train: true).labels)
    var classes = all.sorted()
    var rng = RandomSource(seed: seed).derived(stream: 0x666F_6C64)
    rng.shuffle(&classes)
    var groups = [[Int]](repeating: [], count: folds)
    for (i, c) in classes.enumerated() { groups[i % folds].append(c) }
    for g in groups where g.count < 2 || classes.count - g.count < 2 {
      throw ValidationError("--folds \(folds) over \(classes.count) training classes leaves a fold with \(g.count) validation and \(classes.count - g.count) training classes; each needs at least 2")
    }
    return groups.map { $0.sorted().map(String.init).joined(separator: ",") }
  }

  struct Row {
    var trial: Int
    var score: Double
    var foldScores: [Double]
    var bestEpochs: [Int]
    var seconds: Double
    var settings: Settings
  }

  static let header = "trial,mean_validation_map_at_r,fold_map_at_r,best_epochs,seconds,network,loss,miner,batch,optimizer,schedule,augment"

  func run() throws {
    if let advice = BLAS.advice { warn("note: \(advice)") }
    // Before anything is written: multi-label rows have no classes to hold out.
    if dataOptions.data.lowercased().hasSuffix(".csv"),
      try dataOptions.load(dataOptions.data, labels: dataOptions.labels, train: true).labelSets != nil
    {
      throw ValidationError(
        "dml tune cross-validates on held-out training classes; \(dataOptions.data) has multi-label rows (labels joined by |), which are not split by class")
    }
    let fm = FileManager.default
    try fm.createDirectory(atPath: output, withIntermediateDirectories: true)
    let signaturePath = "\(output)/search.json"
    if let data = fm.contents(atPath: signaturePath) {
      guard let saved = try? JSONSerialization.jsonObject(with: data) as? [String: String] else {
        throw ValidationError("\(signaturePath): unreadable; remove the folder to start afresh")
      }
      for key in signature.keys.sorted() where saved[key] != signature[key] {
        throw ValidationError("--output \(output) holds a search with --\(key.replacingOccurrences(of: "_", with: "-")) '\(saved[key] ?? "")', not '\(signature[key]!)'")
      }
    } else {
      try atomicWrite(try JSONSerialization.data(withJSONObject: signature, options: [.sortedKeys, .prettyPrinted]), to: signaturePath)
    }
    let tablePath = "\(output)/trials.csv"
    var rows = try Self.readTable(tablePath)
    let done = Set(rows.map(\.trial))
    let validationSets = try foldClasses()
    print("tuning over \(validationSets.count) fold(s) of validation classes: " + validationSets.map { "{\($0)}" }.joined(separator: " ")
      + (done.isEmpty ? "" : "; resuming after \(done.count) trial(s)"))
    let start = Date()
    var baselines: [String: Double] = [:]  // the raw input's validation MAP@R, per fold
    var foldData: [String: (train: Dataset, validation: Dataset)] = [:]  // each fold's data, loaded once
    for trial in 0..<trials where !done.contains(trial) {
      if let minutes, Date().timeIntervalSince(start) > minutes * 60 {
        print("budget of \(minutes) minutes spent: stopping before trial \(trial + 1)")
        break
      }
      let settings = try draw(trial)
      let t0 = Date()
      var scores: [Double] = [], bestEpochs: [Int] = []
      for validation in validationSets {
        var summary = RunSummary()
        do {
          summary = try trialRun(settings, trial: trial, fold: validation, data: &foldData)
        } catch let error as DataError {
          throw error  // the data, not the recipe: the whole search would fail alike
        } catch {
          // A recipe that diverges or is invalid scores nothing; the search goes on.
          warn("trial \(trial + 1): \(Train.message(for: error)); scored 0")
          summary.bestValidationMapAtR = 0
        }
        scores.append(summary.bestValidationMapAtR ?? 0)
        bestEpochs.append(summary.bestEpoch)
        if let raw = summary.validationRawMapAtR { baselines[validation] = raw }
      }
      let row = Row(trial: trial, score: scores.reduce(0, +) / Double(scores.count), foldScores: scores, bestEpochs: bestEpochs,
        seconds: Date().timeIntervalSince(t0), settings: settings)
      rows.append(row)
      try Self.writeTable(rows, to: tablePath)
      print(String(format: "trial %d/%d  validation MAP@R %.4f  (%.0f s)  ", trial + 1, trials, row.score, row.seconds) + settings.arguments.joined(separator: " "))
      fflush(nil)  // each trial as it ends, also into a file or a pipe
    }
    guard let best = rows.max(by: { $0.score < $1.score }) else { return }
    guard best.score > 0 else {
      throw RuntimeError("no trial trained: every recipe of the search failed (see the trial lines above); table: \(tablePath)")
    }
    if baselines.count == validationSets.count {
      let raw = baselines.values.reduce(0, +) / Double(baselines.count)
      print(String(format: "raw input on the same folds: validation MAP@R %.4f", raw))
      if best.score <= raw {
        warn(String(format: "warning: the best trial (validation MAP@R %.4f) does not beat the raw input (%.4f) on the validation folds", best.score, raw))
      }
    }
    // The final run trains on every training class for the epochs the folds chose (the upper
    // median of the folds' best epochs).
    let finalEpochs = Swift.max(1, best.bestEpochs.sorted()[best.bestEpochs.count / 2])
    var command = ["dml", "train"] + dataOptionsArguments() + best.settings.arguments + ["--epochs", "\(finalEpochs)", "--seed", "\(seed)"]
    command += try testArguments()
    command = command.map { $0.contains(where: { " {}|+,:=".contains($0) }) && !$0.hasPrefix("--") ? "'\($0)'" : $0 }
    let choice: [String: Any] = [
      "trial": best.trial + 1, "mean_validation_map_at_r": best.score, "fold_map_at_r": best.foldScores, "epochs": finalEpochs,
      "network": best.settings.network, "loss": best.settings.loss, "miner": best.settings.miner, "batch": best.settings.batch,
      "optimizer": best.settings.optimizer, "schedule": best.settings.schedule, "augment": best.settings.augment,
      "command": command.joined(separator: " "),
    ]
    try atomicWrite(try JSONSerialization.data(withJSONObject: choice, options: [.sortedKeys, .prettyPrinted]), to: "\(output)/best.json")
    print("\nbest of \(rows.count) trials: #\(best.trial + 1), validation MAP@R \(String(format: "%.4f", best.score))")
    print("train it on every training class with:\n  " + command.joined(separator: " "))
    print("table: \(tablePath); choice: \(output)/best.json")
  }

  /// The test flags of the suggested command: the given test classes or file, else every class
  /// of the data that is not a training class (an open-set test), else a closed-set one.
  func testArguments() throws -> [String] {
    if let t = dataOptions.testData {
      return ["--test-data", t] + (dataOptions.testLabels.map { ["--test-labels", $0] } ?? [])
        + (dataOptions.testClasses.map { ["--test-classes", $0] } ?? [])
    }
    if let t = dataOptions.testClasses { return ["--test-classes", t] }
    let all = Set(try dataOptions.load(dataOptions.data, labels: dataOptions.labels, train: dataOptions.data != "fashion-mnist").labels)
    let trained = try dataOptions.trainClasses.map { try ClassSplit.parse($0) } ?? all
    let unseen = all.subtracting(trained).sorted()
    return unseen.isEmpty ? ["--allow-overlap"] : ["--test-classes", unseen.map(String.init).joined(separator: ",")]
  }

  /// The data flags to pass on to each trial.
  func dataOptionsArguments() -> [String] {
    var a = ["--data", dataOptions.data]
    if dataOptions.data == "fashion-mnist" && dataOptions.dataDir != FashionMNIST.defaultDirectory { a += ["--data-dir", dataOptions.dataDir] }
    if let l = dataOptions.labels { a += ["--labels", l] }
    if let t = dataOptions.trainClasses { a += ["--train-classes", t] }
    if DataOptions.isImages(dataOptions.data) {
      a += ["--image-size", "\(dataOptions.imageSize)", "--channels", "\(dataOptions.channels)"]
      if let t = dataOptions.transforms { a += ["--transforms", t] }
      if let t = trainTransforms { a += ["--train-transforms", t] }
      if dataOptions.workers != 2 { a += ["--workers", "\(dataOptions.workers)"] }
      if dataOptions.onBadImage != "stop" { a += ["--on-bad-image", dataOptions.onBadImage] }
    }
    return a
  }

  static func quote(_ field: String) -> String { "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

  static func writeTable(_ rows: [Row], to path: String) throws {
    var text = header + "\n"
    for r in rows.sorted(by: { $0.trial < $1.trial }) {
      let s = r.settings
      text += ["\(r.trial + 1)", String(format: "%.6f", r.score), quote(r.foldScores.map { String(format: "%.6f", $0) }.joined(separator: " ")),
        quote(r.bestEpochs.map(String.init).joined(separator: " ")), String(format: "%.1f", r.seconds),
        quote(s.network), quote(s.loss), quote(s.miner), quote(s.batch), quote(s.optimizer), quote(s.schedule), quote(s.augment)].joined(separator: ",") + "\n"
    }
    try atomicWrite(Data(text.utf8), to: path)
  }

  /// Reads a table written by ``writeTable(_:to:)``; a missing file is an empty table.
  static func readTable(_ path: String) throws -> [Row] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    var rows: [Row] = []
    for (n, line) in textLines([UInt8](data)).enumerated().dropFirst() where !line.isEmpty {
      // Fields: unquoted, or quoted with "" escapes.
      var fields: [String] = [], current = "", inQuotes = false
      var chars = Array(line)
      chars.append(",")
      var i = 0
      while i < chars.count {
        let c = chars[i]
        if inQuotes {
          if c == "\"" {
            if i + 1 < chars.count && chars[i + 1] == "\"" {
              current.append("\"")
              i += 1
            } else { inQuotes = false }
          } else { current.append(c) }
        } else if c == "\"" {
          inQuotes = true
        } else if c == "," {
          fields.append(current)
          current = ""
        } else { current.append(c) }
        i += 1
      }
      guard fields.count == 12, let trial = Int(fields[0]), let score = Double(fields[1]), let seconds = Double(fields[4]) else {
        throw ValidationError("\(path):\(n + 1): not a row of the trial table; remove the folder to start afresh")
      }
      rows.append(Row(
        trial: trial - 1, score: score, foldScores: fields[2].split(separator: " ").compactMap { Double($0) },
        bestEpochs: fields[3].split(separator: " ").compactMap { Int($0) }, seconds: seconds,
        settings: Settings(network: fields[5], loss: fields[6], miner: fields[7], batch: fields[8], optimizer: fields[9], schedule: fields[10], augment: fields[11])))
    }
    return rows
  }
}

/// A component specification with placeholders: `{a..b}`, `{a..b log}`, `{x|y|z}`.
struct Template {
  enum Part {
    case text(String)
    case uniform(Double, Double, log: Bool, integer: Bool)
    case choice([String])
  }
  var parts: [Part] = []

  init(_ text: String) throws {
    var rest = Substring(text)
    while let open = rest.firstIndex(of: "{") {
      parts.append(.text(String(rest[..<open])))
      guard let close = rest[open...].firstIndex(of: "}") else { throw SpecificationError("'{' without '}'") }
      let inner = rest[rest.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
      if inner.contains("..") {
        var body = inner
        let log = body.hasSuffix(" log")
        if log { body = String(body.dropLast(4)).trimmingCharacters(in: .whitespaces) }
        let ends = body.components(separatedBy: "..")
        guard ends.count == 2, let a = Double(ends[0]), let b = Double(ends[1]), a.isFinite, b.isFinite, a <= b else {
          throw SpecificationError("{\(inner)}: expected {low..high} or {low..high log} with low ≤ high")
        }
        if log && !(a > 0) { throw SpecificationError("{\(inner)}: a log range needs positive ends") }
        // Whole-number ends draw whole numbers, while they are exact (and fit an Int).
        let integer = !ends[0].contains(where: { ".eE".contains($0) }) && !ends[1].contains(where: { ".eE".contains($0) })
          && max(abs(a), abs(b)) <= 1e15
        parts.append(.uniform(a, b, log: log, integer: integer))
      } else {
        let options = inner.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard options.count >= 2 || !inner.isEmpty, !options.contains("") else { throw SpecificationError("{\(inner)}: expected {x|y|...}") }
        parts.append(.choice(options))
      }
      rest = rest[rest.index(after: close)...]
    }
    if rest.contains("}") { throw SpecificationError("'}' without '{'") }
    parts.append(.text(String(rest)))
  }

  /// Each `{low..high}` range with the component and key it sets: `triplet:margin={0..1}` gives
  /// ("triplet", "margin", 0, 1). A `+` starts another component (summed losses).
  var ranges: [(component: String, key: String, low: Double, high: Double)] {
    var prefix = "", found: [(component: String, key: String, low: Double, high: Double)] = []
    for part in parts {
      switch part {
      case .text(let t): prefix += t
      case .choice: prefix += "x"
      case .uniform(let a, let b, _, _):
        let current = prefix.split(separator: "+", omittingEmptySubsequences: false).last.map(String.init) ?? prefix
        let component = String(current.prefix { $0 != ":" })
        let key = current.split(whereSeparator: { $0 == "," || $0 == ":" }).last.map { String($0.prefix { $0 != "=" }) } ?? ""
        found.append((component, key, a, b))
        prefix += "0"
      }
    }
    return found
  }

  func sample(_ rng: inout RandomSource) -> String {
    var out = ""
    for part in parts {
      switch part {
      case .text(let t): out += t
      case .choice(let options): out += options[rng.index(below: options.count)]
      case .uniform(let a, let b, let log, let integer):
        let u = rng.uniform(Double.self)
        var v = log ? Foundation.exp(Foundation.log(a) + u * (Foundation.log(b) - Foundation.log(a))) : a + u * (b - a)
        if integer {
          v = v.rounded()
          out += "\(Int(v))"
        } else {
          // Three significant digits, without the '+' of "1.23e+03", which --loss would split on.
          out += String(format: "%.3g", v).replacingOccurrences(of: "e+", with: "e")
        }
      }
    }
    return out
  }
}
