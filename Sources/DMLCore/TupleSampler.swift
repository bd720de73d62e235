/// Picks the pairs or triplets a loss learns from, reading a score matrix and labels (PML's
/// miners). It has no gradient.
///
/// A sampler writes into a `Tuples` value that the caller keeps from step to step, so mining
/// allocates nothing once the buffers have grown.
///
/// Samplers that draw random numbers (capped reservoirs, distance-weighted sampling) visit their
/// generators through `RandomSourceContainer`, so checkpoints restore them.
public protocol TupleSampler<Scalar>: RandomSourceContainer {
  /// The element type of the score matrices the sampler reads.
  associatedtype Scalar: DMLScalar
  /// The distance whose scores the sampler compares.
  var distance: Distance { get }
  /// Mines from `scores` into `tuples`, replacing its content. `scores` is `n × n`, the batch
  /// against itself, or `n × m`, the batch against the batch followed by a cross-batch memory
  /// (only when `acceptsMemory`). `labels` has one label per column; the first `n` are the rows'
  /// own and column `j < n` is row `j`. Tuples' anchors are rows, their partners columns.
  mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples)
  /// What the sampler has found so far.
  var statistics: MiningStatistics { get set }
  /// Whether the sampler produces tuples; a "no mining" sampler does not, and the loss then uses
  /// every pair or triplet.
  var providesTuples: Bool { get }
  /// Whether `mine` reads rectangular score matrices against a cross-batch memory: its column
  /// loops run to `scores.columns` with `labels[j]` as column labels.
  var acceptsMemory: Bool { get }
  /// What went wrong in the last `mine`, for a sampler run by foreign code (a plugin) that can
  /// fail or return invalid tuples: it then leaves no tuples, and the trainer stops with this
  /// message. `nil` by default.
  var failure: String? { get }
}

extension TupleSampler {
  /// `true` by default: the sampler mines tuples.
  public var providesTuples: Bool { true }
  /// `false` by default: the sampler reads only square within-batch score matrices.
  public var acceptsMemory: Bool { false }
  /// `nil`: a sampler written in Swift does not fail.
  public var failure: String? { nil }
}

/// Counts kept by a sampler over a run, so a trainer can say "the loss is stuck at zero because
/// nothing was mined".
public struct MiningStatistics: Sendable, Equatable, CustomStringConvertible {
  /// Tuples returned by the last call.
  public var lastCount = 0
  /// Batches mined.
  public var batches = 0
  /// Batches where nothing was found.
  public var emptyBatches = 0
  /// Tuples returned over all batches.
  public var totalTuples = 0

  /// Statistics of no batch.
  public init() {}

  /// Records one batch's result.
  @inlinable
  public mutating func record(_ count: Int) {
    lastCount = count
    batches += 1
    totalTuples += count
    if count == 0 { emptyBatches += 1 }
  }

  /// The fraction of batches where nothing was mined.
  public var emptyFraction: Double { batches > 0 ? Double(emptyBatches) / Double(batches) : 0 }

  /// `"N tuples (mean M); nothing mined in E of B batches"`, for logs (the mean per batch is
  /// rounded down).
  public var description: String {
    "\(lastCount) tuples (mean \(batches > 0 ? totalTuples / batches : 0)); nothing mined in "
      + "\(emptyBatches) of \(batches) batches"
  }
}

extension Tuples {
  /// Empties every list, keeping capacity.
  @inlinable
  public mutating func removeAll(pairs: Bool) {
    positivePairs.removeAll(keepingCapacity: true)
    negativePairs.removeAll(keepingCapacity: true)
    triplets.removeAll(keepingCapacity: true)
    arePairs = pairs
  }

  /// The number of tuples held.
  @inlinable public var count: Int { arePairs ? positivePairs.count + negativePairs.count : triplets.count }

  /// The first tuple that no sampler may return, described, or `nil`: anchors must index the
  /// first `rows` labels, partners any of `labels` (one per column; column `j < rows` is row `j`),
  /// a positive shares its anchor's label and is not the anchor, a negative has another label.
  public func firstInvalid(rows n: Int, labels y: [Int]) -> String? {
    let m = y.count
    func anchor(_ i: Int32) -> Bool { i >= 0 && Int(i) < n && Int(i) < m }
    func partner(_ i: Int32) -> Bool { i >= 0 && Int(i) < m }
    for p in positivePairs where !(anchor(p.x) && partner(p.y) && p.x != p.y && y[Int(p.x)] == y[Int(p.y)]) {
      return "an invalid positive pair (\(p.x), \(p.y)) for \(n) rows and \(m) columns"
    }
    for p in negativePairs where !(anchor(p.x) && partner(p.y) && y[Int(p.x)] != y[Int(p.y)]) {
      return "an invalid negative pair (\(p.x), \(p.y)) for \(n) rows and \(m) columns"
    }
    for q in triplets
    where !(anchor(q.x) && partner(q.y) && partner(q.z) && q.x != q.y && y[Int(q.x)] == y[Int(q.y)] && y[Int(q.x)] != y[Int(q.z)]) {
      return "an invalid triplet (\(q.x), \(q.y), \(q.z)) for \(n) rows and \(m) columns"
    }
    return nil
  }
}

/// Keeps a uniform random sample of at most `capacity` items from a stream (reservoir sampling,
/// Vitter's algorithm R), seeded: it bounds the memory of mining however many tuples qualify.
public struct Reservoir: Sendable {
  /// The most items kept (`nil`: keep all).
  public var capacity: Int?
  /// The generator for the sample.
  public var rng: RandomSource
  /// Items offered so far.
  public var seen = 0

  /// A reservoir keeping at most `capacity` items (`nil`: all; otherwise positive), drawing from a
  /// generator seeded with `seed`.
  public init(capacity: Int?, seed: UInt64) {
    precondition(capacity.map { $0 > 0 } ?? true, "Reservoir capacity must be positive")
    self.capacity = capacity
    rng = RandomSource(seed: seed)
  }

  /// Starts a new stream.
  @inlinable public mutating func reset() { seen = 0 }

  /// Offers `item` to `array`: appends while there is room, else replaces a random slot with
  /// probability `capacity / seen`.
  @inlinable
  public mutating func offer<E>(_ item: E, to array: inout [E]) {
    seen += 1
    guard let capacity, array.count >= capacity else {
      array.append(item)
      return
    }
    let slot = rng.index(below: seen)
    if slot < capacity { array[slot] = item }
  }
}

/// A sampler whose concrete type is erased, with its work specialised where it was wrapped (see
/// `AnyEmbeddingLoss`).
public struct AnyTupleSampler<Scalar: DMLScalar>: TupleSampler {
  @usableFromInline let _mine: (Matrix<Scalar>, [Int], inout Tuples) -> Void
  @usableFromInline let _statistics: () -> MiningStatistics
  @usableFromInline let _setStatistics: (MiningStatistics) -> Void
  @usableFromInline let _visitRandom: ((inout RandomSource) -> Void) -> Void
  @usableFromInline let _failure: () -> String?
  /// The wrapped sampler's distance.
  public let distance: Distance
  /// Whether the wrapped sampler produces tuples.
  public let providesTuples: Bool
  /// Whether the wrapped sampler accepts a cross-batch memory.
  public let acceptsMemory: Bool

  /// Wraps `sampler`; its state lives in a box that copies of this wrapper share.
  @inlinable
  public init<S: TupleSampler>(_ sampler: S) where S.Scalar == Scalar {
    let box = Box(sampler)
    _mine = { box.value.mine(scores: $0, labels: $1, into: &$2) }
    _statistics = { box.value.statistics }
    _setStatistics = { box.value.statistics = $0 }
    _visitRandom = { visit in box.value.visitRandomSources(visit) }
    _failure = { box.value.failure }
    distance = sampler.distance
    providesTuples = sampler.providesTuples
    acceptsMemory = sampler.acceptsMemory
  }

  /// Mines with the wrapped sampler.
  @inlinable
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    _mine(scores, labels, &tuples)
  }

  /// The wrapped sampler's statistics; setting them sets the sampler's.
  public var statistics: MiningStatistics {
    get { _statistics() }
    set { _setStatistics(newValue) }
  }

  /// The wrapped sampler's failure in its last `mine`, if any.
  public var failure: String? { _failure() }

  /// Visits the wrapped sampler's random generators.
  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { _visitRandom(visit) }
}
