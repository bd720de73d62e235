import DMLTesting
import DMLLosses
import DMLNetworks
import DMLSamplers
import DMLTraining
import Foundation
import Testing

/// Seeded batches of 16 rows over 4 classes (4 each), 8 features.
func roundTripBatches(_ count: Int) -> [(Matrix<Float>, [Int])] {
  var rng = RandomSource(seed: 17)
  var centres = Matrix<Float>(rows: 4, columns: 8)
  centres.apply { _ in rng.normal() }
  return (0..<count).map { _ in
    var labels = (0..<16).map { $0 % 4 }
    rng.shuffle(&labels)
    var x = Matrix<Float>(rows: 16, columns: 8)
    for i in 0..<16 {
      for j in 0..<8 { x[i, j] = centres[labels[i], j] + 0.7 * rng.normal() }
    }
    return (x, labels)
  }
}

/// Trains `make()` on every batch in one go, and again split: `split` batches, a checkpoint written
/// to disk, a fresh `make()` restored from it, then the rest. Returns what differs: every file of
/// the two final checkpoints (parameters, optimizer state by name, manifest with the step and the
/// random generators, the memory) must be byte for byte the same; every trainable tensor must have
/// moved, and every declared tensor must be in the checkpoint.
func roundTripFailures<N, L, S, O>(
  _ make: () throws -> Trainer<N, L, S, O>, batches: [(Matrix<Float>, [Int])], split: Int
) throws -> [String] where N.Scalar == Float {
  var failures: [String] = []
  let folder = ScratchSpace.path("roundtrip-" + UUID().uuidString)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  var straight = try make()
  let initial = straight.network.namedParameters(prefix: ["network"]) + straight.loss.namedParameters(prefix: ["loss"])
  for (x, y) in batches { _ = try straight.train(x, labels: y) }

  var first = try make()
  for (x, y) in batches[..<split] { _ = try first.train(x, labels: y) }
  try Checkpoint.save(try first.checkpointFiles(), in: folder, step: first.step)
  var resumed = try make()
  try resumed.restore(fromCheckpoint: try Checkpoint.latest(in: folder))
  for (x, y) in batches[split...] { _ = try resumed.train(x, labels: y) }

  let a = try straight.checkpointFiles(), b = try resumed.checkpointFiles()
  for name in Set(a.keys).union(b.keys).sorted() where a[name] != b[name] {
    failures.append("\(name) differs between the uninterrupted and the resumed run")
  }
  let final = straight.network.namedParameters(prefix: ["network"]) + straight.loss.namedParameters(prefix: ["loss"])
  for (before, after) in zip(initial, final) where after.parameter.trainable && before.parameter.value == after.parameter.value {
    failures.append("\(after.name) never moved")
  }
  let saved = try Checkpoint.readSafetensors(folder + "/latest/parameters.safetensors")
  for p in final where saved[p.name]?.shape != p.parameter.shape { failures.append("\(p.name) is not in the checkpoint") }
  return failures
}

@Suite("Checkpoint round trips: every component resumes bitwise")
struct RoundTripTests {
  static let batches = roundTripBatches(6)
  static let context = LossContext(classes: 4, embeddingDimension: 8, seed: 5, classCounts: [30, 8, 12, 50])

  static func mlp(batchNorm: Bool = false) -> MLP<Float> {
    .mlp(inputFeatures: 8, hidden: [12], embeddingDimension: 8, batchNorm: batchNorm, seed: 2)
  }

  static func loss(_ specs: [String]) throws -> AnyEmbeddingLoss<Float> {
    let parts = try specs.map { try LossRegistry.standard.make($0, context: context) }
    if parts.count == 1 && parts[0].weight == 1 { return parts[0].loss }
    return AnyEmbeddingLoss(MultipleLosses(parts.map(\.loss), weights: parts.map(\.weight)))
  }

  @Test(
    "every registered loss, with Adam (and the margin loss with a learned β per class)",
    // The manifold loss draws each of its K meta-classes in every batch (of 16 rows here): K = 4.
    arguments: LossRegistry.standard.names.map { $0 == "manifold" ? "manifold:K=4" : $0 } + ["margin:learn_beta=true,per_class=true,nu=0.01"])
  func everyLoss(name: String) throws {
    // VICReg reads two views per label: label rows in pairs (as `--batch views:labels=instance`).
    let batches = name == "vicreg" ? Self.batches.map { ($0.0, (0..<$0.1.count).map { $0 / 2 }) } : Self.batches
    let failures = try roundTripFailures({
      Trainer(network: Self.mlp(), loss: try Self.loss([name]), sampler: NoMining<Float>(), optimizer: Adam<Float>(learningRate: 0.01))
    }, batches: batches, split: 3)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("softmax + 0.1 × center with both optimizers", arguments: ["adam", "sgd"])
  func softmaxCenter(optimizer: String) throws {
    func run<O: Optimizer>(_ make: @escaping () -> O) throws -> [String] where O.Scalar == Float {
      try roundTripFailures({
        Trainer(network: Self.mlp(), loss: try Self.loss(["softmax", "center:weight=0.1"]), sampler: NoMining<Float>(), optimizer: make())
      }, batches: Self.batches, split: 2)
    }
    let failures = optimizer == "adam"
      ? try run { Adam<Float>(learningRate: 0.01) } : try run { SGD<Float>(learningRate: 0.05, momentum: 0.9, nesterov: true) }
    #expect(failures.isEmpty, "\(failures)")
  }

  static let miners: [String: @Sendable () -> AnyTupleSampler<Float>] = [
    "semihard (capped, seeded)": { AnyTupleSampler(TripletMarginMiner<Float>(margin: 0.3, type: .semihard, maxTuples: 12, seed: 9)) },
    "all triplets": { AnyTupleSampler(TripletMarginMiner<Float>(margin: 0.3, type: .all)) },
    "batch-hard": { AnyTupleSampler(BatchHardMiner<Float>()) },
    "facenet-semihard": { AnyTupleSampler(FaceNetSemiHardMiner<Float>()) },
    "multi-similarity": { AnyTupleSampler(MultiSimilarityMiner<Float>()) },
    "pair-margin": { AnyTupleSampler(PairMarginMiner<Float>()) },
    "distance-weighted (seeded)": { AnyTupleSampler(DistanceWeightedMiner<Float>(dimension: 8, seed: 4)) },
    "batch-all (capped, seeded)": { AnyTupleSampler(BatchAllMiner<Float>(triplets: true, maxTuples: 20, seed: 6)) },
    "uniform-histogram (seeded)": { AnyTupleSampler(UniformHistogramMiner<Float>(bins: 4, positivesPerBin: 3, negativesPerBin: 3, seed: 8)) },
    "batch-easy-hard": { AnyTupleSampler(BatchEasyHardMiner<Float>()) },
    "hdc": { AnyTupleSampler(HDCMiner<Float>()) },
  ]

  @Test("every miner, with the triplet or contrastive loss", arguments: miners.keys.sorted())
  func everyMiner(name: String) throws {
    let make = Self.miners[name]!
    let pairs = ["multi-similarity", "pair-margin", "uniform-histogram (seeded)", "batch-easy-hard", "hdc"].contains(name)
    let failures = try roundTripFailures({
      Trainer(
        network: Self.mlp(), loss: try Self.loss([pairs ? "contrastive" : "triplet:margin=0.2"]), sampler: make(),
        optimizer: Adam<Float>(learningRate: 0.01))
    }, batches: Self.batches, split: 3)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("MLP and ConvNet-S, BatchNorm on and off (running statistics included)", arguments: [false, true])
  func networks(batchNorm: Bool) throws {
    var failures = try roundTripFailures({
      Trainer(network: Self.mlp(batchNorm: batchNorm), loss: try Self.loss(["proxy-anchor"]), sampler: NoMining<Float>(),
        optimizer: SGD<Float>(learningRate: 0.05, momentum: 0.9))
    }, batches: Self.batches, split: 3)
    let images = Self.batches.map { batch -> (Matrix<Float>, [Int]) in
      var x = Matrix<Float>(rows: 16, columns: 16)
      for i in 0..<16 { for j in 0..<16 { x[i, j] = batch.0[i, j % 8] * Float(1 + j / 8) } }
      return (x, batch.1)
    }
    failures += try roundTripFailures({
      Trainer(
        network: ConvNetS<Float>.convNetS(
          input: ImageShape(height: 4, width: 4, channels: 1), channels: [2, 3], embeddingDimension: 8, batchNorm: batchNorm, seed: 3),
        loss: try Self.loss(["arcface"]), sampler: NoMining<Float>(), optimizer: Adam<Float>(learningRate: 0.01))
    }, batches: images, split: 2)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("the cross-batch memory, filled before and after the checkpoint")
  func memory() throws {
    let failures = try roundTripFailures({
      var t = Trainer(
        network: Self.mlp(), loss: try Self.loss(["contrastive"]),
        sampler: AnyTupleSampler(TripletMarginMiner<Float>(margin: 0.3, type: .semihard, maxTuples: 12, seed: 9)),
        optimizer: Adam<Float>(learningRate: 0.01))
      t.memory = CrossBatchMemory(capacity: 40, warmUp: 1)
      return t
    }, batches: Self.batches, split: 3)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test("a checkpoint of another model is refused by parameter name and shape, before anything changes")
  func mismatch() throws {
    let folder = ScratchSpace.path("mismatch")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var small = Trainer(network: Self.mlp(), loss: try Self.loss(["arcface"]), sampler: NoMining<Float>(), optimizer: Adam<Float>())
    _ = try small.train(Self.batches[0].0, labels: Self.batches[0].1)
    try Checkpoint.save(try small.checkpointFiles(), in: folder, step: 1)
    let wide = LossContext(classes: 6, embeddingDimension: 8, seed: 5)
    var other = Trainer(
      network: Self.mlp(), loss: try LossRegistry.standard.make("arcface", context: wide).loss, sampler: NoMining<Float>(),
      optimizer: Adam<Float>())
    let before = try other.checkpointFiles()
    do {
      try other.restore(fromCheckpoint: try Checkpoint.latest(in: folder))
      Issue.record("a checkpoint with 4 class weights loaded into a loss with 6")
    } catch {
      #expect("\(error)".contains("loss.class_weights has shape [4, 8], the model needs [6, 8]"), "\(error)")
    }
    #expect(try other.checkpointFiles() == before, "a refused load changed the trainer")
    var deeper = Trainer(
      network: MLP<Float>.mlp(inputFeatures: 8, hidden: [12, 12], embeddingDimension: 8, seed: 2), loss: try Self.loss(["arcface"]),
      sampler: NoMining<Float>(), optimizer: Adam<Float>())
    #expect(throws: TrainingError.self) { try deeper.restore(fromCheckpoint: try Checkpoint.latest(in: folder)) }
  }
}
