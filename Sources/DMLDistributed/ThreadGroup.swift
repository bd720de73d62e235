import DMLTraining
import Foundation

/// An in-process group: `size` ranks that are threads of one process, exchanging through shared
/// memory. For tests and for trying a data-parallel setup without `mpirun`. Its sums are added
/// in rank order; Open MPI may group the additions of 3 or more ranks otherwise, so the two can
/// differ in the last bits. Each rank's `ThreadGroup` object belongs to its thread.
///
/// ```swift
/// let results = ThreadGroup.run(size: 2) { group in try train(over: group) }
/// ```
public final class ThreadGroup: Collective, @unchecked Sendable {
  public let rank: Int
  public var size: Int { hub.size }
  let hub: Hub
  var spent = 0.0

  init(rank: Int, hub: Hub) {
    self.rank = rank
    self.hub = hub
  }

  /// The exchange shared by the ranks: every rank deposits its part, the last to arrive publishes
  /// all parts, and a rank may deposit again only after reading (generation counter).
  final class Hub: @unchecked Sendable {
    let size: Int
    let timeout: Double
    let condition = NSCondition()
    var slots: [Any?]
    var published: [Any?] = []
    var arrived = 0
    var generation = 0
    var broken: String?

    init(size: Int, timeout: Double) {
      self.size = size
      self.timeout = timeout
      slots = [Any?](repeating: nil, count: size)
    }

    func exchange(rank: Int, _ value: Any, what: String) throws -> [Any?] {
      condition.lock()
      defer { condition.unlock() }
      if let broken { throw CollectiveError("rank \(rank) of \(size): \(what): \(broken)") }
      let generation = self.generation
      slots[rank] = value
      arrived += 1
      if arrived == size {
        published = slots
        slots = [Any?](repeating: nil, count: size)
        arrived = 0
        self.generation += 1
        condition.broadcast()
      } else {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while self.generation == generation && broken == nil {
          if !condition.wait(until: deadline) {
            broken = "rank \(rank) waited \(timeout) s for the other ranks"
            condition.broadcast()
          }
        }
        // An exchange that completed counts, even if a rank failed right after it.
        if self.generation == generation, let broken { throw CollectiveError("rank \(rank) of \(size): \(what): \(broken)") }
      }
      return published
    }

    /// Stops every rank waiting now or later (a rank that failed).
    func breakAll(_ reason: String) {
      condition.lock()
      broken = broken ?? reason
      condition.broadcast()
      condition.unlock()
    }
  }

  /// Runs `body` on `size` threads, one per rank, and returns each rank's result in rank order.
  /// A rank that throws stops the others' collectives with an error (as `mpirun` stops a job).
  public static func run<T: Sendable>(
    size: Int, timeout: Double = 60, _ body: @escaping @Sendable (ThreadGroup) throws -> T
  ) -> [Result<T, any Error>] {
    precondition(size >= 1, "ThreadGroup: size \(size) must be at least 1")
    let hub = Hub(size: size, timeout: timeout)
    let results = ResultBox<T>(size)
    let done = DispatchGroup()
    for r in 0..<size {
      done.enter()
      let thread = Thread {
        let group = ThreadGroup(rank: r, hub: hub)
        do { results.set(r, .success(try body(group))) } catch {
          hub.breakAll("rank \(r) failed: \(error)")
          results.set(r, .failure(error))
        }
        done.leave()
      }
      thread.stackSize = 8 << 20
      thread.start()
    }
    done.wait()
    return results.values.map { $0! }
  }

  final class ResultBox<T>: @unchecked Sendable {
    let lock = NSLock()
    var values: [Result<T, any Error>?]
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: Result<T, any Error>) { lock.withLock { values[i] = v } }
  }

  func timed<R>(_ body: () throws -> R) rethrows -> R {
    let start = Date()
    defer { spent += Date().timeIntervalSince(start) }
    return try body()
  }

  public func allGather<S: DMLScalar>(_ local: [S], counts: [Int], what: String) throws -> [S] {
    guard counts.count == size, counts[rank] == local.count else {
      throw CollectiveError("rank \(rank) of \(size): \(what): \(local.count) local elements, counts \(counts)")
    }
    return try timed {
      let parts = try hub.exchange(rank: rank, local, what: "the all-gather of \(what)")
      return parts.flatMap { $0 as! [S] }
    }
  }

  public func allReduceSum<S: DMLScalar>(_ buffer: inout [S], what: String) throws {
    let parts = try timed { try hub.exchange(rank: rank, buffer, what: "the all-reduce of \(what)") }.map { $0 as! [S] }
    guard parts.allSatisfy({ $0.count == buffer.count }) else {
      throw CollectiveError("rank \(rank) of \(size): the all-reduce of \(what): the ranks' buffers differ in length \(parts.map(\.count))")
    }
    for i in buffer.indices {
      var s = parts[0][i]
      for r in 1..<size { s += parts[r][i] }
      buffer[i] = s
    }
  }

  public func allGatherBytes(_ bytes: [UInt8], what: String) throws -> [[UInt8]] {
    try timed { try hub.exchange(rank: rank, bytes, what: "the exchange of \(what)").map { $0 as! [UInt8] } }
  }

  public var communicationSeconds: Double { spent }
}
