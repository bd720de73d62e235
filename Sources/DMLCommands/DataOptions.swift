import ArgumentParser
import Foundation
import MetricLearning

/// `--validation-classes`, for the commands that train.
struct ValidationOption: ParsableArguments {
  @Option(help: "Training classes held out for validation and early stopping, e.g. 3-4 (at most 1,000 samples each).")
  var validationClasses: String?
}

/// A command that trains: the data flags, and `--validation-classes` beside them.
protocol TrainingDataFlags {
  var dataFlags: DataOptions { get set }
  var validation: ValidationOption { get set }
}

extension TrainingDataFlags {
  /// The data flags with the validation classes.
  var dataOptions: DataOptions {
    get {
      var d = dataFlags
      d.validationClasses = validation.validationClasses
      return d
    }
    set {
      dataFlags = newValue
      validation.validationClasses = newValue.validationClasses
    }
  }
}

/// Where the data comes from and which classes each split uses.
public struct DataOptions: ParsableArguments {
  @Option(help: "fashion-mnist, a CSV file (label, features…), an NPY file of features, folder:PATH (one subfolder of JPEG/PNG images per class) or list:FILE.csv (path and label columns).")
  var data = "fashion-mnist"
  @Option(help: "Labels for an NPY --data file (NPY or CSV).")
  var labels: String?
  @Option(help: "Folder holding the Fashion-MNIST IDX files.")
  var dataDir = FashionMNIST.defaultDirectory
  @Option(help: "A separate test file (CSV or NPY); default: Fashion-MNIST's test split, else --data.")
  var testData: String?
  @Option(help: "Labels for an NPY --test-data file.")
  var testLabels: String?
  @Option(help: "Images (folder: and list: data): the side of the square images the network sees.")
  var imageSize = 64
  @Option(help: "Images: 3 (colour) or 1 (grey) channels.")
  var channels = 3
  @Option(help: "Images: the transforms from file to network input (default: resize:size=⌊8·S/7⌋,center-crop:size=S); see ImageTransforms.")
  var transforms: String?
  @Option(help: "Images: threads that decode them.")
  var workers = 2
  @Option(help: "Images: stop at a file that cannot be read, or skip it (counted and reported).")
  var onBadImage = "stop"
  @Option(help: "A file of lines CLASS,SUPER giving each class's super-class (by class name, or number for unnamed classes), for --batch hierarchical.")
  var superClasses: String?
  @Option(help: "Classes to train on, e.g. 0-4 (default: all).")
  var trainClasses: String?
  @Option(help: "Classes to evaluate on, e.g. 5-9 (default: every class of --test-data, else the training classes).")
  var testClasses: String?
  /// Training classes held out for validation: set by the commands that train, which declare
  /// `--validation-classes` themselves (`ValidationOption`), so that the others do not list it.
  var validationClasses: String? = nil

  /// Options with their defaults (Fashion-MNIST, every class); ArgumentParser sets parsed values.
  public init() {}

  public func validate() throws {
    guard (1...4096).contains(imageSize) else { throw ValidationError("--image-size \(imageSize) must lie in 1...4096") }
    guard channels == 1 || channels == 3 else { throw ValidationError("--channels \(channels) must be 1 or 3") }
    guard (1...256).contains(workers) else { throw ValidationError("--workers \(workers) must lie in 1...256") }
    guard BadImagePolicy(rawValue: onBadImage) != nil else { throw ValidationError("--on-bad-image \(onBadImage) must be stop or skip") }
    if let transforms { _ = try imageTransforms(transforms) }
    try Self.checkLabels(labels, flag: "--labels", for: data, dataFlag: "--data")
    try Self.checkLabels(testLabels, flag: "--test-labels", for: testData, dataFlag: "--test-data")
  }

  /// A labels file belongs to an NPY features file; CSV files and Fashion-MNIST carry their own
  /// labels, so a labels flag beside them would be silently ignored.
  static func checkLabels(_ labels: String?, flag: String, for data: String?, dataFlag: String) throws {
    guard let labels else { return }
    guard let data else { throw ValidationError("\(flag) \(labels) needs an NPY \(dataFlag) file beside it") }
    guard data.hasSuffix(".npy") else {
      throw ValidationError("\(flag) \(labels) is for an NPY \(dataFlag) file; \(data) carries its own labels")
    }
  }

  /// The transforms of image data: `--transforms`, or resize and centre-crop to `--image-size`.
  var imageTransformsText: String {
    transforms ?? "resize:size=\(imageSize * 8 / 7),center-crop:size=\(imageSize)"
  }

  /// The random transforms of training images when none are given: torchvision's
  /// random-resized crop to `--image-size` (the area share from 0.16, as PML's examples) and a flip.
  var defaultTrainTransforms: String { "random-resized-crop:size=\(imageSize),scale=0.16/1,flip" }

  func imageTransforms(_ text: String) throws -> ImageTransforms {
    do { return try ImageTransforms(parsing: text) } catch let e as DataError { throw ValidationError("--transforms: \(e.description)") }
  }

  /// Whether `path` names image files (`folder:` or `list:`).
  static func isImages(_ path: String) -> Bool { path.hasPrefix("folder:") || path.hasPrefix("list:") }

  /// The images of `folder:PATH` or `list:FILE.csv`, decoded and transformed to
  /// `--image-size`² × `--channels`; a progress line on a terminal while a folder is indexed.
  func loadImages(_ path: String) throws -> Dataset {
    try decoded(imageIndex(path))
  }

  /// The images of `folder:PATH` or `list:FILE.csv` as a data set without rows yet (labels,
  /// paths, class names and the image shape), to be decoded by `decoded(_:)` or read as training
  /// goes.
  func imageIndex(_ path: String) throws -> Dataset {
    let list: ImageList
    let tty = isatty(STDERR_FILENO) != 0
    if path.hasPrefix("folder:") {
      list = try ImageList.folder(String(path.dropFirst("folder:".count))) { n in
        if tty { FileHandle.standardError.write(Data("\rindexing \(path): \(n) images".utf8)) }
      }
      if tty { FileHandle.standardError.write(Data("\n".utf8)) }
    } else {
      list = try ImageList.csv(String(path.dropFirst("list:".count)))
    }
    var d = Dataset(features: Matrix(rows: list.paths.count, columns: 0), labels: list.labels, imageShape: (imageSize, imageSize, channels))
    d.paths = list.paths
    d.classNames = list.classNames
    return d
  }

  /// `index`'s images decoded and transformed (the evaluation transforms) into rows.
  func decoded(_ index: Dataset) throws -> Dataset {
    guard let paths = index.paths, index.features.columns == 0 else { return index }
    let list = ImageList(paths: paths, labels: index.labels, classNames: index.classNames ?? [])
    let (d, skipped) = try Dataset.images(
      list, transforms: try imageTransforms(imageTransformsText), height: imageSize, width: imageSize, channels: channels, workers: workers,
      onBadImage: BadImagePolicy(rawValue: onBadImage) ?? .stop)
    if !skipped.isEmpty {
      warn("warning: skipped \(skipped.count) of \(list.paths.count) images that could not be read (--on-bad-image skip); the first: \(skipped[0])")
    }
    var out = d
    out.ids = d.ids.map { index.ids[$0] }
    out.superLabels = index.superLabels.map { s in d.ids.map { s[$0] } }
    return out
  }

  /// The training images of `train` (an image index) as the run's loader: `trainTransforms`
  /// (random), `--workers` threads, labels as `train`'s.
  func trainingImages(_ train: Dataset, transforms text: String, seed: UInt64, cache: Bool) throws -> TrainingImages? {
    guard let paths = train.paths, train.features.columns == 0 else { return nil }
    let list = ImageList(paths: paths, labels: train.labels, classNames: train.classNames ?? [])
    let loader = try ImageLoader(
      list: list, transforms: try imageTransforms(text), height: imageSize, width: imageSize, channels: channels, workers: workers, seed: seed,
      cacheDecoded: cache)
    return TrainingImages(loader: loader, prefetch: 2, onBadImage: BadImagePolicy(rawValue: onBadImage) ?? .stop)
  }

  /// One image file as a data set of one row (label 0), transformed as the data's images.
  func loadImage(_ path: String) throws -> Dataset {
    let list = ImageList(paths: [path], labels: [0], classNames: ["query"])
    return try Dataset.images(list, transforms: try imageTransforms(imageTransformsText), height: imageSize, width: imageSize, channels: channels).dataset
  }

  func load(_ path: String, labels: String?, train: Bool) throws -> Dataset {
    if path == "fashion-mnist" { return try FashionMNIST.load(train: train, directory: dataDir) }
    if Self.isImages(path) {
      if labels != nil { throw ValidationError("--labels is for NPY data; \(path) carries its own labels") }
      return try imageIndex(path)
    }
    if path.hasSuffix(".csv") {
      let d = try CSV.dataset(path)
      if let names = d.columnNames {
        warn("note: \(path): line 1 is read as column names (\(names.prefix(4).joined(separator: ", "))\(names.count > 4 ? ", …" : ""))")
      }
      return d
    }
    if path.hasSuffix(".npy") {
      guard let labels else { throw ValidationError("--data \(path) needs --labels (an NPY or CSV file of labels)") }
      return try NPY.dataset(features: path, labels: labels)
    }
    throw ValidationError("--data \(path): expected fashion-mnist, a .csv or .npy file, folder:PATH or list:FILE.csv")
  }

  /// For a command that reads a checkpoint: the data the model was trained on and the test
  /// classes of its run fill every data flag not given in `arguments`, so that
  /// `dml evaluate --checkpoint DIR` evaluates on the run's own unseen classes. A warning is
  /// printed when the test classes include classes the model was trained on.
  func resolved(forCheckpoint checkpoint: String?, arguments: [String] = CommandLine.arguments) -> DataOptions {
    guard let checkpoint, !checkpoint.isEmpty, let (dir, _) = try? Checkpoint.verifiedLatest(in: checkpoint),
      let data = FileManager.default.contents(atPath: "\(dir)/state.json"),
      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let saved = json["configuration"] as? [String: String]
    else { return self }
    func given(_ flag: String) -> Bool { arguments.contains { $0 == flag || $0.hasPrefix(flag + "=") } }
    var r = self
    if !given("--data"), let d = saved["data"] { r.data = d }
    if !given("--train-classes"), !given("--data"), let t = saved["train_classes"] { r.trainClasses = t == "all" ? nil : t }
    if !given("--image-size"), let s = saved["image_size"].flatMap(Int.init) { r.imageSize = s }
    if !given("--channels"), let c = saved["channels"].flatMap(Int.init) { r.channels = c }
    if !given("--transforms"), let t = saved["transforms"], !t.isEmpty { r.transforms = t }
    if !given("--test-data"), !given("--data"), let t = saved["test_data"], !t.isEmpty { r.testData = t }
    if !given("--test-classes"), !given("--test-data"), let t = saved["test_classes"], !t.isEmpty { r.testClasses = t }
    // Seen classes: the run's training classes (its validation classes are among them). A
    // separate image folder or list numbers its own classes: `splitsAndClasses` compares them by
    // name instead.
    if r.testData.map(Self.isImages) == true {
      return r
    }
    if let trained = saved["train_classes"], trained != "all", let seen = try? ClassSplit.parse(trained) {
      let test = (try? r.testClasses.map { try ClassSplit.parse($0) }) ?? nil
      let overlap = test.map { seen.intersection($0) } ?? seen
      if !overlap.isEmpty {
        warn(
          "warning: \(test == nil ? "every class is evaluated, " : "")classes \(overlap.sorted().map(String.init).joined(separator: ",")) were training classes of \(checkpoint): the result is not an open-set one")
      }
    } else if saved["train_classes"] == "all", r.testData == nil {
      warn("warning: \(checkpoint) was trained on every class of \(r.data): no class is unseen")
    }
    return r
  }

  /// How `--data` is scaled before the network sees it: Fashion-MNIST's pixels are standardised
  /// as in the benchmarks; CSV and NPY values are used as given. Checkpoints record it.
  var inputScaling: String {
    data == "fashion-mnist"
      ? "fashion-mnist pixels standardised: (x/255 - \(FashionMNIST.mean)) / \(FashionMNIST.std)"
      : Self.isImages(data) ? "images: \(imageTransformsText), \(imageSize)x\(imageSize)x\(channels)" : "values as given in the file"
  }

  /// The classes of each split, and whether the test rows come from the training file.
  struct SplitClasses {
    /// Every class the training file contributes to training or validation.
    var seen: Set<Int>
    /// The test classes.
    var test: Set<Int>
    /// True when the test rows are read from the training file (no separate test file).
    var sameRows: Bool
    /// Class names by label, for image data (the training set's, then the test set's others).
    var names: [String]? = nil
    /// True for multi-label rows: `seen` and `test` are then the labels in the two files' sets.
    var multiLabel = false

    /// Refuses a test that overlaps the seen classes (open-set evaluation needs unseen ones),
    /// unless `allowed`; then returns a warning to print.
    func openSetCheck(allowed: Bool, options: DataOptions) throws -> String? {
      let overlap = seen.intersection(test).sorted()
      guard !overlap.isEmpty else { return nil }
      let list = overlap.map { c in names.map { c < $0.count ? "\(c) (\($0[c]))" : "\(c)" } ?? "\(c)" }.joined(separator: ",")
      if multiLabel {
        let what = "the test scores new rows of labels the model has seen (a closed-set evaluation; multi-label rows are not split by label)"
        if allowed { return "warning: test labels \(list) are training labels: \(what)" }
        throw ValidationError("test labels \(list) are also training labels: \(what). Pass --allow-overlap to evaluate so")
      }
      let what = sameRows
        ? "the test would score rows of \(options.data) that the model trained on"
        : "the test would score classes the model has seen (a closed-set evaluation)"
      if allowed { return "warning: test classes \(list) are training classes: \(what)" }
      throw ValidationError(
        "test classes \(list) are also training classes: \(what). Name unseen classes with --test-classes "
          + "(and --train-classes), or pass --allow-overlap to evaluate on seen classes")
    }
  }

  /// The training set (labels remapped to 0..<classes; for images, an index not decoded yet:
  /// pass it to `decoded(_:)` when its rows are needed), the validation set, and the test set.
  func splits() throws -> (train: Dataset, validation: Dataset?, test: Dataset) {
    let s = try splitsAndClasses()
    return (s.train, s.validation, s.test)
  }

  /// `splits()`, with the classes of each split.
  func splitsAndClasses() throws -> (train: Dataset, validation: Dataset?, test: Dataset, classes: SplitClasses) {
    var train = try load(data, labels: labels, train: true)
    var test: Dataset
    if let testData {
      test = try load(testData, labels: testLabels, train: false)
    } else if data == "fashion-mnist" {
      test = try load(data, labels: nil, train: false)
    } else {
      test = train
    }
    if train.labelSets != nil {
      // Multi-label rows have label sets, not classes: nothing to split by class, and the
      // evaluation needs rows of its own.
      for (flag, given) in [("--train-classes", trainClasses), ("--test-classes", testClasses), ("--validation-classes", validationClasses)]
      where given != nil {
        throw ValidationError("\(flag): \(data) has multi-label rows (labels joined by |), which are not split by class; leave \(flag) out")
      }
      guard testData != nil else {
        throw ValidationError("\(data) has multi-label rows (labels joined by |): give --test-data FILE to evaluate on rows the training never saw")
      }
      if test.labelSets == nil { test.labelSets = test.labels.map { [$0] } }
    }
    let multiLabel = train.labelSets != nil
    guard test.features.columns == train.features.columns || Self.isImages(data) || testData.map(Self.isImages) == true else {
      throw ValidationError("test data has \(test.features.columns) features, training data \(train.features.columns)")
    }
    let trainSet = try trainClasses.map { try ClassSplit.parse($0) } ?? Set(train.labels)
    // A separate test file is evaluated on all its classes unless told otherwise.
    let testSet = try testClasses.map { try ClassSplit.parse($0) } ?? (testData != nil ? Set(test.labels) : trainSet)
    var classes = SplitClasses(seen: trainSet, test: testSet, sameRows: testData == nil && data != "fashion-mnist")
    if multiLabel, let trainSets = train.labelSets, let testSets = test.labelSets {
      classes = SplitClasses(seen: Set(trainSets.joined()), test: Set(testSets.joined()), sameRows: false, multiLabel: true)
    }
    var validation: Dataset?
    if let validationClasses {
      let v = try ClassSplit.parse(validationClasses)
      guard v.isSubset(of: trainSet), v != trainSet else {
        throw ValidationError("--validation-classes \(validationClasses) must be a proper subset of the training classes")
      }
      // At most 1,000 seeded samples per validation class: MAP@R retrieves max_bin_count
      // neighbours per query, so the full 6,000 per class would dominate each epoch.
      var rng = RandomSource(seed: 0x56414C)
      var keep: [Int] = []
      for c in v.sorted() {
        var members = train.labels.indices.filter { train.labels[$0] == c }
        rng.shuffle(&members)
        keep += members.prefix(1000)
      }
      validation = train.subset(keep.sorted())
      train = train.restricted(to: trainSet.subtracting(v))
    } else {
      train = train.restricted(to: trainSet)
    }
    test = test.restricted(to: testSet)
    // Super-classes of the training classes only: the file need not name the others.
    if let superClasses {
      do { train = try train.withSuperClasses(fromFile: superClasses) } catch let e as DataError { throw ValidationError("--super-classes: \(e)") }
    }
    if testData != nil, let names = train.classNames {
      // Separate image sets number their own classes: compare them by name.
      test = test.relabeled(toClassNames: names)
      classes.test = Set(test.labels)
    }
    classes.names = test.classNames ?? train.classNames
    guard train.features.rows > 0 else { throw ValidationError("--train-classes \(trainClasses ?? "all") selects no training sample") }
    guard test.features.rows > 1 else {
      if let testClasses { throw ValidationError("--test-classes \(testClasses) selects fewer than 2 test samples") }
      throw ValidationError("the test classes (\(testSet.sorted().map(String.init).joined(separator: ","))) hold fewer than 2 samples of \(testData ?? data)")
    }
    let remapped = ClassSplit.remap(train.labels)
    train.labels = remapped.labels
    train.classNames = train.classNames.map { names in remapped.original.map { $0 < names.count ? names[$0] : "\($0)" } }
    // Images: the evaluation splits are decoded now; the training split stays an index (decoded
    // by `decoded(_:)` where a command needs its rows, or read as training goes).
    test = try decoded(test)
    if let v = validation { validation = try decoded(v) }
    guard test.features.columns == (train.features.columns > 0 ? train.features.columns : train.imageShape.map { $0.height * $0.width * $0.channels } ?? 0) else {
      throw ValidationError("test data has \(test.features.columns) features, training data \(train.features.columns > 0 ? train.features.columns : train.imageShape.map { $0.height * $0.width * $0.channels } ?? 0)")
    }
    return (train, validation, test, classes)
  }
}
