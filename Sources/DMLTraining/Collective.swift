import DMLCore
import Foundation

/// The processes of a data-parallel run and the collective operations between them, as MPI
/// defines them: every process (rank) calls each operation in the same order, and each call
/// returns on every rank with the same result.
///
/// The library's training step and run need only these three operations (and a clock of the
/// time spent in them); `DMLDistributed`'s `MPIGroup` implements them over Open MPI,
/// `SingleProcess` for one process, and `ThreadGroup` with threads of one process. A call throws
/// when the group reports a failure, with an error that names the operation; `MPIGroup` stops
/// the process instead when a peer hangs past its time-out (MPI's calls cannot be interrupted).
public protocol Collective: Sendable {
  /// This process's index, `0..<size`.
  var rank: Int { get }
  /// The number of processes.
  var size: Int { get }
  /// Concatenates every rank's `local` in rank order; `counts[r]` is rank `r`'s element count
  /// (known to every rank). `what` names the data in errors.
  func allGather<S: DMLScalar>(_ local: [S], counts: [Int], what: String) throws -> [S]
  /// Replaces `buffer` on every rank with the element-wise sum over ranks. Every rank should
  /// receive the same sum: MPI recommends it and Open MPI's algorithms give it; `TrainingRun`
  /// checks that the ranks' parameters agree after every epoch.
  func allReduceSum<S: DMLScalar>(_ buffer: inout [S], what: String) throws
  /// Every rank's `bytes` (of any length), in rank order: for start-up checks, not the step.
  func allGatherBytes(_ bytes: [UInt8], what: String) throws -> [[UInt8]]
  /// Seconds spent inside collective operations so far, waiting included (for the logs).
  var communicationSeconds: Double { get }
}

/// One process: every collective is the identity.
public struct SingleProcess: Collective {
  /// The one-process group.
  public init() {}
  public var rank: Int { 0 }
  public var size: Int { 1 }
  public func allGather<S: DMLScalar>(_ local: [S], counts: [Int], what: String) throws -> [S] { local }
  public func allReduceSum<S: DMLScalar>(_ buffer: inout [S], what: String) throws {}
  public func allGatherBytes(_ bytes: [UInt8], what: String) throws -> [[UInt8]] { [bytes] }
  public var communicationSeconds: Double { 0 }
}

/// How the ranks of a data-parallel step share the global batch.
public enum DistributedMode: String, Sendable, CaseIterable, Codable {
  /// Every rank evaluates the miner and the loss on the whole gathered batch and back-propagates
  /// its own rows' share of the gradient: the same loss, gradients and parameters as one process
  /// with the whole batch (to floating-point rounding of the parameter-gradient sum).
  case global
  /// Each rank's anchors are its own rows only, compared with the whole gathered batch (its own
  /// rows first, then the others' as constants), as PML's `DistributedLossWrapper(efficient=True)`.
  /// The score matrix is `B/N × B` instead of `B × B`. What changes: the loss is the sum over
  /// ranks of each rank's loss on its anchors (each reduced over its own terms), and a row gets no
  /// gradient from the terms where it is a reference of another rank's anchor. Only for losses and
  /// miners that accept a reference set (those that work with a cross-batch memory), and not with
  /// a cross-batch memory.
  case localAnchors = "local-anchors"
}

/// The rows of a global batch that each rank owns: contiguous, in rank order, sizes differing by
/// at most one (the first `batch % size` ranks take one more).
public enum Shards {
  /// The rows of a `batch`-row global batch owned by `rank` of `size`.
  public static func rows(batch: Int, rank: Int, size: Int) -> Range<Int> {
    let base = batch / size, extra = batch % size
    let start = rank * base + Swift.min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
  }

  /// The row count of every rank, in rank order.
  public static func counts(batch: Int, size: Int) -> [Int] {
    (0..<size).map { rows(batch: batch, rank: $0, size: size).count }
  }
}

/// Deliberate errors of the distributed step, for the tests that show the equivalence check can
/// fail: each is a mistake that data-parallel metric-learning code is known to make.
@usableFromInline package enum DistributedMistake: String, Sendable, CaseIterable {
  /// The gathered embeddings carry no gradient, own rows included: nothing reaches the network
  /// from the loss.
  case detachedGather = "detached-gather"
  /// The embedding gradient is summed over ranks instead of routed to the owner of each row: every
  /// row's gradient counts once per rank.
  case summedGradients = "summed-gradients"
  /// The parameter gradients are averaged over ranks (a data-parallel default) instead of summed:
  /// each is 1/N of the whole batch's.
  case averagedGradients = "averaged-gradients"
}
