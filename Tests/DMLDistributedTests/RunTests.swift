import DMLData
import DMLEvaluation
import DMLDistributed
import DMLLosses
import DMLNetworks
import DMLRun
import DMLSamplers
import DMLTesting
import DMLTraining
import Foundation
import Testing

/// Gaussian clusters as 4 × 4 one-channel images (so that augmentation applies).
func blobs(classes: Int, perClass: Int, seed: UInt64, labelOffset: Int = 0) -> Dataset {
  var rng = RandomSource(seed: seed)
  let centres = (0..<classes).map { _ in (0..<16).map { _ in rng.normal(Float.self) } }
  var x: [Float] = [], labels: [Int] = []
  for c in 0..<classes {
    for _ in 0..<perClass {
      x += centres[c].map { $0 + 0.6 * rng.normal(Float.self) }
      labels.append(c + labelOffset)
    }
  }
  return Dataset(features: Matrix(rows: labels.count, columns: 16, elements: x), labels: labels, imageShape: (4, 4, 1))
}

let runTraining = blobs(classes: 6, perClass: 16, seed: 1)
let runValidation = blobs(classes: 4, perClass: 12, seed: 2, labelOffset: 100)

/// The same run on `group`: triplet loss with semi-hard mining, SGD with momentum, augmentation,
/// validation, optionally offline mining and checkpoints. Returns every parameter, the epochs'
/// mean losses and validation MAP@R.
func distributedRun(
  on group: any Collective, offline: Bool = false, checkpoint: String? = nil, resume: Bool = false, epochs: Int = 3
) throws -> (parameters: [Float], losses: [Double], validation: [Double]) {
  let trainer = Trainer(
    network: MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3),
    loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
    optimizer: SGD<Float>(learningRate: 0.05, momentum: 0.9))
  var settings = RunSettings(epochs: epochs, seed: 5, augmentation: ImageAugmentation([.crop(pad: 1), .flip(p: 0.5)]))
  if offline { settings.offlineMining = OfflineMiningSettings(k: 4, batchSize: 24) }
  if let checkpoint { settings.checkpoint = CheckpointSettings(folder: checkpoint, resume: resume) }
  var run = try TrainingRun(
    trainer: trainer, training: runTraining, validation: runValidation,
    batches: MPerClassSampler(labels: runTraining.labels, m: 4, batchSize: 24, seed: 6), settings: settings, group: group)
  var losses: [Double] = [], validation: [Double] = []
  _ = try run.fit { event in
    if case .epoch(let e) = event {
      losses.append(e.meanLoss)
      validation.append(e.validationMapAtR ?? -1)
    }
  }
  return (run.trainer.network.namedParameters().flatMap { $0.parameter.value.elements }, losses, validation)
}

func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
  let scale = b.map { abs(Double($0)) }.max() ?? 0
  return zip(a, b).map { abs(Double($0) - Double($1)) }.max()! / scale
}

@Suite("The training run on several ranks")
struct DistributedRunTests {
  @Test("2 ranks train as one process: parameters, losses and validation, with augmentation", arguments: [false, true])
  func twoRanks(offlineMining: Bool) throws {
    let one = try distributedRun(on: SingleProcess(), offline: offlineMining)
    let results = ThreadGroup.run(size: 2) { try distributedRun(on: $0, offline: offlineMining) }
    let a = try results[0].get(), b = try results[1].get()
    #expect(a.parameters == b.parameters, "the ranks' parameters differ")
    #expect(relativeDifference(a.parameters, one.parameters) < 1e-5, "\(relativeDifference(a.parameters, one.parameters))")
    for (x, y) in zip(a.losses, one.losses) { #expect(abs(x - y) <= 1e-5 * abs(y), "losses \(a.losses) against \(one.losses)") }
    for (x, y) in zip(a.validation, one.validation) { #expect(abs(x - y) <= 1e-4, "validation \(a.validation) against \(one.validation)") }
  }

  @Test("rank 0 alone writes the checkpoints, and a run resumes from them on another number of ranks")
  func checkpoints() throws {
    let folder = ScratchSpace.path("distributed-run-" + UUID().uuidString)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let results = ThreadGroup.run(size: 2) { try distributedRun(on: $0, checkpoint: folder, epochs: 2) }
    _ = try results.map { try $0.get() }
    let entries = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("step-") }
    #expect(entries.count == 2, "\(entries)")
    // A new run in the folder is refused (on rank 0; the others leave that check to it).
    #expect(throws: TrainingError.self) { try distributedRun(on: SingleProcess(), checkpoint: folder, epochs: 2) }
    // Epoch 3 on one process continues the two ranks' run: the same as three epochs on two ranks.
    let resumed = try distributedRun(on: SingleProcess(), checkpoint: folder, resume: true, epochs: 3)
    let straight = try ThreadGroup.run(size: 2) { try distributedRun(on: $0, epochs: 3) }[0].get()
    #expect(relativeDifference(resumed.parameters, straight.parameters) < 1e-5)
    #expect(abs(resumed.losses[0] - straight.losses[2]) <= 1e-5 * straight.losses[2])
  }

  @Test("ranks with different data are refused at start-up, naming the part")
  func mismatch() {
    let results = ThreadGroup.run(size: 2) { group -> Int in
      var data = runTraining
      if group.rank == 1 { data.labels[0] = 5 }
      let trainer = Trainer(
        network: MLP<Float>.mlp(inputFeatures: 16, hidden: [8], embeddingDimension: 8, seed: 3),
        loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
        optimizer: SGD<Float>(learningRate: 0.05))
      var run = try TrainingRun(
        trainer: trainer, training: data, batches: MPerClassSampler(labels: data.labels, m: 4, batchSize: 24, seed: 6),
        settings: RunSettings(epochs: 1), group: group)
      _ = try run.fit()
      return 0
    }
    guard case .failure(let e) = results[0] else { Issue.record("rank 0 trained"); return }
    #expect("\(e)".contains("rank 1 of 2 was started with another configuration than rank 0 (different: the training data)"), "\(e)")
  }

  @Test("the embeddings of a data set, computed in shards and gathered, are the one-process embeddings")
  func shardedEmbedding() throws {
    let results = ThreadGroup.run(size: 2) { group -> [Float] in
      let trainer = Trainer(
        network: MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3),
        loss: TripletMarginLoss<Float>(margin: 0.2), optimizer: SGD<Float>())
      let run = try TrainingRun(
        trainer: trainer, training: runTraining, batches: MPerClassSampler(labels: runTraining.labels, m: 4, batchSize: 24, seed: 6),
        settings: RunSettings(epochs: 1), group: group)
      var network = run.trainer.network
      return try run.embed(runValidation.features, with: &network).elements
    }
    var network = MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3)
    let one = network.embed(runValidation.features).elements
    let a = try results[0].get(), b = try results[1].get()
    #expect(a == b)
    #expect(relativeDifference(a, one) < 1e-6)
  }
}

@Suite("Evaluation shared among ranks")
struct DistributedEvaluationTests {
  @Test("retrieval metrics with the queries shared among 2 and 3 ranks are one process's", arguments: [2, 3])
  func metrics(ranks: Int) throws {
    // Lone queries (class 99 has one row) and classes smaller than Recall@8's k included.
    var data = blobs(classes: 7, perClass: 9, seed: 4)
    data.labels[0] = 99
    let x = data.features, y = data.labels
    let one = try retrievalMetrics(queries: x, queryLabels: y)
    let results = ThreadGroup.run(size: ranks) { try retrievalMetrics(embeddings: x, labels: y, over: $0) }
    for r in results {
      let m = try r.get()
      #expect(m.queries == one.queries && m.loneQueries == one.loneQueries && m.k == one.k)
      for (a, b) in [(m.precisionAt1, one.precisionAt1), (m.rPrecision, one.rPrecision), (m.mapAtR, one.mapAtR),
        (m.meanAveragePrecision, one.meanAveragePrecision), (m.meanReciprocalRank, one.meanReciprocalRank)] {
        #expect(abs(a - b) < 1e-12, "\(m) against \(one)")
      }
      for K in [1, 2, 4, 8] { #expect(abs(m.recallAt[K]! - one.recallAt[K]!) < 1e-12) }
    }
  }
}

@Suite("The documented use")
struct DocumentedUseTests {
  @Test("the DocC article's run, on two threads: both ranks end with the same summary")
  func article() throws {
    let results = ThreadGroup.run(size: 2) { group -> Double in
      let train = runTraining, validation = runValidation
      let trainer = Trainer(
        network: MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3),
        loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
        optimizer: SGD<Float>(learningRate: 0.05, momentum: 0.9))
      var run = try TrainingRun(
        trainer: trainer, training: train, validation: validation,
        batches: MPerClassSampler(labels: train.labels, m: 4, batchSize: 24, seed: 1),
        settings: RunSettings(epochs: 2), group: group)
      let summary = try run.fit { event in if group.rank == 0 { print(event) } }
      return summary.bestValidationMapAtR ?? -1
    }
    let a = try results[0].get(), b = try results[1].get()
    #expect(a == b && a > 0)
  }
}

@Suite("What one rank alone gets wrong stops every rank")
struct RankFailureTests {
  static func run(
    on group: any Collective, seed: UInt64 = 6, batchNorm: Bool = false, checkpoint: String? = nil, data: Dataset = runTraining
  ) throws -> TrainingRun<MLP<Float>, LossEvaluator<TripletMarginLoss<Float>>, TripletMarginMiner<Float>, SGD<Float>> {
    var settings = RunSettings(epochs: 2)
    if let checkpoint { settings.checkpoint = CheckpointSettings(folder: checkpoint) }
    return try TrainingRun(
      trainer: Trainer(
        network: MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, batchNorm: batchNorm, seed: 3),
        loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
        optimizer: SGD<Float>(learningRate: 0.05, momentum: 0.9)),
      training: data, batches: MPerClassSampler(labels: data.labels, m: 4, batchSize: 24, seed: seed), settings: settings, group: group)
  }

  @Test("ranks that draw other batches are stopped after the epoch, naming the rank")
  func otherBatches() {
    let results = ThreadGroup.run(size: 2, timeout: 20) { group -> Int in
      var r = try Self.run(on: group, seed: group.rank == 0 ? 6 : 7)
      _ = try r.fit()
      return 0
    }
    for r in results {
      guard case .failure(let e) = r else { Issue.record("a rank trained on"); continue }
      #expect("\(e)".contains("in epoch 1 rank 1 drew other batches than rank 0"), "\(e)")
    }
  }

  @Test("rank 0's refusal of a folder with another run's checkpoints stops rank 1 too, at once")
  func folderRefused() throws {
    let folder = ScratchSpace.path("distributed-refused-" + UUID().uuidString)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = try ThreadGroup.run(size: 2) { group -> Int in
      var r = try Self.run(on: group, checkpoint: folder)
      _ = try r.fit()
      return 0
    }.map { try $0.get() }
    let start = Date()
    let results = ThreadGroup.run(size: 2, timeout: 30) { group -> Int in
      var r = try Self.run(on: group, checkpoint: folder)
      _ = try r.fit()
      return 0
    }
    guard case .failure(let e0) = results[0], case .failure(let e1) = results[1] else { Issue.record("a rank trained"); return }
    #expect("\(e0)".contains("holds another run's checkpoints"), "\(e0)")
    #expect("\(e1)".contains("rank 0 of 2 failed:") && "\(e1)".contains("holds another run's checkpoints"), "rank 1: \(e1)")
    #expect(Date().timeIntervalSince(start) < 10)
  }

  @Test("BatchNorm's running statistics, computed from each rank's rows, are averaged: the ranks agree")
  func batchNorm() throws {
    let results = ThreadGroup.run(size: 2) { group -> [Float] in
      var r = try Self.run(on: group, batchNorm: true)
      _ = try r.fit()
      return r.trainer.network.namedParameters().filter { !$0.parameter.trainable }.flatMap { $0.parameter.value.elements }
    }
    let a = try results[0].get(), b = try results[1].get()
    #expect(!a.isEmpty && a == b)
    // Not one rank's own statistics: one process's running mean differs from both.
    var single = try Self.run(on: SingleProcess(), batchNorm: true)
    _ = try single.fit()
    let one = single.trainer.network.namedParameters().filter { !$0.parameter.trainable }.flatMap { $0.parameter.value.elements }
    #expect(one.count == a.count && one != a)
  }

  @Test("in the local-anchor mode a loss that fails on the ranks stops them all, with no time-out")
  func localAnchorFailure() {
    let start = Date()
    let results = ThreadGroup.run(size: 2, timeout: 30) { group -> Int in
      let (x, labels, batches) = DistributedCheck.data(Double.self, steps: 1, batch: 16)
      let xb = x.rows(batches[0]), yb = batches[0].map { labels[$0] }
      var t = LocalAnchorTests.trainer()
      // Rank 1's network alone gives NaN embeddings.
      if group.rank == 1 { t.network.forEachParameter { name, p in if name.hasSuffix("weight") { p.value[0, 0] = .nan } } }
      _ = try t.train(shard: xb.rows(Array(Shards.rows(batch: 16, rank: group.rank, size: 2))), labels: yb, over: group, mode: .localAnchors)
      return 0
    }
    for r in results {
      guard case .failure(let e) = r else { Issue.record("a rank stepped on"); continue }
      #expect("\(e)".contains("step 1:") && !"\(e)".contains("waited"), "\(e)")
    }
    #expect(Date().timeIntervalSince(start) < 10)
  }
}
