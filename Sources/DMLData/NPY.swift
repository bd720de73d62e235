import Foundation

/// NumPy `.npy` files (version 1 and 2, C order): float32, float64, int32, int64 and uint8 arrays
/// (two dimensions for features, one for labels; images may come as three).
public enum NPY {
  /// The header's dtype and shape, the element count and the data bytes, checked against each other.
  static func parse(_ path: String) throws -> (descr: String, shape: [Int], count: Int, data: ArraySlice<UInt8>) {
    let b = try readFileBytes(path)
    guard b.count >= 10, b[0] == 0x93, Array(b[1...5]) == Array("NUMPY".utf8) else {
      throw DataError("\(path): not an NPY file (bad magic)")
    }
    let major = b[6]
    let headerLength: Int, start: Int
    if major == 1 {
      headerLength = Int(b[8]) | Int(b[9]) << 8
      start = 10
    } else {
      guard b.count >= 12 else { throw DataError("\(path): truncated NPY header") }
      headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
      start = 12
    }
    guard b.count >= start + headerLength else { throw DataError("\(path): truncated NPY header") }
    let header = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
    func field(_ key: String) -> String? {
      guard let r = header.range(of: "'\(key)':") else { return nil }
      return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
    }
    guard let descr = field("descr")?.split(separator: "'").first.map(String.init) else {
      throw DataError("\(path): no dtype in header")
    }
    if field("fortran_order")?.hasPrefix("True") == true {
      throw DataError("\(path): Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
    }
    guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")"), open < close else {
      throw DataError("\(path): no shape in header")
    }
    let shape = shapeText[shapeText.index(after: open)..<close].split(separator: ",").compactMap {
      Int($0.trimmingCharacters(in: .whitespaces))
    }
    guard let count = checkedElementCount(shape), count <= b.count else {
      throw DataError("\(path): shape \(shape) is out of range for a file of \(b.count) bytes")
    }
    let data = b[(start + headerLength)...]
    let size: Int
    switch descr {
    case "<f4": size = 4
    case "<f8": size = 8
    case "|u1", "<u1": size = 1
    case "<i8": size = 8
    case "<i4": size = 4
    default: throw DataError("\(path): dtype \(descr) is not supported (float32, float64, uint8, int32, int64)")
    }
    guard data.count == count * size else {
      throw DataError("\(path): shape \(shape) needs \(count * size) bytes, file holds \(data.count)")
    }
    return (descr, shape, count, data)
  }

  /// The array as Float values with its shape.
  ///
  /// Reads little-endian float32, float64, int32 and int64 arrays and uint8 ones, of any shape.
  public static func read(_ path: String) throws -> (shape: [Int], values: [Float]) {
    let (descr, shape, count, data) = try parse(path)
    var values = [Float](repeating: 0, count: count)
    data.withUnsafeBytes { raw in
      for i in 0..<count {
        switch descr {
        case "<f4": values[i] = raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case "<f8": values[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
        case "<i8": values[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
        case "<i4": values[i] = Float(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
        default: values[i] = Float(raw[i])
        }
      }
    }
    return (shape, values)
  }

  /// A one-dimensional array of whole numbers, exactly: int32 or int64 (ids beyond 2²⁴, which
  /// Float cannot hold), or floats that are whole numbers.
  public static func readIntegers(_ path: String) throws -> [Int] {
    let (descr, shape, count, data) = try parse(path)
    guard shape.count == 1 else { throw DataError("\(path): expected a one-dimensional array, got shape \(shape)") }
    return try data.withUnsafeBytes { raw in
      try (0..<count).map { i in
        switch descr {
        case "<i8": return Int(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
        case "<i4": return Int(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
        case "|u1", "<u1": return Int(raw[i])
        default:
          let v = descr == "<f8" ? raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self) : Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self))
          guard v.isFinite, v == v.rounded(), abs(v) <= 9_007_199_254_740_992 else {
            throw DataError("\(path): value \(v) at \(i) is not a whole number")
          }
          return Int(v)
        }
      }
    }
  }

  /// Features from an NPY matrix and labels from an NPY vector or a CSV column.
  public static func dataset(features path: String, labels labelPath: String) throws -> Dataset {
    let (shape, values) = try read(path)
    guard shape.count == 2 || shape.count == 3 else { throw DataError("\(path): expected 2 or 3 dimensions, got \(shape)") }
    let n = shape[0], d = shape.dropFirst().reduce(1, *)
    guard values.allSatisfy(\.isFinite) else { throw DataError("\(path): contains NaN or infinite values") }
    let labels: [Int]
    if labelPath.hasSuffix(".csv") {
      labels = try CSV.dataset(labelPath).labels
    } else {
      let (ls, lv) = try read(labelPath)
      guard ls.count == 1 else { throw DataError("\(labelPath): labels must be one-dimensional, got \(ls)") }
      labels = try lv.enumerated().map { i, v in
        guard v.isFinite, v >= 0, v == v.rounded(), v < 2_147_483_648 else { throw DataError("\(labelPath): label \(v) at \(i) is not a non-negative integer") }
        return Int(v)
      }
    }
    guard labels.count == n else { throw DataError("\(labelPath): \(labels.count) labels for \(n) rows of \(path)") }
    return Dataset(features: Matrix(rows: n, columns: d, elements: values), labels: labels)
  }

  /// Writes a float32 matrix.
  public static func write(_ m: Matrix<Float>, to path: String) throws {
    let payload = m.withUnsafeBufferPointer { Array(UnsafeRawBufferPointer($0)) }
    try write(descr: "<f4", shape: "(\(m.rows), \(m.columns))", payload: payload, to: path)
  }

  /// Writes integers (labels, ids) as a one-dimensional int64 array.
  public static func write(integers: [Int], to path: String) throws {
    let payload = integers.map { Int64($0).littleEndian }.withUnsafeBytes { Array($0) }
    try write(descr: "<i8", shape: "(\(integers.count),)", payload: payload, to: path)
  }

  static func write(descr: String, shape: String, payload: [UInt8], to path: String) throws {
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    let length = header.utf8.count
    bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
    bytes += Array(header.utf8)
    bytes += payload
    try atomicWrite(Data(bytes), to: path)
  }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsynced, then renamed.
public func atomicWrite(_ data: Data, to path: String) throws {
  let url = URL(fileURLWithPath: path)
  let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
  guard FileManager.default.createFile(atPath: temporary.path, contents: data) else {
    throw DataError("\(path): cannot write (folder missing or not writable?)")
  }
  let fd = open(temporary.path, O_RDONLY)
  if fd >= 0 {
    fsync(fd)
    close(fd)
  }
  guard rename(temporary.path, path) == 0 else {
    try? FileManager.default.removeItem(at: temporary)
    throw DataError("\(path): cannot rename into place")
  }
}
