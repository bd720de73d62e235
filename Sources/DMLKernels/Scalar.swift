import CBLAS
import CGemm
@_exported import RealModule

/// Matrix products: BLAS for every product, and the layers' products through the engine a
/// `ComputeContext` names.
public protocol GEMMScalar {
  /// Row-major GEMM, `C = alpha * op(A) * op(B) + beta * C`, forwarded to BLAS.
  static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Self, a: UnsafePointer<Self>, lda: Int,
    b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

  /// Row-major `C = op(A) op(B)` (`beta` 0) or `C += op(A) op(B)` (`beta` 1) for the layers'
  /// products: `Float` goes through `LayerGemm` (this package's AVX-512 kernels when `engine`
  /// is `.kernels`), `Double` through BLAS.
  static func layerGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int, engine: LayerGemm.Engine)
}

/// Vectorised elementwise kernels. Most are written once, over the vector type `Lanes`, in an
/// extension (`dot`, `reluBackward`, `maximumInPlace`, `squaredDistanceRow`,
/// `divideWherePositive`, `routeMaximum`; Kernels+SIMD.swift); the two below differ by type.
public protocol LaneScalar: BinaryFloatingPoint {
  /// The vector of the elementwise kernels: `SIMD16<Float>`, `SIMD8<Double>`.
  associatedtype Lanes: KernelLanes where Lanes.Element == Self

  /// `p[j] = √p[j]`, vectorised (the scalar form calls libm for its errno branch).
  static func squareRootInPlace(_ p: UnsafeMutablePointer<Self>, count: Int)

  /// `p[j] = exp(p[j])` over `count` elements. `Float` uses an 8-lane polynomial (Cephes'
  /// `expf`, within 2 ulp of libm; exactly 0 below −87.34, +∞ above 88.72, NaN kept); `Double`
  /// calls libm per element, so the golden tests in `Double` see libm's values.
  static func expInPlace(_ p: UnsafeMutablePointer<Self>, count: Int)
}

/// Pooling's window kernels, with a `Lanes` implementation each; `Float` replaces both with
/// AVX-512 code where the CPU has it (the same values).
public protocol PoolingScalar: LaneScalar {
  /// Max-pooling after ReLU for one window over `count` channels, vectorised: window position
  /// `r` holds its values at `base + offsets[r]`; `y[c] = max(0, max_r value_r[c])`, and
  /// `routes[c]` is the first `r` holding that maximum, or 255 when it is not positive (where
  /// ReLU passes no gradient).
  static func reluPoolWindow(
    _ base: UnsafePointer<Self>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Self>, _ routes: UnsafeMutablePointer<UInt8>, count: Int)

  /// Pooling's gradient along its routes, for one window over `count` channels:
  /// `row[offsets[r] + c] += g[c]` where `routes[c] == r` (255, no route, matches no position).
  static func routeGradient(
    _ g: UnsafePointer<Self>, routes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, positions: Int,
    into row: UnsafeMutablePointer<Self>, count: Int)
}

/// Batch normalisation's passes over a piece of the channels, in C (`dml_batchnorm_forward_f32`
/// and the others), where the channels fill the vector lanes.
public protocol BatchNormScalar {
  /// The forward pass over channels `lo..<hi` of `n` rows of `c` channels: the batch's (or, when
  /// not `training`, the running) mean and inverse standard deviation into `mean` and `inverse`,
  /// the running estimates moved by `momentum` when training, and `y = γ (x − mean) · inverse + β`.
  static func batchNormForward(
    _ x: UnsafePointer<Self>, rows n: Int, channels c: Int, range: Range<Int>, training: Bool,
    epsilon: Self, momentum: Self, mean: UnsafeMutablePointer<Self>, inverse: UnsafeMutablePointer<Self>,
    runningMean: UnsafeMutablePointer<Self>, runningVariance: UnsafeMutablePointer<Self>,
    gamma: UnsafePointer<Self>, beta: UnsafePointer<Self>, into y: UnsafeMutablePointer<Self>)

  /// The backward pass over channels `lo..<hi`: `dGamma`, `dBeta`, and the input gradient into
  /// `gx` unless it is nil; the normalised values are recomputed from `x`, `mean` and `inverse`.
  /// `scratch` holds `3c` values.
  static func batchNormBackward(
    _ g: UnsafePointer<Self>, input x: UnsafePointer<Self>, rows n: Int, channels c: Int, range: Range<Int>,
    mean: UnsafePointer<Self>, inverse: UnsafePointer<Self>, gamma: UnsafePointer<Self>, training: Bool,
    dGamma: UnsafeMutablePointer<Self>, dBeta: UnsafeMutablePointer<Self>, scratch: UnsafeMutablePointer<Self>,
    inputGradient gx: UnsafeMutablePointer<Self>?)
}

/// The element type of every matrix: `Float` for training, `Double` for exact tests.
///
/// It gathers small capabilities: real functions (`exp`, `log`, `erf`, …) from swift-numerics,
/// binary floating-point conversions, products (`GEMMScalar`), vectorised elementwise kernels
/// (`LaneScalar`), pooling's window kernels (`PoolingScalar`) and batch normalisation's passes
/// (`BatchNormScalar`).
public protocol DMLScalar: Real, BinaryFloatingPoint, SIMDScalar, Sendable, Codable, GEMMScalar, PoolingScalar, BatchNormScalar
where Self.RawSignificand: FixedWidthInteger {
  /// A short name for reports (`"f32"`, `"f64"`).
  static var typeName: String { get }
}

extension PoolingScalar {
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
  public typealias Lanes = FloatLanes16
  /// Row-major single-precision GEMM, `C = alpha * op(A) * op(B) + beta * C`, through
  /// `cblas_sgemm`.
  @inlinable
  public static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    _ = BLAS.singleThreaded
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
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, engine: LayerGemm.Engine
  ) {
    LayerGemm.sgemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b,
      ldb: ldb, beta: beta, c: c, ldc: ldc, engine: engine)
  }
  /// Batch normalisation's forward pass, through `dml_batchnorm_forward_f32`.
  @inlinable
  public static func batchNormForward(
    _ x: UnsafePointer<Float>, rows n: Int, channels c: Int, range: Range<Int>, training: Bool,
    epsilon: Float, momentum: Float, mean: UnsafeMutablePointer<Float>, inverse: UnsafeMutablePointer<Float>,
    runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>
  ) {
    dml_batchnorm_forward_f32(
      x, n, c, range.lowerBound, range.upperBound, training ? 1 : 0, epsilon, momentum, mean, inverse,
      runningMean, runningVariance, gamma, beta, y)
  }
  /// Batch normalisation's backward pass, through `dml_batchnorm_backward_f32`.
  @inlinable
  public static func batchNormBackward(
    _ g: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows n: Int, channels c: Int, range: Range<Int>,
    mean: UnsafePointer<Float>, inverse: UnsafePointer<Float>, gamma: UnsafePointer<Float>, training: Bool,
    dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    inputGradient gx: UnsafeMutablePointer<Float>?
  ) {
    dml_batchnorm_backward_f32(
      g, x, n, c, range.lowerBound, range.upperBound, mean, inverse, gamma, training ? 1 : 0, dGamma, dBeta,
      scratch, gx)
  }
  /// The short name for reports, `"f32"`.
  public static var typeName: String { "f32" }
}

extension Double: DMLScalar {
  public typealias Lanes = DoubleLanes8
  /// Row-major double-precision GEMM, `C = alpha * op(A) * op(B) + beta * C`, through
  /// `cblas_dgemm`.
  @inlinable
  public static func blasGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Double, a: UnsafePointer<Double>, lda: Int,
    b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    _ = BLAS.singleThreaded
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
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int, engine: LayerGemm.Engine
  ) {
    blasGemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
  /// Batch normalisation's forward pass, through `dml_batchnorm_forward_f64`.
  @inlinable
  public static func batchNormForward(
    _ x: UnsafePointer<Double>, rows n: Int, channels c: Int, range: Range<Int>, training: Bool,
    epsilon: Double, momentum: Double, mean: UnsafeMutablePointer<Double>, inverse: UnsafeMutablePointer<Double>,
    runningMean: UnsafeMutablePointer<Double>, runningVariance: UnsafeMutablePointer<Double>,
    gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>, into y: UnsafeMutablePointer<Double>
  ) {
    dml_batchnorm_forward_f64(
      x, n, c, range.lowerBound, range.upperBound, training ? 1 : 0, epsilon, momentum, mean, inverse,
      runningMean, runningVariance, gamma, beta, y)
  }
  /// Batch normalisation's backward pass, through `dml_batchnorm_backward_f64`.
  @inlinable
  public static func batchNormBackward(
    _ g: UnsafePointer<Double>, input x: UnsafePointer<Double>, rows n: Int, channels c: Int, range: Range<Int>,
    mean: UnsafePointer<Double>, inverse: UnsafePointer<Double>, gamma: UnsafePointer<Double>, training: Bool,
    dGamma: UnsafeMutablePointer<Double>, dBeta: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>,
    inputGradient gx: UnsafeMutablePointer<Double>?
  ) {
    dml_batchnorm_backward_f64(
      g, x, n, c, range.lowerBound, range.upperBound, mean, inverse, gamma, training ? 1 : 0, dGamma, dBeta,
      scratch, gx)
  }
  /// The short name for reports, `"f64"`.
  public static var typeName: String { "f64" }
}

extension DMLScalar {
  /// `Int(self)`, the value truncated toward zero, for a finite value within `Int`'s range; written
  /// for `Float` and `Double` directly, as the generic conversion is several times slower in a loop.
  @inlinable @inline(__always)
  public var truncatedInt: Int {
    if Self.self == Float.self { return Int(unsafeBitCast(self, to: Float.self)) }
    if Self.self == Double.self { return Int(unsafeBitCast(self, to: Double.self)) }
    return Int(self)
  }
}
