import CBLAS
import Dispatch

/// Splits a batch's rows over the cores, for layers whose work is independent per row or image
/// (`Linear`, `Conv2D`, `ReLU`, `MaxPool2D`).
///
/// One level of parallelism at a time: while the chunks run, OpenBLAS is set to one thread, so a
/// GEMM inside a chunk runs on that chunk's core; the previous thread count is restored after.
/// On a shared 2-core machine, OpenBLAS threads *and* a split of our own on top of them would
/// compete. The chunk count follows OpenBLAS's thread count, the parallelism the process was
/// started with (`OPENBLAS_NUM_THREADS`), so a one-thread run stays on one core.
///
/// Chunks are fixed, contiguous pieces of the rows, so results are deterministic for a given
/// thread count.
public enum BatchParallelism {
  /// How many chunks to split `rows` rows into when each row carries `workPerRow` units of work
  /// (multiply-adds, or elements for a pass over memory): OpenBLAS's thread count, limited so
  /// that every chunk has at least `minimumWork` units. 1 means "run in place".
  @inlinable
  public static func chunkCount(rows: Int, workPerRow: Int, minimumWork: Int = 1 << 17) -> Int {
    if let forced = forcedChunks { return Swift.max(1, Swift.min(forced, rows)) }
    let threads = Int(openblas_get_num_threads())
    guard threads > 1, rows > 1 else { return 1 }
    let total = rows * Swift.max(1, workPerRow)
    return Swift.max(1, Swift.min(threads, rows, total / Swift.max(1, minimumWork)))
  }

  /// When set (for the current task, with `$forcedChunks.withValue`), the chunk count every
  /// layer uses, whatever the thread count and the amount of work (at most one chunk per row):
  /// tests use it to check that split and unsplit passes agree, on any machine.
  @TaskLocal public static var forcedChunks: Int?

  /// The rows of chunk `chunk` out of `chunks`: contiguous pieces that differ by at most one row.
  @inlinable
  public static func rows(ofChunk chunk: Int, chunks: Int, rows: Int) -> Range<Int> {
    (chunk * rows / chunks)..<((chunk + 1) * rows / chunks)
  }

  /// GEMMs with fewer multiply-adds than this run on one OpenBLAS thread (`serially`): a
  /// training step's small products (a batch's 128 × 128 score matrix and its gradient). Threaded,
  /// they gain nothing, and each one keeps OpenBLAS's idle worker spinning (`sched_yield`) for
  /// about 0.1 s after it, on a core the next layer's chunks need.
  public static let threadedGemmMinimum = 1 << 24

  /// Runs `body` with OpenBLAS on one thread, restoring its thread count after (the same
  /// switch as `forEachChunk`'s).
  @inlinable
  public static func serially<R>(_ body: () -> R) -> R {
    let saved = openblas_get_num_threads()
    if saved > 1 { openblas_set_num_threads(1) }
    defer { if saved > 1 { openblas_set_num_threads(saved) } }
    return body()
  }

  /// Runs `body(chunk, rows)` for each of `chunks` pieces of `0..<rows`, each on its own thread,
  /// with OpenBLAS on one thread meanwhile. With one chunk, `body(0, 0..<rows)` runs here, and
  /// OpenBLAS keeps its threads.
  ///
  /// `body` must only write memory that belongs to its own chunk.
  @inlinable
  public static func forEachChunk(rows: Int, chunks: Int, _ body: (Int, Range<Int>) -> Void) {
    guard chunks > 1 else {
      body(0, 0..<rows)
      return
    }
    // Only a caller that found OpenBLAS threaded switches it, and it restores what it found. Two
    // threads splitting at once cannot leave OpenBLAS on one thread for good: the second finds it
    // at 1 and leaves it alone (a GEMM called concurrently while threaded is still correct).
    let saved = openblas_get_num_threads()
    if saved > 1 { openblas_set_num_threads(1) }
    defer { if saved > 1 { openblas_set_num_threads(saved) } }
    withoutActuallyEscaping(body) { work in
      nonisolated(unsafe) let work = work
      DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        work(chunk, Self.rows(ofChunk: chunk, chunks: chunks, rows: rows))
      }
    }
  }
}
