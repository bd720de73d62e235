/// Cross-batch memory (Wang, Zhang, Huang and Scott, "Cross-Batch Memory for Embedding Learning",
/// CVPR 2020): a FIFO queue of the embeddings and labels of recent batches, kept without gradient,
/// that extends the reference set of a pair loss and its miner. Each step then compares the batch
/// with `batch + memory` columns, so it sees far more negatives than the batch holds.
///
/// The reference set is laid out as the score-matrix losses expect: the batch's own rows first
/// (column `j < n` is row `j`, with gradient), then the memory's rows (constants). The queue is
/// filled after each step from the step's embeddings, as in the paper; it starts after `warmUp`
/// steps, when the embeddings have stopped drifting fast.
public struct CrossBatchMemory<Scalar: DMLScalar>: Sendable {
  /// The most embeddings held.
  public let capacity: Int
  /// Steps trained before the memory starts filling (step `warmUp` fills it; the next step is
  /// the first to use it).
  public let warmUp: Int
  /// The held embeddings, one per slot (`count` valid rows of a `capacity`-row buffer).
  public private(set) var slots = Matrix<Scalar>()
  /// The label of each slot.
  public private(set) var slotLabels: [Int] = []
  /// Valid slots.
  public private(set) var count = 0
  /// The slot the next embedding overwrites (the oldest once the memory is full).
  public private(set) var next = 0
  /// The last reference set built by `makeReferences`: the batch's rows, then the memory's.
  public private(set) var references = Matrix<Scalar>()
  /// The labels of `references`' rows.
  public private(set) var referenceLabels: [Int] = []

  /// An empty memory of at most `capacity` embeddings (positive) that starts filling at step
  /// `warmUp` (0 by default: from the first step).
  public init(capacity: Int, warmUp: Int = 0) {
    precondition(capacity > 0, "CrossBatchMemory: capacity \(capacity) must be positive")
    precondition(warmUp >= 0, "CrossBatchMemory: warm-up \(warmUp) must be ≥ 0")
    self.capacity = capacity
    self.warmUp = warmUp
  }

  /// Whether a step numbered `step` (0-based) fills the memory.
  @inlinable public func fills(atStep step: Int) -> Bool { step >= warmUp }

  /// Whether a step numbered `step` compares its batch with the memory.
  @inlinable public func isUsed(atStep step: Int) -> Bool { step >= warmUp && count > 0 }

  /// Builds `references` = `batch` rows followed by the held embeddings, and `referenceLabels`.
  public mutating func makeReferences(batch: Matrix<Scalar>, labels: [Int]) {
    precondition(labels.count == batch.rows, "CrossBatchMemory: \(batch.rows) embeddings but \(labels.count) labels")
    precondition(count == 0 || slots.columns == batch.columns,
      "CrossBatchMemory: the memory holds \(slots.columns)-dimensional embeddings, the batch \(batch.columns)")
    let (n, d) = (batch.rows, batch.columns)
    references.resize(rows: n + count, columns: d)
    references.withUnsafeMutableBufferPointer { r in
      batch.withUnsafeBufferPointer { b in r.baseAddress!.update(from: b.baseAddress!, count: n * d) }
      if count > 0 {
        slots.withUnsafeBufferPointer { s in r.baseAddress!.advanced(by: n * d).update(from: s.baseAddress!, count: count * d) }
      }
    }
    referenceLabels.removeAll(keepingCapacity: true)
    referenceLabels.append(contentsOf: labels)
    referenceLabels.append(contentsOf: slotLabels[0..<count])
  }

  /// Adds a batch's embeddings (copied: they carry no gradient), overwriting the oldest.
  public mutating func enqueue(_ embeddings: Matrix<Scalar>, labels: [Int]) {
    precondition(labels.count == embeddings.rows, "CrossBatchMemory: \(embeddings.rows) embeddings but \(labels.count) labels")
    let d = embeddings.columns
    if slots.rows != capacity || slots.columns != d {
      precondition(count == 0, "CrossBatchMemory: the memory holds \(slots.columns)-dimensional embeddings, the batch \(d)")
      slots = Matrix(rows: capacity, columns: d)
      slotLabels = [Int](repeating: 0, count: capacity)
    }
    // A batch larger than the memory leaves only its last `capacity` rows.
    let first = Swift.max(0, embeddings.rows - capacity)
    embeddings.withUnsafeBufferPointer { e in
      slots.withUnsafeMutableBufferPointer { s in
        for i in first..<embeddings.rows {
          s.baseAddress!.advanced(by: next * d).update(from: e.baseAddress! + i * d, count: d)
          slotLabels[next] = labels[i]
          next = (next + 1) % capacity
          count = Swift.min(count + 1, capacity)
        }
      }
    }
  }

  /// Restores a saved state (from a checkpoint): `embeddings` holds the `count` valid slots in
  /// slot order.
  public mutating func restore(embeddings: Matrix<Scalar>, labels: [Int], next: Int) throws {
    guard embeddings.rows == labels.count, embeddings.rows <= capacity, (0..<capacity).contains(next),
      embeddings.rows == capacity || next == embeddings.rows
    else {
      throw SpecificationError(
        "cross-batch memory: \(embeddings.rows) saved embeddings, \(labels.count) labels and next slot \(next) do not fit a memory of \(capacity)")
    }
    count = embeddings.rows
    self.next = next
    slots = Matrix(rows: capacity, columns: embeddings.columns)
    slotLabels = [Int](repeating: 0, count: capacity)
    slots.withUnsafeMutableBufferPointer { s in
      embeddings.withUnsafeBufferPointer { e in s.baseAddress!.update(from: e.baseAddress!, count: e.count) }
    }
    for (i, y) in labels.enumerated() { slotLabels[i] = y }
  }

  /// The valid slots, in slot order (for checkpoints).
  public var heldEmbeddings: Matrix<Scalar> { count == 0 ? Matrix(rows: 0, columns: slots.columns) : slots.rows(Array(0..<count)) }
}
