/// Yields the row indices of each training batch.
public protocol BatchSampler {
  /// Batches in one epoch.
  var batchesPerEpoch: Int { get }
  /// Fills `batch` with the indices of the next batch (replacing its content).
  mutating func next(into batch: inout [Int])
}

/// Plain shuffled batches: every epoch is a fresh permutation, cut into batches; the last
/// partial batch is dropped unless `dropLast` is false.
public struct ShuffledBatchSampler: BatchSampler, Sendable {
  /// The samples, indexed `0..<count`.
  public let count: Int
  /// The samples per batch (the last one may be smaller unless `dropLast`).
  public let batchSize: Int
  /// Whether each epoch's last partial batch is dropped.
  public let dropLast: Bool
  /// The generator of the permutations.
  public var rng: RandomSource
  @usableFromInline var order: [Int] = []
  @usableFromInline var position = 0

  /// Batches of `batchSize` from `count` samples; with `dropLast` (the default) `count` must fill
  /// a batch.
  public init(count: Int, batchSize: Int, dropLast: Bool = true, seed: UInt64 = 0) {
    precondition(batchSize > 0, "batch size must be positive")
    precondition(count >= (dropLast ? batchSize : 1), "\(count) samples cannot fill a batch of \(batchSize)")
    self.count = count
    self.batchSize = batchSize
    self.dropLast = dropLast
    rng = RandomSource(seed: seed)
  }

  public var batchesPerEpoch: Int { dropLast ? count / batchSize : (count + batchSize - 1) / batchSize }

  public mutating func next(into batch: inout [Int]) {
    if order.isEmpty || position >= batchesPerEpoch * batchSize || (dropLast && position + batchSize > count)
      || position >= count
    {
      order = Array(0..<count)
      rng.shuffle(&order)
      position = 0
    }
    let end = Swift.min(position + batchSize, count)
    batch.removeAll(keepingCapacity: true)
    batch.append(contentsOf: order[position..<end])
    position = end
  }
}

/// M-per-class batches, with PML's `MPerClassSampler` semantics: a batch is `batchSize / m`
/// groups of `m` samples of one class; a class with fewer than `m` samples is drawn with
/// replacement.
///
/// Unlike PML, `batchSize` may exceed `m × classes`: a class then fills several groups of the same
/// batch (the fmnist-05 recipe has 32 groups of 4 over 5 classes). Classes are dealt round-robin
/// from a reshuffled order, so every class is visited equally often; within a class, samples are
/// drawn without replacement from a reshuffled order, so every sample is visited. An epoch is
/// `⌊samples / batchSize⌋` batches.
public struct MPerClassSampler: BatchSampler, Sendable {
  /// The samples per class group.
  public let m: Int
  /// The samples per batch, a multiple of `m`.
  public let batchSize: Int
  /// The labelled samples, which set the epoch's length.
  public let sampleCount: Int
  /// The generator of the class order and of the draws within classes.
  public var rng: RandomSource
  @usableFromInline var classes: [[Int]]
  @usableFromInline var classCursor: [Int]
  @usableFromInline var classOrder: [Int] = []
  @usableFromInline var orderPosition = 0

  /// Batches of `batchSize / m` groups of `m` over samples with `labels` (one per sample);
  /// `batchSize` must be a positive multiple of `m`.
  public init(labels: [Int], m: Int, batchSize: Int, seed: UInt64 = 0) {
    precondition(m > 0, "m must be positive")
    precondition(batchSize > 0 && batchSize % m == 0, "batch size \(batchSize) must be a positive multiple of m = \(m)")
    var byClass: [Int: [Int]] = [:]
    for (i, y) in labels.enumerated() { byClass[y, default: []].append(i) }
    precondition(!byClass.isEmpty, "MPerClassSampler needs labelled samples")
    classes = byClass.keys.sorted().map { byClass[$0]! }
    classCursor = [Int](repeating: Int.max, count: classes.count)
    self.m = m
    self.batchSize = batchSize
    sampleCount = labels.count
    rng = RandomSource(seed: seed)
  }

  public var batchesPerEpoch: Int { Swift.max(1, sampleCount / batchSize) }

  public mutating func next(into batch: inout [Int]) {
    batch.removeAll(keepingCapacity: true)
    for _ in 0..<(batchSize / m) {
      if orderPosition >= classOrder.count {
        classOrder = Array(classes.indices)
        rng.shuffle(&classOrder)
        orderPosition = 0
      }
      let c = classOrder[orderPosition]
      orderPosition += 1
      let members = classes[c].count
      if members < m {
        for _ in 0..<m { batch.append(classes[c][rng.index(below: members)]) }
        continue
      }
      for _ in 0..<m {
        if classCursor[c] >= members {
          rng.shuffle(&classes[c])
          classCursor[c] = 0
        }
        batch.append(classes[c][classCursor[c]])
        classCursor[c] += 1
      }
    }
  }
}

/// Class-disjoint splits, for open-set protocols (train on some classes, test on others).
public enum ClassSplit {
  /// Parses a class list such as `0-4`, `5,7,9` or `0-2,8`.
  public static func parse(_ text: String) throws -> Set<Int> {
    var result = Set<Int>()
    for part in text.split(separator: ",") {
      let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
      guard (1...2).contains(bounds.count), let lo = Int(bounds[0]), let hi = Int(bounds.last!), lo >= 0, lo <= hi
      else { throw SpecificationError("'\(part)' in class list '\(text)' is not a class or a range a-b") }
      result.formUnion(lo...hi)
    }
    guard !result.isEmpty else { throw SpecificationError("class list '\(text)' is empty") }
    return result
  }

  /// The indices whose label is in `classes`, in order.
  public static func indices(of classes: Set<Int>, in labels: [Int]) -> [Int] {
    labels.indices.filter { classes.contains(labels[$0]) }
  }

  /// Maps labels to `0..<k` in increasing order of the original label; returns the new labels and
  /// the original label of each new one.
  public static func remap(_ labels: [Int]) -> (labels: [Int], original: [Int]) {
    let original = Set(labels).sorted()
    let index = Dictionary(uniqueKeysWithValues: original.enumerated().map { ($1, $0) })
    return (labels.map { index[$0]! }, original)
  }
}

/// Batches of augmented views: `batchSize / views` samples from a reshuffled order, each repeated
/// `views` times in a row, so that with on-the-fly augmentation every sample appears as `views`
/// different images (SimCLR, Chen et al. 2020; with class labels, SupCon, Khosla et al. 2020). An
/// epoch covers every sample once.
public struct ViewsBatchSampler: BatchSampler, Sendable {
  /// The copies of each sample in a batch.
  public let views: Int
  var base: ShuffledBatchSampler
  var picked: [Int] = []

  /// Batches of `batchSize / views` of `count` samples, each repeated `views` times; `batchSize`
  /// must be a multiple of `views`.
  public init(count: Int, batchSize: Int, views: Int, seed: UInt64 = 0) {
    precondition(views >= 1 && batchSize % views == 0, "batch size \(batchSize) must be a multiple of views = \(views)")
    self.views = views
    base = ShuffledBatchSampler(count: count, batchSize: batchSize / views, seed: seed)
  }

  public var batchesPerEpoch: Int { base.batchesPerEpoch }

  public mutating func next(into batch: inout [Int]) {
    base.next(into: &picked)
    batch.removeAll(keepingCapacity: true)
    for i in picked { for _ in 0..<views { batch.append(i) } }
  }
}

/// Batches built from offline-mined tuples: each anchor (from a reshuffled order) brings, in the
/// same batch, up to `positives` of its hard positives and up to `negatives` of its hard
/// negatives, drawn at random from its mined lists. An item appears at most once per batch, and
/// a batch stops at `batchSize` (the last group may be cut). An epoch is `⌊count / batchSize⌋`
/// batches, like the other samplers'. Anchors come from a reshuffled order that carries over from
/// one epoch to the next; an anchor already placed in the batch as another's partner gives up
/// its turn. With groups of `1 + positives + negatives`, one epoch leads with about
/// `count / (1 + positives + negatives)` anchors; a sampler rebuilt after each mining starts a
/// new order.
public struct MinedPartnersBatchSampler: BatchSampler, Sendable {
  /// The items per batch.
  public let batchSize: Int
  /// The most positives an anchor brings into its batch.
  public let positivesPerAnchor: Int
  /// The most negatives an anchor brings into its batch.
  public let negativesPerAnchor: Int
  /// The entries per anchor in the mined lists.
  public let k: Int
  /// The samples (anchors): the mined lists' length divided by `k`.
  public let count: Int
  /// The generator of the anchor order and of the partners drawn.
  public var rng: RandomSource
  @usableFromInline let positives: [Int32]
  @usableFromInline let negatives: [Int32]
  @usableFromInline var order: [Int] = []
  @usableFromInline var position = 0
  // The batch number in which each item was last placed, to keep items unique within a batch.
  @usableFromInline var placed: [Int]
  @usableFromInline var batchNumber = 0
  @usableFromInline var scratch: [Int32] = []

  /// A sampler over the mined lists of `positives.count / k` samples, which must fill a batch.
  ///
  /// - Parameters:
  ///   - positives: `count × k` indices of each anchor's hard positives, `-1` padded.
  ///   - negatives: `count × k` indices of each anchor's hard negatives, `-1` padded.
  ///   - k: the entries per anchor in `positives` and `negatives`.
  ///   - batchSize: the items per batch.
  ///   - positivesPerAnchor: the positives an anchor brings into its batch.
  ///   - negativesPerAnchor: the negatives an anchor brings into its batch.
  ///   - seed: the seed of the anchor order and of the partners drawn.
  public init(
    positives: [Int32], negatives: [Int32], k: Int, batchSize: Int, positivesPerAnchor: Int = 1,
    negativesPerAnchor: Int = 3, seed: UInt64 = 0
  ) {
    precondition(k >= 1 && positives.count == negatives.count && positives.count % k == 0, "MinedPartnersBatchSampler: lists must be count × k")
    precondition(batchSize >= 2, "batch size must be at least 2")
    precondition(positivesPerAnchor >= 0 && negativesPerAnchor >= 0, "partners per anchor must be ≥ 0")
    count = positives.count / k
    precondition(count >= batchSize, "\(count) samples cannot fill a batch of \(batchSize)")
    self.k = k
    self.positives = positives
    self.negatives = negatives
    self.batchSize = batchSize
    self.positivesPerAnchor = positivesPerAnchor
    self.negativesPerAnchor = negativesPerAnchor
    rng = RandomSource(seed: seed)
    placed = [Int](repeating: -1, count: count)
  }

  public var batchesPerEpoch: Int { count / batchSize }

  public mutating func next(into batch: inout [Int]) {
    batch.removeAll(keepingCapacity: true)
    batchNumber += 1
    func place(_ i: Int) {
      guard batch.count < batchSize, placed[i] != batchNumber else { return }
      placed[i] = batchNumber
      batch.append(i)
    }
    while batch.count < batchSize {
      if position >= order.count {
        order = Array(0..<count)
        rng.shuffle(&order)
        position = 0
      }
      let anchor = order[position]
      position += 1
      guard placed[anchor] != batchNumber else { continue }
      place(anchor)
      for side in 0..<2 {
        let take = side == 0 ? positivesPerAnchor : negativesPerAnchor
        // A seeded partial shuffle of the anchor's valid partners picks `take` of them.
        scratch.removeAll(keepingCapacity: true)
        for slot in 0..<k {
          let partner = side == 0 ? positives[anchor * k + slot] : negatives[anchor * k + slot]
          if partner >= 0 { scratch.append(partner) }
        }
        var picked = 0
        var i = 0
        while picked < take && i < scratch.count {
          let j = i + rng.index(below: scratch.count - i)
          scratch.swapAt(i, j)
          let partner = Int(scratch[i])
          if placed[partner] != batchNumber {
            place(partner)
            picked += 1
          }
          i += 1
        }
      }
    }
  }
}

/// A fixed set of triplets, drawn once with the seed, served in a new order every epoch: each batch
/// is `batchSize / 3` whole triplets `(anchor, positive, negative)`, consecutive, as PML's
/// `FixedSetOfTriplets` sampler. Pair it with the `packaged-triplets` miner, which reads each
/// consecutive three rows as one triplet (PML's `EmbeddingsAlreadyPackagedAsTriplets`).
///
/// A triplet's anchor is a uniformly drawn sample of a class with at least two samples, its
/// positive another sample of that class, its negative a sample of another class. An epoch is
/// `⌊triplets / (batchSize / 3)⌋` batches.
public struct FixedTripletsBatchSampler: BatchSampler, Sendable {
  /// The triplets, flattened: `3k`, `3k + 1`, `3k + 2` are triplet `k`'s anchor, positive and negative.
  public let triplets: [Int]
  /// The samples per batch, a multiple of 3.
  public let batchSize: Int
  /// The generator of each epoch's order.
  public var rng: RandomSource
  @usableFromInline var order: [Int] = []
  @usableFromInline var position = 0

  /// `count` triplets over samples with `labels`, drawn with `seed`; `batchSize` must be a positive
  /// multiple of 3. Returns `nil` when no triplet exists (no class with two samples, or one class).
  public init?(labels: [Int], count: Int, batchSize: Int, seed: UInt64 = 0) {
    precondition(batchSize >= 3 && batchSize % 3 == 0 && count >= 1, "FixedTripletsBatchSampler: batch size a multiple of 3, at least one triplet")
    var byClass: [Int: [Int]] = [:]
    for (i, y) in labels.enumerated() { byClass[y, default: []].append(i) }
    let anchorClasses = byClass.keys.sorted().filter { byClass[$0]!.count >= 2 }
    guard !anchorClasses.isEmpty, byClass.count >= 2 else { return nil }
    // Anchors are drawn among the samples of classes with a positive.
    let anchors = anchorClasses.flatMap { byClass[$0]! }
    var rng = RandomSource(seed: seed)
    var flat: [Int] = []
    flat.reserveCapacity(3 * count)
    for _ in 0..<count {
      let a = anchors[rng.index(below: anchors.count)]
      let own = byClass[labels[a]]!
      var p = own[rng.index(below: own.count - 1)]
      if p == a { p = own[own.count - 1] }
      var n: Int
      repeat { n = rng.index(below: labels.count) } while labels[n] == labels[a]
      flat += [a, p, n]
    }
    triplets = flat
    self.batchSize = batchSize
    self.rng = RandomSource(seed: seed &+ 1)
  }

  /// The number of triplets.
  public var count: Int { triplets.count / 3 }

  public var batchesPerEpoch: Int { Swift.max(1, count / (batchSize / 3)) }

  public mutating func next(into batch: inout [Int]) {
    batch.removeAll(keepingCapacity: true)
    let per = batchSize / 3, taken = Swift.min(per, count)
    // A new order when the epoch's triplets are used up (a batch larger than the set repeats some).
    if order.isEmpty || position + taken > count {
      order = Array(0..<count)
      rng.shuffle(&order)
      position = 0
    }
    for t in 0..<per {
      let k = order[(position + t) % count]
      batch += triplets[(3 * k)..<(3 * k + 3)]
    }
    position += taken
  }
}

/// Batches drawn from a few super-classes at a time (PML's `HierarchicalSampler`, after Cakir et
/// al.'s Deep-Metric-Learning-Baselines): each batch holds `superClassesPerBatch` super-classes,
/// `batchSize / superClassesPerBatch` samples each, taken as groups of `samplesPerClass` from that
/// super-class's classes in a random order. Negatives from the same super-class (a bicycle
/// against another bicycle) are then the hard ones the batch is made of.
///
/// An epoch, as PML's: every combination of `superClassesPerBatch` super-classes, each
/// `batchesPerCombination` times, in a shuffled order (each batch's rows shuffled too). A class with
/// fewer than `samplesPerClass` samples is drawn with replacement, as PML's `safe_random_choice`.
/// Each super-class must hold enough classes to fill its share of a batch (PML would silently
/// make the batch shorter); the initialiser says which one does not.
public struct HierarchicalBatchSampler: BatchSampler, Sendable {
  /// The samples per batch.
  public let batchSize: Int
  /// The samples drawn from each class in a batch.
  public let samplesPerClass: Int
  /// The super-classes in each batch.
  public let superClassesPerBatch: Int
  /// The batches of each combination of super-classes, per epoch.
  public let batchesPerCombination: Int
  /// The generator of the draws and the orders.
  public var rng: RandomSource
  /// Super-class → its classes → their samples' indices.
  @usableFromInline var groups: [[[Int]]]
  /// Every combination of `superClassesPerBatch` super-classes (indices into `groups`).
  @usableFromInline var combinations: [[Int]]
  @usableFromInline var epoch: [Int] = []
  @usableFromInline var position = 0

  /// The most batches an epoch may hold: a combination count beyond it would take the memory.
  public static let maximumBatchesPerEpoch = 1_000_000

  /// Batches over samples with `labels` (classes) and `superLabels` (one super-class per sample;
  /// a class must lie in one super-class). Throws, naming the value at fault, when the sizes do not
  /// divide, there are fewer super-classes than a batch needs, a super-class cannot fill its share,
  /// or an epoch would hold more than `maximumBatchesPerEpoch` batches.
  public init(
    labels: [Int], superLabels: [Int], batchSize: Int, samplesPerClass: Int, superClassesPerBatch: Int = 2,
    batchesPerCombination: Int = 4, seed: UInt64 = 0
  ) throws {
    guard labels.count == superLabels.count else {
      throw SpecificationError("hierarchical: \(labels.count) labels but \(superLabels.count) super-class labels")
    }
    guard superClassesPerBatch > 0, batchSize > 0, batchSize % superClassesPerBatch == 0 else {
      throw SpecificationError("hierarchical: size \(batchSize) must be a multiple of super_per_batch = \(superClassesPerBatch)")
    }
    let share = batchSize / superClassesPerBatch
    guard samplesPerClass > 0, share % samplesPerClass == 0 else {
      throw SpecificationError("hierarchical: each super-class's share of a batch, \(share), must be a multiple of m = \(samplesPerClass)")
    }
    guard batchesPerCombination > 0 else { throw SpecificationError("hierarchical: batches_per_tuple must be positive") }
    var byClass: [Int: [Int]] = [:], superOf: [Int: Int] = [:]
    for (i, (y, s)) in zip(labels, superLabels).enumerated() {
      if let known = superOf[y], known != s {
        throw SpecificationError("hierarchical: class \(y) lies in two super-classes, \(known) and \(s)")
      }
      superOf[y] = s
      byClass[y, default: []].append(i)
    }
    let supers = Set(superOf.values).sorted()
    guard supers.count >= superClassesPerBatch else {
      throw SpecificationError("hierarchical: super_per_batch = \(superClassesPerBatch) but the training data has \(supers.count) super-class(es)")
    }
    let groups = supers.map { s in byClass.keys.sorted().filter { superOf[$0] == s }.map { byClass[$0]! } }
    for (k, classes) in groups.enumerated() where classes.count * samplesPerClass < share {
      throw SpecificationError(
        "hierarchical: super-class \(supers[k]) has \(classes.count) class(es), which cannot fill its share of \(share) samples with m = \(samplesPerClass)")
    }
    // The combinations, counted before they are listed.
    var count = 1.0
    for k in 0..<superClassesPerBatch { count = count * Double(supers.count - k) / Double(k + 1) }
    guard count * Double(batchesPerCombination) <= Double(Self.maximumBatchesPerEpoch) else {
      throw SpecificationError(
        "hierarchical: \(supers.count) super-classes taken \(superClassesPerBatch) at a time make \(Int(count.rounded())) combinations × \(batchesPerCombination) batches per epoch, more than \(Self.maximumBatchesPerEpoch)")
    }
    // Every combination, in lexicographic order (as itertools.combinations).
    var all: [[Int]] = [], current = Array(0..<superClassesPerBatch)
    while true {
      all.append(current)
      guard let k = (0..<superClassesPerBatch).last(where: { current[$0] < groups.count - superClassesPerBatch + $0 }) else { break }
      current[k] += 1
      for j in (k + 1)..<superClassesPerBatch { current[j] = current[j - 1] + 1 }
    }
    self.groups = groups
    combinations = all
    self.batchSize = batchSize
    self.samplesPerClass = samplesPerClass
    self.superClassesPerBatch = superClassesPerBatch
    self.batchesPerCombination = batchesPerCombination
    rng = RandomSource(seed: seed)
  }

  /// Every combination of super-classes, `batchesPerCombination` times.
  public var batchesPerEpoch: Int { combinations.count * batchesPerCombination }

  public mutating func next(into batch: inout [Int]) {
    if position >= epoch.count {
      // The epoch's order of combinations, each batchesPerCombination times; each batch is drawn
      // when it is asked for, so an epoch holds one index per batch, not every batch's rows.
      epoch = combinations.indices.flatMap { [Int](repeating: $0, count: batchesPerCombination) }
      rng.shuffle(&epoch)
      position = 0
    }
    let share = batchSize / superClassesPerBatch
    batch.removeAll(keepingCapacity: true)
    for s in combinations[epoch[position]] {
      // The super-class's classes in a random order, m samples from each until its share is full.
      var order = Array(groups[s].indices)
      rng.shuffle(&order)
      for c in order.prefix(share / samplesPerClass) {
        let members = groups[s][c]
        if members.count < samplesPerClass {
          for _ in 0..<samplesPerClass { batch.append(members[rng.index(below: members.count)]) }
        } else {
          // Without replacement: a random subset of the class.
          var pool = members
          for k in 0..<samplesPerClass {
            let j = k + rng.index(below: pool.count - k)
            pool.swapAt(k, j)
            batch.append(pool[k])
          }
        }
      }
    }
    rng.shuffle(&batch)
    position += 1
  }
}
