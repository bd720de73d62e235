/// A dense row-major matrix with value semantics.
///
/// Row `i` holds `columns` contiguous elements. Image batches are stored one image per row in
/// NHWC order (height, width, channels), so a convolution's output rows are already the next
/// layer's input rows.
///
/// The storage keeps its capacity when the matrix shrinks: `resize(rows:columns:)` reallocates
/// only when a shape needs more elements than were ever held, so buffers reused across training
/// steps allocate nothing after the first step.
@frozen
public struct Matrix<Scalar: DMLScalar>: @unchecked Sendable {
  @usableFromInline internal var storage: [Scalar]
  @usableFromInline internal var _rows: Int
  @usableFromInline internal var _columns: Int
  /// The number of rows.
  @inlinable public var rows: Int { _rows }
  /// The number of columns (elements per row).
  @inlinable public var columns: Int { _columns }

  /// An empty 0 × 0 matrix. It allocates nothing.
  @inlinable
  public init() {
    storage = []
    _rows = 0
    _columns = 0
  }

  /// A `rows × columns` matrix filled with `value`.
  @inlinable
  public init(rows: Int, columns: Int, repeating value: Scalar = 0) {
    precondition(rows >= 0 && columns >= 0, "Matrix shape must be non-negative: \(rows)x\(columns)")
    storage = [Scalar](repeating: value, count: rows * columns)
    _rows = rows
    _columns = columns
  }

  /// A matrix over `elements`, read in row-major order.
  @inlinable
  public init(rows: Int, columns: Int, elements: [Scalar]) {
    precondition(
      elements.count == rows * columns,
      "Matrix of \(rows)x\(columns) needs \(rows * columns) elements, got \(elements.count)")
    storage = elements
    _rows = rows
    _columns = columns
  }

  /// A matrix from a list of rows of equal length.
  @inlinable
  public init(_ rowList: [[Scalar]]) {
    let columns = rowList.first?.count ?? 0
    for (i, row) in rowList.enumerated() {
      precondition(row.count == columns, "Row \(i) has \(row.count) elements, expected \(columns)")
    }
    self.init(rows: rowList.count, columns: columns, elements: rowList.flatMap { $0 })
  }

  /// The number of elements, `rows * columns`.
  @inlinable public var count: Int { rows * columns }

  /// The shape as a pair.
  @inlinable public var shape: (rows: Int, columns: Int) { (rows, columns) }

  /// The element at row `i`, column `j`.
  @inlinable
  public subscript(i: Int, j: Int) -> Scalar {
    get {
      precondition(i >= 0 && i < rows && j >= 0 && j < columns, "Index (\(i), \(j)) out of \(rows)x\(columns)")
      return storage[i * columns + j]
    }
    set {
      precondition(i >= 0 && i < rows && j >= 0 && j < columns, "Index (\(i), \(j)) out of \(rows)x\(columns)")
      storage[i * columns + j] = newValue
    }
  }

  /// The elements in row-major order, as a new array.
  @inlinable public var elements: [Scalar] { Array(storage[0..<count]) }

  /// Row `i`, as a new array.
  @inlinable
  public func row(_ i: Int) -> [Scalar] {
    precondition(i >= 0 && i < rows, "Row \(i) out of \(rows)")
    return Array(storage[(i * columns)..<((i + 1) * columns)])
  }

  /// The rows at `indices`, in that order, as a new matrix.
  public func rows(_ indices: [Int]) -> Matrix {
    var out = Matrix(rows: indices.count, columns: columns)
    let d = columns
    withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        for (r, i) in indices.enumerated() {
          precondition(i >= 0 && i < rows, "Row \(i) out of \(rows)")
          guard d > 0 else { continue }
          dst.baseAddress!.advanced(by: r * d).update(from: src.baseAddress! + i * d, count: d)
        }
      }
    }
    return out
  }

  /// Changes the shape, keeping the capacity. The contents are unspecified afterwards unless
  /// `zeroed` is true; storage grows only when the new shape needs more elements than it holds.
  @inlinable
  public mutating func resize(rows: Int, columns: Int, zeroed: Bool = false) {
    precondition(rows >= 0 && columns >= 0, "Matrix shape must be non-negative: \(rows)x\(columns)")
    let needed = rows * columns
    if storage.count < needed {
      storage = [Scalar](repeating: 0, count: needed)
    } else if zeroed {
      storage.withUnsafeMutableBufferPointer { p in
        p.baseAddress!.update(repeating: 0, count: needed)
      }
    }
    _rows = rows
    _columns = columns
  }

  /// Makes this matrix a copy of `other`, reusing this matrix's storage when it is large enough.
  @inlinable
  public mutating func assign(_ other: Matrix) {
    resize(rows: other.rows, columns: other.columns)
    let n = count
    guard n > 0 else { return }
    other.withUnsafeBufferPointer { src in
      withUnsafeMutableBufferPointer { dst in
        dst.baseAddress!.update(from: src.baseAddress!, count: n)
      }
    }
  }

  /// Calls `body` with the `count` elements in row-major order.
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R)
    rethrows -> R
  {
    let n = count
    return try storage.withUnsafeBufferPointer { p in
      try body(UnsafeBufferPointer(rebasing: p[0..<n]))
    }
  }

  /// Calls `body` with the `count` elements in row-major order, for writing.
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R
  ) rethrows -> R {
    let n = count
    return try storage.withUnsafeMutableBufferPointer { p in
      try body(UnsafeMutableBufferPointer(rebasing: p[0..<n]))
    }
  }

  /// Reinterprets the elements with a new shape of the same element count.
  @inlinable
  public mutating func reshape(rows: Int, columns: Int) {
    precondition(
      rows * columns == count,
      "Cannot reshape \(self.rows)x\(self.columns) to \(rows)x\(columns)")
    _rows = rows
    _columns = columns
  }

  /// This matrix converted to another scalar type.
  @inlinable
  public func converted<Other: DMLScalar>(to: Other.Type = Other.self) -> Matrix<Other> {
    Matrix<Other>(rows: rows, columns: columns, elements: storage[0..<count].map { Other($0) })
  }

  /// The transpose, as a new matrix.
  @inlinable
  public var transposed: Matrix {
    var t = Matrix()
    transpose(into: &t)
    return t
  }

  /// Writes the transpose into `t`, resized to `columns × rows` (its storage only grows, so a
  /// buffer reused every step allocates nothing after the first). A large matrix is split into
  /// pieces of rows over `compute`'s threads (each piece writes its own columns of `t`).
  @inlinable
  public func transpose(into t: inout Matrix, compute: ComputeContext = .serial) {
    t.resize(rows: columns, columns: rows)
    let (m, n) = (rows, columns)
    guard m > 0 && n > 0 else { return }
    // In 16 × 16 tiles, so that both sides stay in the cache lines a tile touches.
    let pieces = compute.chunkCount(rows: (m + 15) / 16, workPerRow: 16 * n)
    withUnsafeBufferPointer { source in
      t.withUnsafeMutableBufferPointer { target in
        let a = source.baseAddress!, b = target.baseAddress!
        BatchParallelism.forEachChunk(rows: (m + 15) / 16, chunks: pieces) { _, tiles in
        var i0 = 16 * tiles.lowerBound
        let end = Swift.min(m, 16 * tiles.upperBound)
        while i0 < end {
          let i1 = Swift.min(end, i0 + 16)
          var j0 = 0
          while j0 < n {
            let j1 = Swift.min(n, j0 + 16)
            for i in i0..<i1 {
              let row = a + i * n
              for j in j0..<j1 { b[j * m + i] = row[j] }
            }
            j0 = j1
          }
          i0 = i1
        }
        }
      }
    }
  }
}

extension Matrix: Equatable {
  /// Whether the two matrices have the same shape and the same elements.
  @inlinable
  public static func == (lhs: Matrix, rhs: Matrix) -> Bool {
    lhs.rows == rhs.rows && lhs.columns == rhs.columns
      && lhs.storage[0..<lhs.count] == rhs.storage[0..<rhs.count]
  }
}

extension Matrix: CustomStringConvertible {
  /// The scalar type and shape, then the first 8 rows and columns, with `…` for the rest.
  public var description: String {
    var lines: [String] = []
    for i in 0..<min(rows, 8) {
      let shown = (0..<min(columns, 8)).map { "\(storage[i * columns + $0])" }
      lines.append("[" + shown.joined(separator: ", ") + (columns > 8 ? ", …]" : "]"))
    }
    if rows > 8 { lines.append("…") }
    return "Matrix<\(Scalar.typeName)>(\(rows)x\(columns))\n" + lines.joined(separator: "\n")
  }
}
