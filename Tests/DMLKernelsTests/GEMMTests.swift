import DMLKernels
import Testing

/// A naive triple loop, the oracle for every GEMM form.
func naiveGemm(
  _ a: Matrix<Double>, _ ta: Bool, _ b: Matrix<Double>, _ tb: Bool, alpha: Double, beta: Double,
  _ c: Matrix<Double>
) -> Matrix<Double> {
  let m = ta ? a.columns : a.rows, k = ta ? a.rows : a.columns
  let n = tb ? b.rows : b.columns
  var r = Matrix<Double>(rows: m, columns: n)
  for i in 0..<m {
    for j in 0..<n {
      var s = 0.0
      for p in 0..<k { s += (ta ? a[p, i] : a[i, p]) * (tb ? b[j, p] : b[p, j]) }
      r[i, j] = alpha * s + (beta == 0 ? 0 : beta * c[i, j])
    }
  }
  return r
}

func randomMatrix(_ rows: Int, _ columns: Int, _ rng: inout RandomSource) -> Matrix<Double> {
  var m = Matrix<Double>(rows: rows, columns: columns)
  m.apply { _ in rng.normal() }
  return m
}

@Suite("GEMM through BLAS")
struct GEMMTests {
  @Test(
    "every transpose and accumulate form matches the naive product",
    arguments: [(false, false), (true, false), (false, true), (true, true)])
  func forms(transposes: (Bool, Bool)) {
    var rng = RandomSource(seed: 7)
    let (ta, tb) = transposes
    let (m, n, k) = (5, 7, 3)
    let a = randomMatrix(ta ? k : m, ta ? m : k, &rng)
    let b = randomMatrix(tb ? n : k, tb ? k : n, &rng)
    for (alpha, beta) in [(1.0, 0.0), (0.5, 0.0), (2.0, 1.0), (-1.0, 0.25)] {
      var c = randomMatrix(m, n, &rng)
      let expected = naiveGemm(a, ta, b, tb, alpha: alpha, beta: beta, c)
      gemm(a, transposeA: ta, b, transposeB: tb, alpha: alpha, beta: beta, into: &c)
      var diff = c
      diff.add(expected, scaledBy: -1)
      #expect(c.rows == m && c.columns == n)
      #expect(diff.maxAbs() < 1e-12, "ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta)")
    }
  }

  @Test("Float GEMM agrees with Double")
  func floatMatchesDouble() {
    var rng = RandomSource(seed: 3)
    let a = randomMatrix(33, 17, &rng), b = randomMatrix(17, 9, &rng)
    let exact = matmul(a, b)
    let single = matmul(a.converted(to: Float.self), b.converted(to: Float.self))
    var diff = single.converted(to: Double.self)
    diff.add(exact, scaledBy: -1)
    #expect(diff.maxAbs() < 1e-4)
    #expect(exact.maxAbs() > 1)
  }

  @Test("beta 0 ignores C's old values (NaN) inside the m × n block and leaves the rest of its rows alone")
  func betaZeroBlock() {
    var rng = RandomSource(seed: 12)
    let (m, n, k, ldc) = (4, 6, 5, 9)
    let a = randomMatrix(m, k, &rng), b = randomMatrix(k, n, &rng)
    let expected = matmul(a, b)
    var c = [Double](repeating: .nan, count: m * ldc)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          Double.blasGemm(
            transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: k,
            b: pb.baseAddress!, ldb: n, beta: 0, c: pc.baseAddress!, ldc: ldc)
        }
      }
    }
    for i in 0..<m {
      for j in 0..<ldc {
        if j < n {
          #expect(abs(c[i * ldc + j] - expected[i, j]) < 1e-12, "C[\(i), \(j)]")
        } else {
          #expect(c[i * ldc + j].isNaN, "C[\(i), \(j)] is outside the block")
        }
      }
    }
  }

  @Test("an empty inner dimension gives beta * C")
  func emptyInner() {
    let a = Matrix<Double>(rows: 2, columns: 0), b = Matrix<Double>(rows: 0, columns: 3)
    var c = Matrix<Double>(rows: 2, columns: 3, repeating: 4)
    gemm(a, b, beta: 0.5, into: &c)
    #expect(c == Matrix(rows: 2, columns: 3, repeating: 2))
    gemm(a, b, into: &c)
    #expect(c == Matrix(rows: 2, columns: 3, repeating: 0))
  }

  @Test("BLAS reports its core; once the library has used it, OpenBLAS runs on one thread")
  func blasInfo() {
    #expect(!BLAS.coreName.isEmpty && BLAS.coreName != "unknown")
    _ = matmul(Matrix<Float>(rows: 2, columns: 2, repeating: 1), Matrix<Float>(rows: 2, columns: 2, repeating: 1))
    #expect(BLAS.threadCount == 1)
    #expect(BLAS.initialThreadCount >= 1)
    #expect(ComputeContext.automatic.threads == BLAS.initialThreadCount)
  }

  @Test(
    "A large product split over threads equals the unsplit one bit for bit, by rows, every transposition",
    arguments: [(m: 700, n: 200, k: 300), (m: 1000, n: 64, k: 300), (m: 450, n: 700, k: 65)], [false, true])
  func splitProduct(shape: (m: Int, n: Int, k: Int), transposed: Bool) {
    var rng = RandomSource(seed: 5)
    let (m, n, k) = shape
    var a = transposed ? Matrix<Float>(rows: k, columns: m) : Matrix<Float>(rows: m, columns: k)
    var b = transposed ? Matrix<Float>(rows: n, columns: k) : Matrix<Float>(rows: k, columns: n)
    a.apply { _ in Float(rng.normal() as Double) }
    b.apply { _ in Float(rng.normal() as Double) }
    // The product is split: pieces start at multiples of the alignment, each above the
    // small-matrix size, and cover every row once.
    let pieces = gemmPieces(m: m, n: n, k: k, compute: ComputeContext(threads: 3))
    #expect(pieces.count >= 2, "\(pieces)")
    #expect(pieces.first?.lowerBound == 0 && pieces.last?.upperBound == m && zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    #expect(pieces.allSatisfy { $0.lowerBound % gemmSplitAlignment == 0 && $0.count * n * k >= gemmMinimumPieceWork })
    var one = Matrix<Float>(), three = Matrix<Float>()
    gemm(a, transposeA: transposed, b, transposeB: transposed, into: &one, compute: ComputeContext(threads: 1))
    gemm(a, transposeA: transposed, b, transposeB: transposed, into: &three, compute: ComputeContext(threads: 3))
    #expect(one.rows == m && one.columns == n)
    #expect(one == three)
    // Accumulating (beta 1) splits the same way.
    var twice = one
    gemm(a, transposeA: transposed, b, transposeB: transposed, beta: 1, into: &twice, compute: ComputeContext(threads: 3))
    var expected = one
    gemm(a, transposeA: transposed, b, transposeB: transposed, beta: 1, into: &expected, compute: ComputeContext(threads: 1))
    #expect(twice == expected)
    #expect(twice != one)
  }

  /// `gemm(alpha: 0.5)` of random operands of `shape` on 1, 2 and 3 threads: equal bit for bit,
  /// equal to a Double product element by element, and accumulating (`beta` 2) the same across
  /// threads.
  static func checkAcrossThreads(shape: (m: Int, n: Int, k: Int), transposed: Bool, seed: UInt64) {
    var rng = RandomSource(seed: seed)
    let (m, n, k) = shape
    var a = transposed ? Matrix<Float>(rows: k, columns: m) : Matrix<Float>(rows: m, columns: k)
    var b = transposed ? Matrix<Float>(rows: n, columns: k) : Matrix<Float>(rows: k, columns: n)
    a.apply { _ in Float(rng.normal() as Double) }
    b.apply { _ in Float(rng.normal() as Double) }
    func product(threads: Int) -> Matrix<Float> {
      var c = Matrix<Float>()
      gemm(a, transposeA: transposed, b, transposeB: transposed, alpha: 0.5, into: &c, compute: ComputeContext(threads: threads))
      return c
    }
    let one = product(threads: 1)
    #expect(one == product(threads: 2) && one == product(threads: 3))
    let ad = a.converted(to: Double.self), bd = b.converted(to: Double.self)
    var worst = 0.0
    for i in stride(from: 0, to: m, by: 7) {
      for j in stride(from: 0, to: n, by: 5) {
        var sum = 0.0
        for p in 0..<k { sum += (transposed ? ad[p, i] : ad[i, p]) * (transposed ? bd[j, p] : bd[p, j]) }
        worst = max(worst, abs(Double(one[i, j]) - 0.5 * sum))
      }
    }
    #expect(worst < 1e-3, "\(worst)")
    // Accumulating: C ← 0.5·op(A)op(B) + 2·C.
    var twice = one, expected = one
    gemm(a, transposeA: transposed, b, transposeB: transposed, alpha: 0.5, beta: 2, into: &twice, compute: ComputeContext(threads: 2))
    gemm(a, transposeA: transposed, b, transposeB: transposed, alpha: 0.5, beta: 2, into: &expected, compute: ComputeContext(threads: 1))
    #expect(twice == expected && abs(twice[3, 5] - 3 * one[3, 5]) <= 1e-4 * max(1, abs(one[3, 5])))
  }

  @Test(
    "A wide product (too few rows to split) is computed as its transpose, split by the transpose's rows: equal across threads, and correct",
    arguments: [(m: 90, n: 700, k: 300), (m: 128, n: 2048, k: 128)], [false, true])
  func wideProduct(shape: (m: Int, n: Int, k: Int), transposed: Bool) {
    #expect(gemmComputesTransposed(m: shape.m, n: shape.n, k: shape.k))
    #expect(gemmPieces(m: shape.n, n: shape.m, k: shape.k, compute: ComputeContext(threads: 2)).count == 2)
    Self.checkAcrossThreads(shape: shape, transposed: transposed, seed: 7)
  }

  @Test(
    "A product with few rows and columns and a long inner dimension is the sum of two halves: the same across threads, and correct",
    arguments: [(m: 256, n: 128, k: 1024), (m: 300, n: 200, k: 700)], [false, true])
  func innerSplitProduct(shape: (m: Int, n: Int, k: Int), transposed: Bool) {
    #expect(gemmInnerSplit(m: shape.m, n: shape.n, k: shape.k) != nil && !gemmComputesTransposed(m: shape.m, n: shape.n, k: shape.k))
    #expect(gemmPieces(m: shape.m, n: shape.n, k: shape.k, compute: ComputeContext(threads: 2)) == [0..<shape.m])
    Self.checkAcrossThreads(shape: shape, transposed: transposed, seed: 11)
  }

  @Test("a split's pieces take near-equal shares of all the rows, the remainder rows counted")
  func balancedPieces() {
    // 1,024 rows: 5 aligned blocks and 64 rows more; 576 + 448, not 384 + 640.
    #expect(gemmPieces(m: 1024, n: 256, k: 128, compute: ComputeContext(threads: 2)) == [0..<576, 576..<1024])
    #expect(gemmInnerSplit(m: 1024, n: 256, k: 128) == nil && gemmInnerSplit(m: 128, n: 128, k: 256) == nil)
  }

  @Test("small or narrow products are not split: below the minimum work, fewer than two aligned blocks, or one thread")
  func unsplitProducts() {
    #expect(gemmPieces(m: 128, n: 128, k: 64, compute: ComputeContext(threads: 4)) == [0..<128])
    #expect(gemmPieces(m: 300, n: 2000, k: 300, compute: ComputeContext(threads: 4)) == [0..<300])
    #expect(!gemmComputesTransposed(m: 128, n: 128, k: 64) && !gemmComputesTransposed(m: 5000, n: 500, k: 500))
    #expect(gemmPieces(m: 5000, n: 500, k: 500, compute: ComputeContext(threads: 1)) == [0..<5000])
    // Narrow rows: each piece needs several blocks to reach the minimum work.
    let narrow = gemmPieces(m: 4000, n: 8, k: 600, compute: ComputeContext(threads: 8))
    #expect(narrow.count >= 2 && narrow.allSatisfy { $0.count * 8 * 600 >= gemmMinimumPieceWork })
  }
}
