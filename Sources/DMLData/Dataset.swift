@_exported import DMLCore
import CZlib
import Foundation

/// A labelled dataset in memory: one sample per row of `features`.
public struct Dataset: Sendable {
  /// The samples, one per row, as Float.
  public var features: Matrix<Float>
  /// One label per row.
  public var labels: [Int]
  /// The image shape of a row, for image data (`nil` for flat features).
  public var imageShape: (height: Int, width: Int, channels: Int)?
  /// The names of the file's columns, from a header line (CSV), or `nil`.
  public var columnNames: [String]?
  /// Each sample's row in the file it was read from (0 for the first data row), which subsets keep:
  /// the ids that search, verification and deduplication report.
  public var ids: [Int]
  /// Each sample's file, for data read from image files (`nil` otherwise); subsets keep them.
  public var paths: [String]?
  /// The class names, label by label, when the data names its classes (image folders).
  public var classNames: [String]?
  /// Each sample's super-class (`withSuperClasses(fromFile:)`), or `nil`; subsets keep them.
  public var superLabels: [Int]?
  /// Each sample's set of labels, for multi-label data (`nil` otherwise): two samples are
  /// positives when their sets share a label. `labels` then numbers the distinct sets. Subsets
  /// keep them.
  public var labelSets: [[Int]]?

  /// A dataset of `features` with one label per row; `imageShape` for image data.
  public init(features: Matrix<Float>, labels: [Int], imageShape: (height: Int, width: Int, channels: Int)? = nil) {
    precondition(features.rows == labels.count, "Dataset: \(features.rows) rows but \(labels.count) labels")
    self.features = features
    self.labels = labels
    self.imageShape = imageShape
    ids = Array(0..<labels.count)
  }

  /// The samples at `indices`, in that order.
  public func subset(_ indices: [Int]) -> Dataset {
    var d = Dataset(features: features.rows(indices), labels: indices.map { labels[$0] }, imageShape: imageShape)
    d.ids = indices.map { ids[$0] }
    d.columnNames = columnNames
    d.paths = paths.map { p in indices.map { p[$0] } }
    d.classNames = classNames
    d.superLabels = superLabels.map { s in indices.map { s[$0] } }
    d.labelSets = labelSets.map { s in indices.map { s[$0] } }
    return d
  }

  /// The samples whose label is in `classes`.
  public func restricted(to classes: Set<Int>) -> Dataset {
    subset(labels.indices.filter { classes.contains(labels[$0]) })
  }

  /// `(x − mean) / std`, elementwise.
  public mutating func normalize(mean: Float, std: Float) {
    let inverse = 1 / std
    features.apply { ($0 - mean) * inverse }
  }

  /// The distinct labels, sorted.
  public var classes: [Int] { Set(labels).sorted() }

  /// This data set with each sample's super-class (`superLabels`), read from `file`: lines
  /// `CLASS,SUPER`, where CLASS is a class's name when the data names its classes (image folders and
  /// lists), else its number, and SUPER any name (super-classes are numbered in the order of their
  /// names). Blank lines, lines starting with `#` and a first line `class,super` are skipped; a
  /// class of the file that the data lacks is ignored. Throws, naming the file and line, for a
  /// malformed line, a class given twice, or a class of the data the file does not map.
  public func withSuperClasses(fromFile file: String) throws -> Dataset {
    let lines = textLines(try readFileBytes(file))
    var superOf: [String: (name: String, line: Int)] = [:]
    for (k, raw) in lines.enumerated() {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      if k == 0 && fields.map({ $0.lowercased() }) == ["class", "super"] { continue }
      guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
        throw DataError("\(file): line \(k + 1): expected CLASS,SUPER, got '\(line)'")
      }
      if let earlier = superOf[fields[0]] {
        throw DataError("\(file): line \(k + 1): class \(fields[0]) was given a super-class on line \(earlier.line) already")
      }
      superOf[fields[0]] = (fields[1], k + 1)
    }
    func name(_ label: Int) -> String { classNames.map { label >= 0 && label < $0.count ? $0[label] : "\(label)" } ?? "\(label)" }
    var superName: [Int: String] = [:]
    for label in Set(labels).sorted() {
      guard let s = superOf[name(label)] else {
        throw DataError("\(file): class \(name(label)) of the data has no super-class (add a line \(name(label)),SUPER)")
      }
      superName[label] = s.name
    }
    let index = Dictionary(uniqueKeysWithValues: Set(superName.values).sorted().enumerated().map { ($1, $0) })
    var out = self
    out.superLabels = labels.map { index[superName[$0]!]! }
    return out
  }
}

/// An error reading data, naming the file and what is wrong.
public struct DataError: Error, CustomStringConvertible, Equatable {
  /// The message, naming the file and what is wrong.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// The lines of a text file's bytes: a UTF-8 byte-order mark is dropped, and lines end at `\n`,
/// `\r\n` (Windows, Excel) or a lone `\r`. Line `k` of the result is line `k + 1` of the file.
public func textLines(_ bytes: [UInt8]) -> [Substring] {
  var text = String(decoding: bytes, as: UTF8.self)
  if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
  // `\r\n` is one Character in Swift, and a newline: splitting on `isNewline` handles all three.
  var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
  if lines.last?.isEmpty == true { lines.removeLast() }  // the final line's terminator
  return lines
}

/// Reads a whole file, transparently gunzipping `.gz` files (zlib).
public func readFileBytes(_ path: String) throws -> [UInt8] {
  guard FileManager.default.fileExists(atPath: path) else { throw DataError("\(path): no such file") }
  if path.hasSuffix(".gz") {
    guard let file = gzopen(path, "rb") else { throw DataError("\(path): cannot open") }
    defer { gzclose(file) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
      if n < 0 { throw DataError("\(path): corrupt gzip data") }
      if n == 0 { break }
      out.append(contentsOf: chunk[0..<Int(n)])
    }
    return out
  }
  guard let data = FileManager.default.contents(atPath: path) else { throw DataError("\(path): cannot read") }
  return [UInt8](data)
}
