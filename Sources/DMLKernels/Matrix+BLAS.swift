/// `C = alpha * op(A) * op(B) + beta * C`, through BLAS.
///
/// `op(X)` is `X` or its transpose. With `beta == 0`, `c` is resized to the product's shape and
/// its previous contents are ignored; otherwise `c` must already have that shape and is
/// accumulated into.
///
/// Products of at least `BatchParallelism.splitGemmMinimum` multiply-adds are split over
/// `compute`'s threads: the longer side of C in contiguous pieces, one single-threaded BLAS call
/// each. Each element of C is the same dot product, in the same order, whatever the split.
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
        let chunks = m * n * k < BatchParallelism.splitGemmMinimum
          ? 1 : compute.chunkCount(rows: Swift.max(m, n), workPerRow: 1, minimumWork: 1)
        if chunks == 1 {
          T.blasGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
            a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: n)
        } else if m >= n {
          // Rows of C: rows of op(A).
          BatchParallelism.forEachChunk(rows: m, chunks: chunks) { _, rows in
            T.blasGemm(
              transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n, k: k,
              alpha: alpha, a: pa + rows.lowerBound * (transposeA ? 1 : lda), lda: lda,
              b: pb, ldb: ldb, beta: beta, c: pc + rows.lowerBound * n, ldc: n)
          }
        } else {
          // Columns of C: columns of op(B).
          BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, columns in
            T.blasGemm(
              transposeA: transposeA, transposeB: transposeB, m: m, n: columns.count, k: k,
              alpha: alpha, a: pa, lda: lda,
              b: pb + columns.lowerBound * (transposeB ? ldb : 1), ldb: ldb,
              beta: beta, c: pc + columns.lowerBound, ldc: n)
          }
        }
      }
    }
  }
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
