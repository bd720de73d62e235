import CMPI
import DMLTraining
import Foundation
import Synchronization

/// A collective operation that failed or timed out.
public struct CollectiveError: Error, CustomStringConvertible, Equatable {
  /// The message, naming the rank and the operation.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// The processes that `mpirun` (or a scheduler such as Slurm) started, over Open MPI.
///
/// `MPIGroup.start(timeout:)` initialises MPI once per process. Every collective is watched: if
/// one waits longer than `timeout` seconds for the other ranks (a rank died, hangs, or took
/// another path), the process prints which operation waited and exits with status 75 (it does
/// not throw: MPI's blocking calls cannot be interrupted), and `mpirun` then stops the whole job.
/// A rank that dies makes `mpirun` stop the job itself. Checkpoints are written atomically, so the
/// last one stays whole. Call `finish()` at a normal end, and `abort(_:status:)` after an error on
/// this rank alone, which stops every rank at once (`TrainingRun` shares its own failures among
/// the ranks, so that every rank throws).
public final class MPIGroup: Collective {
  public let rank: Int
  public let size: Int
  /// Seconds a collective may wait for the other ranks.
  public let timeout: Double
  struct InFlight { var what: String; var since: Double }
  let inFlight = Mutex<InFlight?>(nil)
  let spent = Mutex<Double>(0)
  let calls = Mutex<Void>(())

  private init(rank: Int, size: Int, timeout: Double) {
    self.rank = rank
    self.size = size
    self.timeout = timeout
  }

  nonisolated(unsafe) private static var started: MPIGroup?
  private static let startLock = Mutex<Void>(())

  /// Whether this process was started by an MPI launcher (`mpirun`, `srun` with PMI/PMIx): the
  /// launchers' environment variables say so.
  public static var launchedByMPI: Bool {
    let env = ProcessInfo.processInfo.environment
    return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_SIZE"] != nil
  }

  /// Initialises MPI (once per process; later calls return the same group) and starts the
  /// watchdog of collectives. `timeout` must be positive.
  public static func start(timeout: Double = 300) throws -> MPIGroup {
    try startLock.withLock { _ in
      if let started { return started }
      guard timeout > 0, timeout.isFinite else { throw CollectiveError("the MPI time-out \(timeout) must be a positive number of seconds") }
      var rank: Int32 = 0, size: Int32 = 0, provided: Int32 = 0
      let rc = dml_mpi_init(&rank, &size, &provided)
      guard rc == 0 else { throw CollectiveError("MPI_Init_thread failed: \(errorText(rc))") }
      guard provided >= dml_mpi_thread_serialized() else {
        throw CollectiveError("this MPI library provides thread level \(provided); dml needs MPI_THREAD_SERIALIZED")
      }
      let group = MPIGroup(rank: Int(rank), size: Int(size), timeout: timeout)
      group.startWatchdog()
      started = group
      return group
    }
  }

  /// Ends MPI after a run that every rank completed.
  public func finish() {
    if dml_mpi_initialized() != 0 && dml_mpi_finalized() == 0 { _ = dml_mpi_finalize() }
  }

  /// Stops every rank of the job: for an error that happened on this rank (the others would wait
  /// for it in their next collective). Prints `message` first, with the rank. Does not return.
  public func abort(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("dml: rank \(rank) of \(size): \(message)\n".utf8))
    _ = dml_mpi_abort(status)
    exit(status)
  }

  static func errorText(_ code: Int32) -> String {
    var text = [CChar](repeating: 0, count: 512)
    dml_mpi_error_string(code, &text, 512)
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (code \(code))"
  }

  func startWatchdog() {
    let thread = Thread { [self] in
      while true {
        Thread.sleep(forTimeInterval: Swift.min(1, timeout / 4))
        let now = Self.seconds()
        if let f = inFlight.withLock({ $0 }), now - f.since > timeout {
          let text = String(
            format: "dml: rank %d of %d: %@ waited %.0f s for the other ranks (time-out %.0f s): a rank died, hangs or runs another configuration; stopping the job\n",
            rank, size, f.what, now - f.since, timeout)
          FileHandle.standardError.write(Data(text.utf8))
          _exit(75)
        }
      }
    }
    thread.name = "dml-mpi-watchdog"
    thread.start()
  }

  /// Runs one MPI call under the watchdog, one at a time, and turns its status into an error.
  func watched(_ what: String, _ call: () -> Int32) throws {
    try calls.withLock { _ in
      let start = Self.seconds()
      inFlight.withLock { $0 = InFlight(what: what, since: start) }
      let rc = call()
      inFlight.withLock { $0 = nil }
      spent.withLock { $0 += Self.seconds() - start }
      guard rc == 0 else { throw CollectiveError("rank \(rank) of \(size): \(what): \(Self.errorText(rc))") }
    }
  }

  public var communicationSeconds: Double { spent.withLock { $0 } }

  /// A monotonic clock in seconds (not the wall clock, which may jump).
  static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

  static func isDouble<S: DMLScalar>(_: S.Type) -> Int32 {
    precondition(S.self == Double.self || S.self == Float.self, "MPIGroup: \(S.self) is neither Float nor Double")
    return S.self == Double.self ? 1 : 0
  }

  static func displacements(_ counts: [Int], what: String) throws -> [Int32] {
    var d: [Int32] = [], at = 0
    for c in counts {
      guard c >= 0, at + c <= Int(Int32.max) else { throw CollectiveError("\(what): \(counts.reduce(0, +)) elements are more than MPI counts hold") }
      d.append(Int32(at))
      at += c
    }
    return d
  }

  public func allGather<S: DMLScalar>(_ local: [S], counts: [Int], what: String) throws -> [S] {
    guard counts.count == size, counts[rank] == local.count else {
      throw CollectiveError("rank \(rank) of \(size): \(what): \(local.count) local elements, counts \(counts)")
    }
    let displacements = try Self.displacements(counts, what: what)
    let c32 = counts.map { Int32($0) }
    var all = [S](repeating: 0, count: counts.reduce(0, +))
    let kind = Self.isDouble(S.self)
    try watched("the all-gather of \(what)") {
      local.withUnsafeBytes { l in
        all.withUnsafeMutableBytes { a in
          dml_mpi_allgatherv(l.baseAddress, Int32(local.count), a.baseAddress, c32, displacements, kind)
        }
      }
    }
    return all
  }

  public func allReduceSum<S: DMLScalar>(_ buffer: inout [S], what: String) throws {
    guard buffer.count <= Int(Int32.max) else { throw CollectiveError("\(what): \(buffer.count) elements are more than an MPI count holds") }
    let kind = Self.isDouble(S.self)
    let n = Int32(buffer.count)
    try watched("the all-reduce of \(what)") {
      buffer.withUnsafeMutableBytes { dml_mpi_allreduce_sum($0.baseAddress, n, kind) }
    }
  }

  public func allGatherBytes(_ bytes: [UInt8], what: String) throws -> [[UInt8]] {
    guard bytes.count <= Int(Int32.max) else { throw CollectiveError("\(what): \(bytes.count) bytes are more than an MPI count holds") }
    var lengths = [Int32](repeating: 0, count: size)
    try watched("the exchange of the lengths of \(what)") { dml_mpi_allgather_int(Int32(bytes.count), &lengths) }
    let counts = lengths.map(Int.init)
    let displacements = try Self.displacements(counts, what: what)
    var all = [UInt8](repeating: 0, count: counts.reduce(0, +))
    try watched("the exchange of \(what)") {
      bytes.withUnsafeBytes { l in
        all.withUnsafeMutableBytes { a in dml_mpi_allgatherv_bytes(l.baseAddress, Int32(bytes.count), a.baseAddress, lengths, displacements) }
      }
    }
    return (0..<size).map { Array(all[Int(displacements[$0])..<(Int(displacements[$0]) + counts[$0])]) }
  }
}
