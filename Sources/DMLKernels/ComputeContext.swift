import CGemm

/// How a computation may use the machine: how many threads split its work, and which engine
/// computes the layers' products.
///
/// A context is a value handed to the code that computes: `Trainer`, `TrainingRun`, a network's
/// forward and backward passes, `gemm`. Nothing in a hot path reads the environment or a global
/// switch, and nothing changes a process-wide setting during a step: OpenBLAS runs on one thread
/// from the library's first product on (see `BLAS`), and the library splits work over
/// `threads` itself, so the parallelism of a step is exactly what its context says.
///
/// `ComputeContext.automatic` uses the threads OpenBLAS was started with (`OPENBLAS_NUM_THREADS`,
/// else the cores) and the fastest engine of this build and CPU. The command line builds its
/// context from `--threads` and the `DML_GEMM` environment variable.
///
/// Results are deterministic for a given context: chunks are fixed, contiguous pieces of the
/// rows. Some results are the same whatever the thread count (`gemm`, `Linear`, the elementwise
/// layers); a convolution's weight gradient sums per chunk, then across chunks in order, so it
/// depends on the thread count in its last bits.
public struct ComputeContext: Sendable, Hashable, CustomStringConvertible {
  /// How many threads a batch's work is split over (at least 1).
  public var threads: Int
  /// Which engine computes the layers' `Float` products.
  public var engine: LayerGemm.Engine
  /// When true, every split runs `threads` chunks (one row at least per chunk), however little
  /// work each chunk gets. Tests use it to compare split and unsplit passes on small batches.
  public var splitsAlways: Bool

  /// A context of `threads` threads (1 or more) and `engine`.
  public init(threads: Int, engine: LayerGemm.Engine = ComputeContext.automatic.engine, splitsAlways: Bool = false) {
    self.threads = Swift.max(1, threads)
    self.engine = engine
    self.splitsAlways = splitsAlways
  }

  /// The threads OpenBLAS was started with and the fastest engine: the kernels in an optimised
  /// build on a CPU with AVX-512, else BLAS (unoptimised C runs the kernels at about 2 GFLOP/s).
  public static let automatic = ComputeContext(
    threads: BLAS.initialThreadCount,
    engine: dml_sgemm_available() != 0 && dml_sgemm_optimized() != 0 ? .kernels : .blas)

  /// One thread, the automatic engine.
  public static var serial: ComputeContext { ComputeContext(threads: 1) }

  /// This context with another engine.
  public func with(engine: LayerGemm.Engine) -> ComputeContext {
    var copy = self
    copy.engine = engine
    return copy
  }

  /// For reports: `"2 threads, kernels"`.
  public var description: String {
    "\(threads) thread\(threads == 1 ? "" : "s"), \(engine.rawValue)" + (splitsAlways ? ", split always" : "")
  }

  /// How many chunks to split `rows` rows into when each row carries `workPerRow` units of work
  /// (multiply-adds, or elements for a pass over memory): `threads`, limited so that every chunk
  /// has at least `minimumWork` units (unless `splitsAlways`) and one row. 1 means "run in place".
  @inlinable
  public func chunkCount(rows: Int, workPerRow: Int, minimumWork: Int = 1 << 17) -> Int {
    guard threads > 1, rows > 1 else { return 1 }
    if splitsAlways { return Swift.min(threads, rows) }
    let total = rows * Swift.max(1, workPerRow)
    return Swift.max(1, Swift.min(threads, rows, total / Swift.max(1, minimumWork)))
  }
}
