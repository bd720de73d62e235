/// `C = alpha * op(A) * op(B) + beta * C`, through BLAS.
///
/// `op(X)` is `X` or its transpose. With `beta == 0`, `c` is resized to the product's shape and
/// its previous contents are ignored; otherwise `c` must already have that shape and is
/// accumulated into.
///
/// Products under `BatchParallelism.threadedGemmMinimum` multiply-adds run on one OpenBLAS
/// thread.
///
/// - Parameters:
///   - a: the left operand, `m × k` after `op`.
///   - transposeA: whether `op(A)` is `Aᵀ`.
///   - b: the right operand, `k × n` after `op`.
///   - transposeB: whether `op(B)` is `Bᵀ`.
///   - alpha: the scale of the product.
///   - beta: the scale of the previous `c`.
///   - c: the `m × n` result.
@inlinable
public func gemm<T: DMLScalar>(
  _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false,
  alpha: T = 1, beta: T = 0, into c: inout Matrix<T>
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
        let product = {
          T.blasGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
            alpha: alpha, a: pa.baseAddress!, lda: a.columns,
            b: pb.baseAddress!, ldb: b.columns,
            beta: beta, c: pc.baseAddress!, ldc: n)
        }
        if m * n * k < BatchParallelism.threadedGemmMinimum {
          BatchParallelism.serially(product)
        } else {
          product()
        }
      }
    }
  }
}

/// The product `op(A) * op(B)` as a new matrix.
@inlinable
public func matmul<T: DMLScalar>(
  _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false
) -> Matrix<T> {
  var c = Matrix<T>()
  gemm(a, transposeA: transposeA, b, transposeB: transposeB, into: &c)
  return c
}
