import CBLAS

/// `C = alpha * op(A) * op(B) + beta * C`, through BLAS.
///
/// `op(X)` is `X` or its transpose. With `beta == 0`, `c` is resized to the product's shape and
/// its previous contents are ignored; otherwise `c` must already have that shape and is
/// accumulated into.
///
/// Products of at least `BatchParallelism.splitGemmMinimum` multiply-adds are split over
/// `compute`'s threads by rows of C, one single-threaded BLAS call per piece. Each element of C is
/// the same dot product, in the same order, whatever the split, with OpenBLAS's Haswell, Zen,
/// SkylakeX, Cooperlake, Sandybridge and Prescott kernels (checked on all of them): pieces start at
/// multiples of `gemmSplitAlignment` rows, and each holds at least `gemmMinimumPieceWork`
/// multiply-adds, above the size where OpenBLAS switches to its small-matrix kernels, which round
/// differently. Columns are never split: OpenBLAS's register blocking runs along them (C's
/// columns are its kernels' M dimension, row-major C being a column-major Cᵀ), and a piece that
/// starts inside a block rounds differently at any alignment. A product with too few rows to
/// split and many columns (`gemmComputesTransposed`) is computed as `Cᵀ`, split by its rows, and
/// transposed into C; one with too few rows and columns and a long inner dimension
/// (`gemmInnerSplit`) as the sum of two products over halves of the inner dimension, whatever the
/// threads.
///
/// - Parameters:
///   - a: the left operand, `m × k` after `op`.
///   - transposeA: whether `op(A)` is `Aᵀ`.
///   - b: the right operand, `k × n` after `op`.
///   - transposeB: whether `op(B)` is `Bᵀ`.
///   - alpha: the scale of the product.
///   - beta: the scale of the previous `c`.
///   - c: the `m × n` result.
///   - compute: the threads a large product may use.
@inlinable
public func gemm<T: DMLScalar>(
  _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false,
  alpha: T = 1, beta: T = 0, into c: inout Matrix<T>, compute: ComputeContext = .automatic
) {
  let m = transposeA ? a.columns : a.rows
  let k = transposeA ? a.rows : a.columns
  let kb = transposeB ? b.columns : b.rows
  let n = transposeB ? b.rows : b.columns
  precondition(
    k == kb,
    "gemm: inner dimensions differ: op(A) is \(m)x\(k), op(B) is \(kb)x\(n)")
  if beta == 0 {
    c.resize(rows: m, columns: n)
  } else {
    precondition(
      c.rows == m && c.columns == n,
      "gemm: C is \(c.rows)x\(c.columns), the product is \(m)x\(n)")
  }
  guard m > 0, n > 0 else { return }
  if k == 0 {
    c.withUnsafeMutableBufferPointer { p in
      for i in p.indices { p[i] = beta == 0 ? 0 : beta * p[i] }
    }
    return
  }
  a.withUnsafeBufferPointer { pa in
    b.withUnsafeBufferPointer { pb in
      c.withUnsafeMutableBufferPointer { pc in
        let (pa, pb, pc) = (pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
        let (lda, ldb) = (a.columns, b.columns)
        if gemmComputesTransposed(m: m, n: n, k: k) {
          // Too few rows to split, many columns: Cᵀ = op(B)ᵀ op(A)ᵀ, split by its rows, then
          // transposed into C. The choice depends on the shape alone, so every thread count
          // computes the same dot products.
          let pieces = gemmPieces(m: n, n: m, k: k, compute: compute)
          let t = UnsafeMutablePointer<T>.allocate(capacity: n * m)
          defer { t.deallocate() }
          BatchParallelism.forEachChunk(rows: pieces.count, chunks: pieces.count) { _, range in
            let rows = pieces[range.lowerBound]
            T.blasGemm(
              transposeA: !transposeB, transposeB: !transposeA, m: rows.count, n: m, k: k,
              alpha: alpha, a: pb + rows.lowerBound * (transposeB ? ldb : 1), lda: ldb,
              b: pa, ldb: lda, beta: 0, c: t + rows.lowerBound * m, ldc: m)
          }
          for i in 0..<m {
            let row = pc + i * n
            if beta == 0 {
              for j in 0..<n { row[j] = t[j * m + i] }
            } else {
              for j in 0..<n { row[j] = t[j * m + i] + beta * row[j] }
            }
          }
          return
        }
        if let split = gemmInnerSplit(m: m, n: n, k: k) {
          // C ← alpha·op(A)[:, ..<split]·op(B)[..<split, :] + beta·C, then + the other half's
          // product, computed beside it into a buffer.
          let t = UnsafeMutablePointer<T>.allocate(capacity: m * n)
          defer { t.deallocate() }
          BatchParallelism.forEachChunk(rows: 2, chunks: Swift.min(2, compute.threads)) { _, range in
            for half in range {
              let k0 = half == 0 ? 0 : split, count = half == 0 ? split : k - split
              T.blasGemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: count, alpha: alpha,
                a: pa + k0 * (transposeA ? lda : 1), lda: lda, b: pb + k0 * (transposeB ? 1 : ldb), ldb: ldb,
                beta: half == 0 ? beta : 0, c: half == 0 ? pc : t, ldc: n)
            }
          }
          for i in 0..<(m * n) { pc[i] += t[i] }
          return
        }
        let pieces = gemmPieces(m: m, n: n, k: k, compute: compute)
        if pieces.count == 1 {
          T.blasGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
            a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: n)
        } else {
          // Rows of C: rows of op(A).
          BatchParallelism.forEachChunk(rows: pieces.count, chunks: pieces.count) { _, range in
            let rows = pieces[range.lowerBound]
            T.blasGemm(
              transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n, k: k,
              alpha: alpha, a: pa + rows.lowerBound * (transposeA ? 1 : lda), lda: lda,
              b: pb, ldb: ldb, beta: beta, c: pc + rows.lowerBound * n, ldc: n)
          }
        }
      }
    }
  }
}

/// The multiple of rows at which `gemm` splits a large product.
public let gemmSplitAlignment = 192

/// The fewest multiply-adds of one piece of a split product: above OpenBLAS's small-matrix
/// threshold (10⁶ on SkylakeX), so that every piece runs the kernels the whole product runs.
public let gemmMinimumPieceWork = 1 << 21

/// The rows of C that `gemm` computes in each piece of an `m × n` product with inner dimension
/// `k`: one piece below `BatchParallelism.splitGemmMinimum` multiply-adds, else up to
/// `compute.threads` pieces that start at multiples of `gemmSplitAlignment`, each of at least
/// `gemmMinimumPieceWork` multiply-adds (the remainder rows join the last piece).
@inlinable
public func gemmPieces(m: Int, n: Int, k: Int, compute: ComputeContext) -> [Range<Int>] {
  let step = gemmSplitAlignment, blocks = m / step
  let total = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k).partialValue
  guard total >= BatchParallelism.splitGemmMinimum, blocks >= 2, compute.threads > 1, n > 0, k > 0 else { return [0..<m] }
  // Blocks a piece needs to reach the minimum work; pieces of ⌊blocks / count⌋ or more blocks.
  let blockWork = step * n * k
  let perPiece = (gemmMinimumPieceWork + blockWork - 1) / blockWork
  let count = Swift.min(compute.threads, blocks / perPiece)
  guard count > 1 else { return [0..<m] }
  // Boundaries at the aligned rows nearest to equal shares of all m rows (the remainder rows
  // counted, so the last piece is not the largest by them), when every piece keeps its minimum;
  // else equal shares of the whole blocks, the remainder joining the last piece.
  let nearest = (0...count).map { c in c == count ? m : Int((Double(c * m) / Double(count * step)).rounded()) * step }
  if zip(nearest, nearest.dropFirst()).allSatisfy({ $1 - $0 >= perPiece * step }) {
    return (0..<count).map { nearest[$0]..<nearest[$0 + 1] }
  }
  return (0..<count).map { c in
    let range = BatchParallelism.rows(ofChunk: c, chunks: count, rows: blocks)
    return (range.lowerBound * step)..<(c == count - 1 ? m : range.upperBound * step)
  }
}

/// Where `gemm` splits the inner dimension of an `m × n` product with inner dimension `k`, or `nil`:
/// a product of at least `BatchParallelism.splitGemmMinimum` multiply-adds whose rows and columns
/// are both too few to split (fewer than two aligned blocks each), such as a class-weight gradient
/// `Gᵀ X` over a large batch, is computed as two products over `0..<split` and `split..<k`, added.
/// A property of the shape alone: with one thread the two run one after the other, so every
/// thread count gives the same sums (which differ from an unsplit product's in rounding).
@inlinable
public func gemmInnerSplit(m: Int, n: Int, k: Int) -> Int? {
  let total = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k).partialValue
  guard total >= BatchParallelism.splitGemmMinimum, m / gemmSplitAlignment < 2, n / gemmSplitAlignment < 2,
    k >= 2 * gemmSplitAlignment
  else { return nil }
  return (k / 2) / 16 * 16
}

/// Whether `gemm` computes an `m × n` product with inner dimension `k` as `Cᵀ = op(B)ᵀ op(A)ᵀ`,
/// split by the rows of `Cᵀ`: when the product is large enough to split but has fewer than two
/// aligned blocks of rows and at least two of columns (a batch of 128 rows against 2,048
/// references). A property of the shape alone, whatever the threads.
@inlinable
public func gemmComputesTransposed(m: Int, n: Int, k: Int) -> Bool {
  let total = m.multipliedReportingOverflow(by: n).partialValue.multipliedReportingOverflow(by: k).partialValue
  return total >= BatchParallelism.splitGemmMinimum && m / gemmSplitAlignment < 2 && n / gemmSplitAlignment >= 2
}

/// The product `op(A) * op(B)` as a new matrix.
@inlinable
public func matmul<T: DMLScalar>(
  _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false,
  compute: ComputeContext = .automatic
) -> Matrix<T> {
  var c = Matrix<T>()
  gemm(a, transposeA: transposeA, b, transposeB: transposeB, into: &c, compute: compute)
  return c
}

extension Matrix {
  /// The inverse of this square matrix, by LAPACK's LU solver (`?gesv` with the identity on the
  /// right); `nil` when the matrix is singular (a zero pivot) or not square.
  public func inverse() -> Matrix? {
    guard rows == columns else { return nil }
    var n = Int32(rows)
    guard n > 0 else { return Matrix(rows: 0, columns: 0) }
    // Row-major storage read as column-major is the transpose: solving Aᵀ X = I gives
    // X = (A⁻¹)ᵀ in column-major order, which is A⁻¹ read row-major.
    var a = elements
    var b = [Scalar](repeating: 0, count: rows * rows)
    for i in 0..<rows { b[i * rows + i] = 1 }
    var pivots = [Int32](repeating: 0, count: rows)
    var info: Int32 = 0
    var nrhs = n, lda = n, ldb = n
    if Scalar.self == Double.self {
      a.withUnsafeMutableBufferPointer { ap in
        b.withUnsafeMutableBufferPointer { bp in
          ap.withMemoryRebound(to: Double.self) { ad in
            bp.withMemoryRebound(to: Double.self) { bd in
              dgesv_(&n, &nrhs, ad.baseAddress, &lda, &pivots, bd.baseAddress, &ldb, &info)
            }
          }
        }
      }
    } else if Scalar.self == Float.self {
      a.withUnsafeMutableBufferPointer { ap in
        b.withUnsafeMutableBufferPointer { bp in
          ap.withMemoryRebound(to: Float.self) { af in
            bp.withMemoryRebound(to: Float.self) { bf in
              sgesv_(&n, &nrhs, af.baseAddress, &lda, &pivots, bf.baseAddress, &ldb, &info)
            }
          }
        }
      }
    } else {
      return nil
    }
    guard info == 0 else { return nil }
    return Matrix(rows: rows, columns: rows, elements: b)
  }
}
