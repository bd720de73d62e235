import ArgumentParser
import Foundation
import MetricLearning

/// Where the data comes from and which classes each split uses.
public struct DataOptions: ParsableArguments {
  @Option(help: "fashion-mnist, a CSV file (label, features…) or an NPY file of features.")
  var data = "fashion-mnist"
  @Option(help: "Labels for an NPY --data file (NPY or CSV).")
  var labels: String?
  @Option(help: "Folder holding the Fashion-MNIST IDX files.")
  var dataDir = FashionMNIST.defaultDirectory
  @Option(help: "A separate test file (CSV or NPY); default: Fashion-MNIST's test split, else --data.")
  var testData: String?
  @Option(help: "Labels for an NPY --test-data file.")
  var testLabels: String?
  @Option(help: "Classes to train on, e.g. 0-4 (default: all).")
  var trainClasses: String?
  @Option(help: "Classes to evaluate on, e.g. 5-9 (default: the training classes).")
  var testClasses: String?
  @Option(help: "Training classes held out for validation and early stopping, e.g. 3-4 (at most 1,000 samples each).")
  var validationClasses: String?

  /// Options with their defaults (Fashion-MNIST, every class); ArgumentParser sets parsed values.
  public init() {}

  func load(_ path: String, labels: String?, train: Bool) throws -> Dataset {
    if path == "fashion-mnist" { return try FashionMNIST.load(train: train, directory: dataDir) }
    if path.hasSuffix(".csv") { return try CSV.dataset(path) }
    if path.hasSuffix(".npy") {
      guard let labels else { throw ValidationError("--data \(path) needs --labels (an NPY or CSV file of labels)") }
      return try NPY.dataset(features: path, labels: labels)
    }
    throw ValidationError("--data \(path): expected fashion-mnist, a .csv or a .npy file")
  }

  /// The training set (labels remapped to 0..<classes), the validation set, and the test set.
  func splits() throws -> (train: Dataset, validation: Dataset?, test: Dataset) {
    var train = try load(data, labels: labels, train: true)
    var test: Dataset
    if let testData {
      test = try load(testData, labels: testLabels, train: false)
    } else if data == "fashion-mnist" {
      test = try load(data, labels: nil, train: false)
    } else {
      test = train
    }
    guard test.features.columns == train.features.columns else {
      throw ValidationError("test data has \(test.features.columns) features, training data \(train.features.columns)")
    }
    let trainSet = try trainClasses.map { try ClassSplit.parse($0) } ?? Set(train.labels)
    let testSet = try testClasses.map { try ClassSplit.parse($0) } ?? trainSet
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
    guard train.features.rows > 0 else { throw ValidationError("--train-classes \(trainClasses ?? "all") selects no training sample") }
    guard test.features.rows > 1 else { throw ValidationError("--test-classes \(testClasses ?? "") selects fewer than 2 test samples") }
    train.labels = ClassSplit.remap(train.labels).labels
    return (train, validation, test)
  }
}
