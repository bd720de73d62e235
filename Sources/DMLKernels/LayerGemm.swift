import CBLAS
import CGemm

/// Where the layers' products go: this package's AVX-512 kernels (`CGemm`) or BLAS.
///
/// On a CPU with AVX-512, Debian's OpenBLAS runs its SSE3 kernels unless `OPENBLAS_CORETYPE` is
/// set before the process starts, and even its AVX-512 kernels reach only about a third of the
/// core's peak on the narrow products of a training step. `CGemm` keeps a 6 × 64 tile of the
/// product in registers and reaches 110–150 GFLOP/s on one core on those shapes (measured alone),
/// against 55–85 for OpenBLAS with `OPENBLAS_CORETYPE=SkylakeX` and about 15 without it.
///
/// `Linear`, `Conv2D` and `ConvBlock`'s direct first block use it through
/// `DMLScalar.layerGemm`, in `Float`, when their `ComputeContext` says `.kernels`: by default in an
/// optimised build on a CPU with AVX-512 (unoptimised C runs these kernels at about 2 GFLOP/s).
/// Tests choose the engine through the context, so debug test runs check the kernels too. Search
/// and evaluation stay on BLAS.
public enum LayerGemm {
  /// Which engine the layers use.
  public enum Engine: String, Sendable, Hashable, CaseIterable {
    /// This package's AVX-512 kernels (a portable loop on a CPU without AVX-512).
    case kernels
    /// OpenBLAS.
    case blas
  }

  /// Whether this CPU runs the kernels (AVX-512F).
  public static var kernelsAvailable: Bool { dml_sgemm_available() != 0 }

  /// Whether `A Bᵀ` (B transposed) goes to the kernels too: computed as `(B Aᵀ)ᵀ` (a batch's rows
  /// copied transposed, 60–95 GFLOP/s) or as dot products (50–70), they beat OpenBLAS's SSE3
  /// kernels (about 15 GFLOP/s) but not clearly its AVX-512 ones (80–85).
  public static let transposedB: Bool = {
    let core = BLAS.coreName.lowercased()
    return !["skylakex", "cooperlake", "sapphirerapids"].contains(core)
  }()

  /// `C = op(A) op(B)` (`beta` 0) or `C += op(A) op(B)` (`beta` 1), row-major, through the
  /// kernels when `engine` is `.kernels` and they take the shape (B's columns a multiple of 16
  /// unless B is transposed), else through BLAS.
  @inlinable
  package static func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, engine: Engine
  ) {
    if engine == .kernels,
      transposeB ? (transposedB && !transposeA) : n % 16 == 0,
      kernelGemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b,
        ldb: ldb, beta: beta, c: c, ldc: ldc)
    {
      return
    }
    Float.blasGemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }

  /// The kernels alone, whatever `engine` says: `C = op(A) op(B)` (`beta` 0) or `C += op(A)
  /// op(B)` (`beta` 1). Returns false, leaving C untouched, when they do not take the arguments
  /// (another `beta`, or B's columns not a multiple of 16 where the kernel needs that). On a CPU
  /// without AVX-512 a portable loop computes the product.
  @inlinable
  package static func kernelGemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) -> Bool {
    guard beta == 0 || beta == 1 else { return false }
    return dml_sgemm(
      m, n, k, a, transposeA ? 1 : lda, transposeA ? lda : 1, b, ldb, transposeB ? 1 : 0, c, ldc,
      beta == 1 ? 1 : 0) == 0
  }
}
