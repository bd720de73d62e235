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
