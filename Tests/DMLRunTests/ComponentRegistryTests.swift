import DMLCore
import DMLData
import DMLKernels
import DMLNetworks
import DMLRun
import DMLSamplers
import DMLTraining
import Foundation
import Testing
import TripletLosses

/// A network as an outside package would register it: a residual MLP composed from the
/// library's layers.
func residualMLP(inputFeatures: Int, width: Int, embedding: Int, seed: UInt64) -> Network<some Layer<Float>> {
  var rng = RandomSource(seed: seed)
  return Network(inputFeatures: inputFeatures, body: sequential {
    Linear<Float>(inputFeatures, width, rng: &rng)
    Residual {
      ReLU<Float>()
      Linear<Float>(width, width, rng: &rng)
    }
    Linear<Float>(width, embedding, rng: &rng)
    L2Normalize<Float>()
  })
}

let residualFactory = ComponentFactory<AnyEmbeddingNetwork<Float>, NetworkContext>(
  "residual-mlp", summary: "Linear → Residual(ReLU → Linear) → Linear",
  hyperparameters: [
    HyperparameterSpec("width", .integer, default: "32", "hidden width", range: .atLeast(1)),
    HyperparameterSpec("embedding", .integer, default: "8", "embedding dimension", range: .closed(1, 4096)),
  ]
) { v, c in
  AnyEmbeddingNetwork(residualMLP(inputFeatures: c.inputFeatures, width: try v.integer("width"), embedding: try v.integer("embedding"), seed: c.seed))
}

@Suite("One registry mechanism for every component kind")
struct ComponentRegistryTests {
  @Test("the standard registries list every built-in component, and specifications are checked by key")
  func standard() throws {
    #expect(NetworkRegistry.standard.names == ["mlp", "local", "convnet-s", "resnet18", "resnet34", "resnet50"])
    #expect(MinerRegistry.standard.names.contains("distance-weighted") && MinerRegistry.standard.names.count == 13)
    #expect(BatchSamplerRegistry.standard.names == ["m-per-class", "hierarchical", "shuffled", "views", "fixed-triplets"])
    #expect(OptimizerRegistry.standard.names == ["adam", "adamw", "sgd"])
    #expect(ScheduleRegistry.standard.names == ["constant", "cosine", "step"])
    let context = NetworkContext(inputFeatures: 16)
    #expect(throws: SpecificationError("unknown network 'resnet'; known: mlp, local, convnet-s, resnet18, resnet34, resnet50")) {
      try NetworkRegistry.standard.make("resnet", context: context)
    }
    #expect(throws: SpecificationError("mlp: unknown hyperparameter 'widht'; known: batchnorm, depth, embedding, hidden, normalize")) {
      try NetworkRegistry.standard.make("mlp:widht=3", context: context)
    }
    #expect(throws: SpecificationError("mlp: embedding=0 must be ≥ 1")) { try NetworkRegistry.standard.make("mlp:embedding=0", context: context) }
    #expect(throws: SpecificationError("mlp: depth=1.5 is not an integer")) { try NetworkRegistry.standard.make("mlp:depth=1.5", context: context) }
    #expect(throws: SpecificationError("local needs image data (Fashion-MNIST); this data has 16 flat features")) {
      try NetworkRegistry.standard.make("local", context: context)
    }
    #expect(throws: SpecificationError("m-per-class: size 12 must be a multiple of m = 5")) {
      try BatchSamplerRegistry.standard.make("m-per-class:m=5,size=12", context: BatchContext(labels: Array(0..<40)))
    }
    let net = try NetworkRegistry.standard.make("mlp:hidden=0,embedding=5", context: context)
    #expect(net.embeddingDimension == 5 && net.inputFeatures == 16)
    let schedule = try ScheduleRegistry.standard.make("step:every=2,gamma=0.5", context: ScheduleContext(stepsPerEpoch: 3, epochs: 10))
    #expect(schedule.factor(at: 5) == 1 && schedule.factor(at: 6) == 0.5)
  }

  @Test("an integer hyperparameter is checked against its range and, where a range cannot say it, a rule")
  func integers() throws {
    let specs = [HyperparameterSpec("kernel", .integer, default: "3", "filter size", range: .closed(1, 7))]
    var v = try HyperparameterValues(parsing: "conv:kernel=9")
    #expect(throws: SpecificationError("conv: kernel=9 must be in [1, 7]")) { try v.validate(against: specs) }
    v = try HyperparameterValues(parsing: "conv:kernel=4")
    try v.validate(against: specs)
    #expect(throws: SpecificationError("conv: kernel=4 must be odd")) { try v.integer("kernel", "odd") { $0 % 2 == 1 } }
    v = try HyperparameterValues(parsing: "conv:kernel=5")
    try v.validate(against: specs)
    #expect(try v.integer("kernel", "odd") { $0 % 2 == 1 } == 5)
  }

  @Test("a network registered from outside the library is built by name and trained by the run")
  func outsideNetwork() throws {
    var networks = NetworkRegistry.standard
    networks.register(residualFactory)
    #expect(networks.names.last == "residual-mlp")
    let net = try networks.make("residual-mlp:width=24", context: NetworkContext(inputFeatures: 16, seed: 4))
    var names: [String] = []
    var copy = net
    copy.forEachParameter { name, _ in names.append(name) }
    #expect(names.contains("1.body.1.weight"))
    var run = try TrainingRun(
      trainer: Trainer(network: net, loss: TripletMarginLoss<Float>(margin: 0.2), optimizer: AnyOptimizer(Adam<Float>(learningRate: 0.01))),
      training: trainingData, validation: validationData, batches: ShuffledBatchSampler(count: trainingData.labels.count, batchSize: 24, seed: 1),
      settings: RunSettings(epochs: 3))
    let before = bits(run)
    let summary = try run.fit()
    #expect(bits(run) != before && summary.epochsRun == 3)
    // Every parameter moved, the residual body's included.
    for (a, b) in zip(run.untrained.parameters, run.trainer.network.parameters) { #expect(a.value != b.value, "\(a.name) did not move") }
  }

  @Test("training through the erased network and optimizer equals training the concrete types, bit for bit")
  func erasureIsExact() throws {
    let batches = MPerClassSampler(labels: trainingData.labels, m: 4, batchSize: 24, seed: 6)
    func network() -> MLP<Float> { MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3) }
    let miner = TripletMarginMiner<Float>(margin: 0.2, type: .semihard)
    var concrete = try TrainingRun(
      trainer: Trainer(network: network(), loss: TripletMarginLoss<Float>(margin: 0.2), sampler: miner, optimizer: SGD<Float>(learningRate: 0.05, momentum: 0.9)),
      training: trainingData, batches: batches, settings: RunSettings(epochs: 2, schedule: CosineSchedule(totalSteps: 8)))
    var erased = try TrainingRun(
      trainer: Trainer(
        network: AnyEmbeddingNetwork(network()), loss: AnyEmbeddingLoss(LossEvaluator(TripletMarginLoss<Float>(margin: 0.2))),
        sampler: AnyTupleSampler(miner), optimizer: AnyOptimizer(SGD<Float>(learningRate: 0.05, momentum: 0.9))),
      training: trainingData, batches: batches, settings: RunSettings(epochs: 2, schedule: CosineSchedule(totalSteps: 8)))
    _ = try concrete.fit()
    _ = try erased.fit()
    #expect(bits(concrete) == bits(erased))
    #expect(concrete.trainer.optimizer.state == erased.trainer.optimizer.state)
    #expect(erased.trainer.network.unwrapped(as: MLP<Float>.self) != nil && erased.trainer.optimizer.unwrapped(as: SGD<Float>.self) != nil)
  }

  @Test("erased networks and optimizers are values: a copy does not move when the original trains")
  func erasedCopiesAreIndependent() throws {
    var a = AnyEmbeddingNetwork(MLP<Float>.mlp(inputFeatures: 16, hidden: [8], embeddingDimension: 4, seed: 1))
    let b = a
    a.forEachParameter { _, p in p.value.apply { $0 + 1 } }
    #expect(a.parameters[0].value != b.parameters[0].value)
    var o = AnyOptimizer(Adam<Float>(learningRate: 0.1))
    let p = o
    o.learningRate = 0.5
    #expect(p.learningRate == 0.1 && o.learningRate == 0.5)
  }
}

/// A loss that hides `sharedScoreDistance`, so that the trainer cannot share its scores.
struct Unshared<Inner: EmbeddingLoss>: EmbeddingLoss {
  typealias Scalar = Inner.Scalar
  var inner: Inner
  var acceptsMemory: Bool { inner.acceptsMemory }
  var embeddingGradient: Matrix<Scalar> { inner.embeddingGradient }
  mutating func evaluate(_ e: Matrix<Scalar>, labels: [Int], memory: CrossBatchMemory<Scalar>?, tuples: Tuples?) -> LossValue<Scalar> {
    inner.evaluate(e, labels: labels, memory: memory, tuples: tuples)
  }
  mutating func updateReferences() { inner.updateReferences() }
  mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar { inner.visitParameters(&visitor) }
}

@Suite("One score matrix per step")
struct SharedScoresTests {
  @Test("a loss and a miner of the same distance share the scores, and training is bitwise what it was with two computations")
  func sharedEqualsUnshared() throws {
    let loss = LossEvaluator(TripletMarginLoss<Float>(margin: 0.2))
    let miner = TripletMarginMiner<Float>(margin: 0.2, type: .semihard)
    #expect(loss.sharedScoreDistance == miner.distance && AnyEmbeddingLoss(loss).sharedScoreDistance == miner.distance)
    #expect(Unshared(inner: loss).sharedScoreDistance == nil)
    func run<L: EmbeddingLoss>(_ l: L) throws -> [UInt32] where L.Scalar == Float {
      var r = try TrainingRun(
        trainer: Trainer(
          network: MLP<Float>.mlp(inputFeatures: 16, hidden: [32], embeddingDimension: 8, seed: 3), loss: l, sampler: miner,
          optimizer: Adam<Float>(learningRate: 0.01)),
        training: trainingData, batches: MPerClassSampler(labels: trainingData.labels, m: 4, batchSize: 24, seed: 6), settings: RunSettings(epochs: 3))
      _ = try r.fit()
      return bits(r)
    }
    #expect(try run(loss) == run(Unshared(inner: loss)))
  }
}
