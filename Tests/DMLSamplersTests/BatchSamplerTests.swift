import DMLCore
import DMLRun
import DMLSamplers
import Testing

@Suite("Batch samplers and class splits")
struct BatchSamplerTests {
  @Test("M-per-class: 128 = 32 groups of 4 over 5 classes, every class and sample visited")
  func mPerClass() {
    let labels = (0..<1000).map { $0 % 5 }
    var sampler = MPerClassSampler(labels: labels, m: 4, batchSize: 128, seed: 1)
    #expect(sampler.batchesPerEpoch == 7)
    var batch: [Int] = []
    var perClass = [Int](repeating: 0, count: 5)
    var seen = Set<Int>()
    for _ in 0..<40 {
      sampler.next(into: &batch)
      #expect(batch.count == 128)
      for g in 0..<32 {
        let group = batch[(4 * g)..<(4 * g + 4)]
        #expect(Set(group.map { labels[$0] }).count == 1, "group \(g) mixes classes")
        #expect(Set(group).count == 4, "a group repeats a sample of a large class")
        perClass[labels[group.first!]] += 1
      }
      seen.formUnion(batch)
    }
    // 40 × 32 = 1280 groups dealt round-robin over 5 classes: 256 each.
    #expect(perClass == [256, 256, 256, 256, 256])
    #expect(seen.count == 1000)
  }

  @Test("M-per-class: a class smaller than m is drawn with replacement")
  func smallClass() {
    let labels = [0, 0, 0, 0, 0, 0, 1, 1]  // class 1 has 2 < m = 4
    var sampler = MPerClassSampler(labels: labels, m: 4, batchSize: 8, seed: 2)
    var batch: [Int] = []
    for _ in 0..<5 {
      sampler.next(into: &batch)
      #expect(batch.count == 8)
      let ones = batch.filter { labels[$0] == 1 }
      #expect(ones.count == 4 && Set(ones).isSubset(of: [6, 7]))
    }
  }

  @Test("M-per-class is reproducible from its seed")
  func seeded() {
    let labels = (0..<300).map { $0 % 7 }
    var a = MPerClassSampler(labels: labels, m: 4, batchSize: 28, seed: 3), b = a
    var ba: [Int] = [], bb: [Int] = []
    for _ in 0..<10 {
      a.next(into: &ba)
      b.next(into: &bb)
      #expect(ba == bb)
    }
  }

  @Test("shuffled batches cover each epoch once and drop the partial batch")
  func shuffled() {
    var sampler = ShuffledBatchSampler(count: 100, batchSize: 32, seed: 4)
    #expect(sampler.batchesPerEpoch == 3)
    var batch: [Int] = []
    var epoch: [Int] = []
    for _ in 0..<3 {
      sampler.next(into: &batch)
      #expect(batch.count == 32)
      epoch += batch
    }
    #expect(Set(epoch).count == 96)
    sampler.next(into: &batch)  // the next epoch reshuffles
    #expect(batch.count == 32 && Set(batch).count == 32)
    var keep = ShuffledBatchSampler(count: 10, batchSize: 4, dropLast: false, seed: 5)
    var sizes: [Int] = []
    for _ in 0..<3 {
      keep.next(into: &batch)
      sizes.append(batch.count)
    }
    #expect(sizes == [4, 4, 2])
  }

  @Test("class lists and class-disjoint splits")
  func splits() throws {
    #expect(try ClassSplit.parse("0-4") == [0, 1, 2, 3, 4])
    #expect(try ClassSplit.parse("5,7,9") == [5, 7, 9])
    #expect(try ClassSplit.parse("0-2,8") == [0, 1, 2, 8])
    for bad in ["", "a", "3-1", "-1", "1-", "0-4-5"] {
      #expect(throws: SpecificationError.self, "\(bad)") { try ClassSplit.parse(bad) }
    }
    let labels = [5, 0, 9, 4, 5, 7]
    let train = ClassSplit.indices(of: try ClassSplit.parse("0-4"), in: labels)
    let test = ClassSplit.indices(of: try ClassSplit.parse("5-9"), in: labels)
    #expect(train == [1, 3] && test == [0, 2, 4, 5])
    let remapped = ClassSplit.remap(test.map { labels[$0] })
    #expect(remapped.labels == [0, 2, 0, 1] && remapped.original == [5, 7, 9])
  }

  @Test("Views batches repeat each sample views times in a row and cover the epoch once")
  func views() {
    var sampler = ViewsBatchSampler(count: 100, batchSize: 12, views: 3, seed: 4)
    #expect(sampler.batchesPerEpoch == 25)
    var seen: [Int] = []
    var batch: [Int] = []
    for _ in 0..<sampler.batchesPerEpoch {
      sampler.next(into: &batch)
      #expect(batch.count == 12)
      for g in stride(from: 0, to: 12, by: 3) { #expect(batch[g] == batch[g + 1] && batch[g] == batch[g + 2]) }
      seen += stride(from: 0, to: 12, by: 3).map { batch[$0] }
    }
    #expect(Set(seen).count == 100 && seen.count == 100)
  }
}


@Suite("Fixed set of triplets")
struct FixedTripletsTests {
  let labels = (0..<60).map { $0 % 5 }

  @Test("every batch is whole, valid triplets of the fixed set; each epoch serves the set in a new order; seeded")
  func batches() throws {
    var s = try #require(FixedTripletsBatchSampler(labels: labels, count: 40, batchSize: 12, seed: 3))
    #expect(s.count == 40 && s.batchesPerEpoch == 10)
    let set = Set(stride(from: 0, to: s.triplets.count, by: 3).map { SIMD3(s.triplets[$0], s.triplets[$0 + 1], s.triplets[$0 + 2]) })
    var batch: [Int] = []
    var epochs: [[SIMD3<Int>]] = []
    for _ in 0..<2 {
      var seen: [SIMD3<Int>] = []
      for _ in 0..<s.batchesPerEpoch {
        s.next(into: &batch)
        #expect(batch.count == 12)
        for t in stride(from: 0, to: 12, by: 3) {
          let (a, p, n) = (batch[t], batch[t + 1], batch[t + 2])
          #expect(a != p && labels[a] == labels[p] && labels[a] != labels[n])
          seen.append(SIMD3(a, p, n))
        }
      }
      #expect(Set(seen) == set || seen.count == 40)
      epochs.append(seen)
    }
    #expect(epochs[0] != epochs[1] && epochs[0].sorted { $0.x != $1.x ? $0.x < $1.x : $0.y != $1.y ? $0.y < $1.y : $0.z < $1.z } == epochs[1].sorted { $0.x != $1.x ? $0.x < $1.x : $0.y != $1.y ? $0.y < $1.y : $0.z < $1.z })
    // Seeded: the same seed gives the same triplets and batches.
    var again = try #require(FixedTripletsBatchSampler(labels: labels, count: 40, batchSize: 12, seed: 3))
    var other: [Int] = []
    var first = try #require(FixedTripletsBatchSampler(labels: labels, count: 40, batchSize: 12, seed: 3))
    first.next(into: &batch)
    again.next(into: &other)
    #expect(batch == other && again.triplets == first.triplets)
  }

  @Test("no triplet exists: one class, or no class with two samples")
  func impossible() {
    #expect(FixedTripletsBatchSampler(labels: [0, 0, 0], count: 5, batchSize: 3) == nil)
    #expect(FixedTripletsBatchSampler(labels: [0, 1, 2, 3], count: 5, batchSize: 3) == nil)
    #expect(FixedTripletsBatchSampler(labels: [0, 1, 1], count: 5, batchSize: 6) != nil)
  }

  @Test("from the registry: the batch size a multiple of 3, data without a triplet refused by name")
  func registry() throws {
    let sampler = try BatchSamplerRegistry.standard.make("fixed-triplets:size=9,triplets=30", context: BatchContext(labels: labels, seed: 1))
    #expect(sampler.batchesPerEpoch == 10)
    #expect(throws: SpecificationError.self) { _ = try BatchSamplerRegistry.standard.make("fixed-triplets:size=10", context: BatchContext(labels: labels)) }
    #expect(throws: SpecificationError.self) { _ = try BatchSamplerRegistry.standard.make("fixed-triplets", context: BatchContext(labels: [Int](repeating: 0, count: 200))) }
  }
}

@Suite("Hierarchical batches (PML's HierarchicalSampler)")
struct HierarchicalSamplerTests {
  /// 4 super-classes of 3, 4, 5 and 6 classes; class c has 3 + c % 4 samples.
  static func data() -> (labels: [Int], supers: [Int]) {
    var labels: [Int] = [], supers: [Int] = []
    var c = 0
    for (s, classes) in [3, 4, 5, 6].enumerated() {
      for _ in 0..<classes {
        for _ in 0..<(3 + c % 4) {
          labels.append(c)
          supers.append(s)
        }
        c += 1
      }
    }
    return (labels, supers)
  }

  @Test("an epoch: every pair of super-classes batches_per_tuple times; each batch half from each, m per class, no repeat within a class")
  func epoch() throws {
    let (labels, supers) = Self.data()
    var sampler = try HierarchicalBatchSampler(
      labels: labels, superLabels: supers, batchSize: 12, samplesPerClass: 3, superClassesPerBatch: 2, batchesPerCombination: 3, seed: 5)
    #expect(sampler.batchesPerEpoch == 6 * 3)
    var seen: [[Int]: Int] = [:]
    var batch: [Int] = []
    for _ in 0..<sampler.batchesPerEpoch {
      sampler.next(into: &batch)
      #expect(batch.count == 12)
      let bySuper = Dictionary(grouping: batch, by: { supers[$0] })
      #expect(bySuper.count == 2 && bySuper.values.allSatisfy { $0.count == 6 }, "\(bySuper.mapValues(\.count))")
      let byClass = Dictionary(grouping: batch, by: { labels[$0] })
      #expect(byClass.values.allSatisfy { $0.count == 3 && Set($0).count == 3 }, "\(byClass.mapValues(\.count))")
      seen[bySuper.keys.sorted(), default: 0] += 1
    }
    #expect(seen.count == 6 && seen.values.allSatisfy { $0 == 3 }, "\(seen)")
  }

  @Test("classes smaller than m are drawn with replacement; three super-classes per batch; the same seed, the same batches")
  func replacementAndSeeds() throws {
    let (labels, supers) = Self.data()
    func batches(_ seed: UInt64) throws -> [[Int]] {
      var s = try HierarchicalBatchSampler(
        labels: labels, superLabels: supers, batchSize: 15, samplesPerClass: 5, superClassesPerBatch: 3, batchesPerCombination: 2, seed: seed)
      #expect(s.batchesPerEpoch == 4 * 2)
      var out: [[Int]] = [], b: [Int] = []
      for _ in 0..<(2 * s.batchesPerEpoch) {
        s.next(into: &b)
        out.append(b)
      }
      return out
    }
    let a = try batches(1)
    #expect(a == (try batches(1)))
    #expect(a != (try batches(2)))
    #expect(a.allSatisfy { b in Set(b.map { supers[$0] }).count == 3 && b.count == 15 })
    // Classes 0 (3 samples) and 1 (4) give 5 rows from fewer samples: repeats.
    #expect(a.contains { b in b.filter { labels[$0] == 0 }.count == 5 && Set(b.filter { labels[$0] == 0 }).count == 3 })
  }

  @Test("refused, naming the value: sizes that do not divide, too few super-classes, a super-class that cannot fill its share, a class in two")
  func refused() {
    let (labels, supers) = Self.data()
    func fails(_ message: String, size: Int = 12, m: Int = 3, per: Int = 2, supers s: [Int]? = nil) {
      do {
        _ = try HierarchicalBatchSampler(labels: labels, superLabels: s ?? supers, batchSize: size, samplesPerClass: m, superClassesPerBatch: per)
        Issue.record("accepted: \(message)")
      } catch { #expect("\(error)".contains(message), "\(error)") }
    }
    fails("size 13 must be a multiple of super_per_batch = 2", size: 13)
    fails("share of a batch, 6, must be a multiple of m = 4", m: 4)
    fails("super_per_batch = 5 but the training data has 4", size: 10, m: 2, per: 5)
    fails("super-class 0 has 3 class(es), which cannot fill its share of 12", size: 24, m: 3)
    var mixed = supers
    mixed[0] = 3
    fails("class 0 lies in two super-classes", supers: mixed)
  }

  @Test("by name: --batch hierarchical with super-classes in its context; without them, the reason")
  func registry() throws {
    let (labels, supers) = Self.data()
    let registry = BatchSamplerRegistry.standard
    let built = try registry.make("hierarchical:size=12,m=3,batches_per_tuple=2", context: BatchContext(labels: labels, seed: 1, superLabels: supers))
    #expect(built.batchesPerEpoch == 12)
    #expect(throws: SpecificationError.self) { try registry.make("hierarchical:size=12,m=3", context: BatchContext(labels: labels, seed: 1)) }
  }
}
