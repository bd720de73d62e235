import Foundation

/// CSV files: one sample per line, a label column and feature columns, with or without a header.
/// Lines may end in `\n` or `\r\n`, and the file may start with a UTF-8 byte-order mark (as
/// Excel writes it).
public enum CSV {
  /// `text` as one CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a
  /// quote or a line break.
  public static func field(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  /// Reads `path`; the label is in column `labelColumn` (default 0), every other column is a
  /// feature. A first line none of whose cells is a number is a header: its cells become the
  /// dataset's `columnNames`. A first line with some numbers is data, and an error if malformed.
  ///
  /// Multi-label rows: a label cell of several labels joined by `|` (`3|7|12`) gives the row a
  /// label set. When any row has one, every row's set is in `labelSets` (a single label is a set
  /// of one), and `labels` numbers the distinct sets (rows with the same set share a label).
  public static func dataset(_ path: String, labelColumn: Int = 0) throws -> Dataset {
    let bytes = try readFileBytes(path)
    var rows: [[Float]] = [], labels: [Int] = [], sets: [[Int]] = []
    var multiLabel = false
    var width: Int?
    var header: [String]?
    for (lineIndex, line) in textLines(bytes).enumerated() {
      if line.allSatisfy({ $0 == " " }) { continue }
      let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      let lineNumber = lineIndex + 1
      if width == nil && lineIndex == 0 && cells.allSatisfy({ Float($0) == nil }) {
        header = cells
        continue
      }
      if let w = width, cells.count != w {
        throw DataError("\(path):\(lineNumber): \(cells.count) columns, expected \(w)")
      }
      width = cells.count
      guard labelColumn < cells.count else { throw DataError("\(path):\(lineNumber): no label column \(labelColumn)") }
      let parts = cells[labelColumn].split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      var set: [Int] = []
      for part in parts {
        guard let label = Int(part) else {
          throw DataError("\(path):\(lineNumber): label '\(parts.count > 1 ? part : cells[labelColumn])' is not an integer")
        }
        guard label >= 0 else { throw DataError("\(path):\(lineNumber): label \(label) is negative") }
        set.append(label)
      }
      if parts.count > 1 { multiLabel = true }
      let label = set[0]
      var row: [Float] = []
      for (c, cell) in cells.enumerated() where c != labelColumn {
        guard let v = Float(cell), v.isFinite else {
          throw DataError("\(path):\(lineNumber): column \(c + 1) value '\(cell)' is not a finite number")
        }
        row.append(v)
      }
      rows.append(row)
      labels.append(label)
      sets.append(Array(Set(set)).sorted())
    }
    guard !rows.isEmpty else { throw DataError("\(path): no data rows\(header != nil ? " (only a header line)" : "")") }
    if let header, header.count != width {
      throw DataError("\(path):1: the header has \(header.count) columns, the data \(width!)")
    }
    if multiLabel {
      // One label per distinct set, numbered in the sets' order.
      let ids = Dictionary(uniqueKeysWithValues: Set(sets).sorted { $0.lexicographicallyPrecedes($1) }.enumerated().map { ($1, $0) })
      labels = sets.map { ids[$0]! }
    }
    var data = Dataset(features: Matrix(rows), labels: labels)
    data.columnNames = header
    if multiLabel { data.labelSets = sets }
    return data
  }
}
