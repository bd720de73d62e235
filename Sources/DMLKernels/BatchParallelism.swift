import Dispatch

/// Splits a batch's rows over threads, for work that is independent per row or image (`Linear`,
/// `Conv2D`, `ReLU`, `MaxPool2D`, large products in `gemm`). How many chunks a piece of work gets
/// is its `ComputeContext`'s choice (`ComputeContext.chunkCount`).
///
/// One level of parallelism: OpenBLAS runs on one thread (see `BLAS`), so a product inside a
/// chunk runs on that chunk's thread, and no process-wide setting changes while chunks run.
///
/// Chunks are fixed, contiguous pieces of the rows, so results are deterministic for a given
/// chunk count.
public enum BatchParallelism {
  /// The rows of chunk `chunk` out of `chunks`: contiguous pieces that differ by at most one row.
  @inlinable
  public static func rows(ofChunk chunk: Int, chunks: Int, rows: Int) -> Range<Int> {
    (chunk * rows / chunks)..<((chunk + 1) * rows / chunks)
  }

  /// Products with fewer multiply-adds than this stay on one thread in `gemm`: a training step's
  /// small products (a batch's 128 × 128 score matrix and its gradient) gain nothing from a split.
  public static let splitGemmMinimum = 1 << 24

  /// Runs `body(chunk, rows)` for each of `chunks` pieces of `0..<rows`, each on its own thread.
  /// With one chunk, `body(0, 0..<rows)` runs here.
  ///
  /// `body` must only write memory that belongs to its own chunk.
  @inlinable
  public static func forEachChunk(rows: Int, chunks: Int, _ body: (Int, Range<Int>) -> Void) {
    guard chunks > 1 else {
      body(0, 0..<rows)
      return
    }
    withoutActuallyEscaping(body) { work in
      nonisolated(unsafe) let work = work
      DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        work(chunk, Self.rows(ofChunk: chunk, chunks: chunks, rows: rows))
      }
    }
  }
}
