/// IDX files (the MNIST format), gzipped or not: a header `00 00 type ndims`, `ndims` big-endian
/// UInt32 sizes, then the data. Only unsigned bytes (type 0x08) are used by the datasets here.
public enum IDX {
  /// The sizes and the raw bytes of an unsigned-byte IDX file.
  public static func read(_ path: String) throws -> (shape: [Int], bytes: ArraySlice<UInt8>) {
    let b = try readFileBytes(path)
    guard b.count >= 4, b[0] == 0, b[1] == 0 else { throw DataError("\(path): not an IDX file (bad magic)") }
    guard b[2] == 0x08 else { throw DataError("\(path): IDX type 0x\(String(b[2], radix: 16)) is not unsigned bytes") }
    let dims = Int(b[3])
    guard dims >= 1, b.count >= 4 + 4 * dims else { throw DataError("\(path): truncated IDX header") }
    var shape: [Int] = []
    for d in 0..<dims {
      let o = 4 + 4 * d
      shape.append(Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]))
    }
    guard let count = checkedElementCount(shape) else { throw DataError("\(path): header sizes \(shape) are out of range") }
    let start = 4 + 4 * dims
    guard b.count - start == count else {
      throw DataError("\(path): header says \(shape) = \(count) values, file holds \(b.count - start)")
    }
    return (shape, b[start...])
  }

  /// Images and labels from a pair of IDX files, pixels scaled to `[0, 1]`.
  public static func dataset(images: String, labels: String) throws -> Dataset {
    let (shape, pixels) = try read(images)
    let (labelShape, labelBytes) = try read(labels)
    guard shape.count == 3 else { throw DataError("\(images): expected images of shape N×H×W, got \(shape)") }
    guard labelShape == [shape[0]] else {
      throw DataError("\(labels): \(labelShape) labels for \(shape[0]) images in \(images)")
    }
    let (n, h, w) = (shape[0], shape[1], shape[2])
    var features = Matrix<Float>(rows: n, columns: h * w)
    features.withUnsafeMutableBufferPointer { dst in
      pixels.withUnsafeBufferPointer { src in
        for i in 0..<(n * h * w) { dst[i] = Float(src[i]) / 255 }
      }
    }
    return Dataset(features: features, labels: labelBytes.map(Int.init), imageShape: (h, w, 1))
  }
}

/// Fashion-MNIST from Debian's `dataset-fashion-mnist` (or any folder with the same four files).
public enum FashionMNIST {
  /// Where Debian's package installs the files.
  public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
  /// The normalisation of the benchmarks: `(x − 0.2860) / 0.3530`.
  public static let mean: Float = 0.2860, std: Float = 0.3530
  /// The names of the ten classes, by label.
  public static let classNames = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
  ]

  /// The training (60,000) or test (10,000) split, normalised.
  ///
  /// Reads `<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz` (prefix `train` or
  /// `t10k`) in `directory`; with `normalized` false, pixels stay in `[0, 1]`.
  public static func load(train: Bool, directory: String = defaultDirectory, normalized: Bool = true) throws -> Dataset {
    let prefix = train ? "train" : "t10k"
    var d = try IDX.dataset(
      images: "\(directory)/\(prefix)-images-idx3-ubyte.gz", labels: "\(directory)/\(prefix)-labels-idx1-ubyte.gz")
    if normalized { d.normalize(mean: mean, std: std) }
    return d
  }
}
