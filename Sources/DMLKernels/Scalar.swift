import CBLAS
import CGemm
@_exported import RealModule

/// The element type of every matrix: `Float` for training, `Double` for exact tests.
///
/// It gathers what the kernels need: real functions (`exp`, `log`, `erf`, …) from swift-numerics,
/// binary floating-point conversions, SIMD lanes, and a BLAS entry point for GEMM.
public protocol DMLScalar: Real, BinaryFloatingPoint, SIMDScalar, Sendable, Codable
where Self.RawSignificand: FixedWidthInteger {
  /// Row-major GEMM, `C = alpha * op(A) * op(B) + beta * C`, forwarded to BLAS.
  static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Self, a: UnsafePointer<Self>, lda: Int,
    b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

  /// Row-major `C = op(A) op(B)` (`beta` 0) or `C += op(A) op(B)` (`beta` 1) for the layers'
  /// products: `Float` goes through `LayerGemm` (this package's AVX-512 kernels where they run),
  /// `Double` through BLAS.
  static func layerGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

  /// `gx = x > 0 ? g : 0` over `count` elements, vectorised (see Kernels+SIMD.swift).
  static func reluBackward(
    _ x: UnsafePointer<Self>, _ g: UnsafePointer<Self>, _ gx: UnsafeMutablePointer<Self>, count: Int)

  /// `y = max(y, x)` over `count` elements, vectorised (see Kernels+SIMD.swift).
  static func maximumInPlace(_ y: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>, count: Int)

  /// `row[j] = max(querySquare + referenceSquares[j] − 2 row[j], 0)`: a row of squared distances
  /// from a row of dot products, vectorised.
  static func squaredDistanceRow(
    _ row: UnsafeMutablePointer<Self>, querySquare: Self, referenceSquares: UnsafePointer<Self>,
    count: Int)

  /// `p[j] = √p[j]`, vectorised (the scalar form calls libm for its errno branch).
  static func squareRootInPlace(_ p: UnsafeMutablePointer<Self>, count: Int)

  /// `out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0`, vectorised.
  static func divideWherePositive(
    _ numerator: UnsafePointer<Self>, _ denominator: UnsafePointer<Self>,
    _ out: UnsafeMutablePointer<Self>, count: Int)

  /// Max-pooling's gradient routing for one window position over `count` channels: where
  /// `x == y` (the window's maximum) and `done` is still 0, adds `g` to `gx` and sets `done` to 1,
  /// so the first maximum of each window gets the gradient. Vectorised.
  static func routeMaximum(
    _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ g: UnsafePointer<Self>,
    _ gx: UnsafeMutablePointer<Self>, _ done: UnsafeMutablePointer<Self>, count: Int)

  /// Max-pooling after ReLU for one window over `count` channels, vectorised: window position
  /// `r` holds its values at `base + offsets[r]`; `y[c] = max(0, max_r value_r[c])`, and
  /// `routes[c]` is the first `r` holding that maximum, or 255 when it is not positive (where
  /// ReLU passes no gradient).
  static func reluPoolWindow(
    _ base: UnsafePointer<Self>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Self>, _ routes: UnsafeMutablePointer<UInt8>, count: Int)

  /// Pooling's gradient along its routes, for one window over `count` channels:
  /// `row[offsets[r] + c] += g[c]` where `routes[c] == r` (255, no route, matches no position).
  /// `Float` uses AVX-512 where the CPU has it.
  static func routeGradient(
    _ g: UnsafePointer<Self>, routes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, positions: Int,
    into row: UnsafeMutablePointer<Self>, count: Int)

  /// `Σ p[k]·q[k]` over `count` elements, vectorised: lane-wise partial sums, then the lanes
  /// added (so the order of the additions differs from a serial loop's).
  static func dot(_ p: UnsafePointer<Self>, _ q: UnsafePointer<Self>, count: Int) -> Self

  /// `p[j] = exp(p[j])` over `count` elements. `Float` uses an 8-lane polynomial (Cephes'
  /// `expf`, within 2 ulp of libm; exactly 0 below −87.34, +∞ above 88.72, NaN kept); `Double`
  /// calls libm per element, so the golden tests in `Double` see libm's values.
  static func expInPlace(_ p: UnsafeMutablePointer<Self>, count: Int)

  /// A short name for reports (`"f32"`, `"f64"`).
  static var typeName: String { get }
}

extension DMLScalar {
  /// `routeGradient` as a scalar loop: `Double`'s, and `Float`'s without AVX-512.
  @inlinable
  public static func routeGradient(
    _ g: UnsafePointer<Self>, routes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, positions: Int,
    into row: UnsafeMutablePointer<Self>, count: Int
  ) {
    routeGradientLoop(g, routes: routes, offsets: offsets, positions: positions, into: row, count: count)
  }

  /// The scalar loop of `routeGradient`.
  @inlinable
  static func routeGradientLoop(
    _ g: UnsafePointer<Self>, routes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, positions: Int,
    into row: UnsafeMutablePointer<Self>, count: Int
  ) {
    for c in 0..<count where Int(routes[c]) < positions { row[offsets[Int(routes[c])] + c] += g[c] }
  }
}

@inlinable
func cblasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

/// With `beta == 0`, clears the `m × n` block of `c` (row stride `ldc`) and returns 1, else
/// returns `beta`. OpenBLAS clears C with its own scalar loop (`sgemm_beta`) before accumulating
/// the product onto it; `memset` does the same faster, and accumulating onto the zeros gives the
/// same values.
@inlinable
func clearedForGemm<T: DMLScalar>(beta: T, c: UnsafeMutablePointer<T>, m: Int, n: Int, ldc: Int) -> T {
  guard beta == 0, m > 0, n > 0 else { return beta }
  if ldc == n {
    c.update(repeating: 0, count: m * n)
  } else {
    for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
  }
  return 1
}

extension Float: DMLScalar {
  /// Row-major single-precision GEMM, `C = alpha * op(A) * op(B) + beta * C`, through
  /// `cblas_sgemm`.
  @inlinable
  public static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB),
      blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
      clearedForGemm(beta: beta, c: c, m: m, n: n, ldc: ldc), c, blasint(ldc))
  }
  /// Pooling's gradient along its routes, in AVX-512 where the CPU has it (the same sums).
  @inlinable
  public static func routeGradient(
    _ g: UnsafePointer<Float>, routes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, positions: Int,
    into row: UnsafeMutablePointer<Float>, count: Int
  ) {
    if dml_route_gradient(g, routes, offsets, positions, row, count) != 0 { return }
    routeGradientLoop(g, routes: routes, offsets: offsets, positions: positions, into: row, count: count)
  }

  /// The layers' products, through `LayerGemm.sgemm`.
  @inlinable
  public static func layerGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    LayerGemm.sgemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b,
      ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
  /// The short name for reports, `"f32"`.
  public static var typeName: String { "f32" }
}

extension Double: DMLScalar {
  /// Row-major double-precision GEMM, `C = alpha * op(A) * op(B) + beta * C`, through
  /// `cblas_dgemm`.
  @inlinable
  public static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Double, a: UnsafePointer<Double>, lda: Int,
    b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    cblas_dgemm(
      CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB),
      blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
      clearedForGemm(beta: beta, c: c, m: m, n: n, ldc: ldc), c, blasint(ldc))
  }
  /// The layers' products, through `cblas_dgemm`.
  @inlinable
  public static func layerGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    blasGemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
  /// The short name for reports, `"f64"`.
  public static var typeName: String { "f64" }
}
