import Foundation

/// CSV files: one sample per line, a label column and feature columns, with or without a header.
public enum CSV {
  /// Reads `path`; the label is in column `labelColumn` (default 0), every other column is a
  /// feature. A first line that does not parse as numbers is taken as a header.
  public static func dataset(_ path: String, labelColumn: Int = 0) throws -> Dataset {
    let bytes = try readFileBytes(path)
    let text = String(decoding: bytes, as: UTF8.self)
    var rows: [[Float]] = [], labels: [Int] = []
    var width: Int?
    for (lineIndex, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
      if line.allSatisfy({ $0 == " " }) { continue }
      let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      let lineNumber = lineIndex + 1
      if width == nil && lineIndex == 0 && cells.contains(where: { Float($0) == nil }) { continue }  // header
      if let w = width, cells.count != w {
        throw DataError("\(path):\(lineNumber): \(cells.count) columns, expected \(w)")
      }
      width = cells.count
      guard labelColumn < cells.count else { throw DataError("\(path):\(lineNumber): no label column \(labelColumn)") }
      guard let label = Int(cells[labelColumn]) else {
        throw DataError("\(path):\(lineNumber): label '\(cells[labelColumn])' is not an integer")
      }
      guard label >= 0 else { throw DataError("\(path):\(lineNumber): label \(label) is negative") }
      var row: [Float] = []
      for (c, cell) in cells.enumerated() where c != labelColumn {
        guard let v = Float(cell), v.isFinite else {
          throw DataError("\(path):\(lineNumber): column \(c + 1) value '\(cell)' is not a finite number")
        }
        row.append(v)
      }
      rows.append(row)
      labels.append(label)
    }
    guard !rows.isEmpty else { throw DataError("\(path): no data rows") }
    return Dataset(features: Matrix(rows), labels: labels)
  }
}
