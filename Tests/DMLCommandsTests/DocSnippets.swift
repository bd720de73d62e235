// The code of the README and of the DocC articles, compiled: each snippet appears here verbatim
// (indentation aside), inside the declarations it needs, and `DocSnippetCheckTests` checks that
// every snippet of those documents is found in a compiled file of the repository.
import DMLCommands
import DMLTesting
import Foundation
import MetricLearning
import Testing

// MARK: README

/// The README's first steps: a forward and a backward pass, then an optimizer step.
func readmeSnippet(batch: Matrix<Float>, lossGradient: (Matrix<Float>) -> Matrix<Float>) {

  var net = MLP<Float>.mlp()                  // 784 → 512 → ReLU → 128 → L2-normalise
  var optimizer = Adam<Float>(learningRate: 1e-3)
  let compute = ComputeContext(threads: 2)     // threads, and the GEMM engine of this build
  net.forward(batch, mode: .training, compute: compute)  // batch: Matrix<Float>, 128 × 784
  let gradient = lossGradient(net.embeddings)  // d loss / d embeddings
  net.backward(gradient, compute: compute)
  optimizer.step(&net)
}

// MARK: Getting started

/// One training step.
func gettingStartedSnippet(batch: Matrix<Float>, labels: [Int]) throws -> StepResult<Float> {

  let net = MLP<Float>.mlp()                       // 784 → 512 → ReLU → 128 → L2-normalise
  var trainer = Trainer(
    network: net, loss: TripletMarginLoss<Float>(margin: 0.2),
    sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard), optimizer: Adam<Float>(learningRate: 1e-3))
  let result = try trainer.train(batch, labels: labels)   // one step: batch is Matrix<Float>, 128 × 784
  _ = net
  return result
}

// MARK: Adding a loss

public enum FooLossRegistration {
  public static var registrations: [LossFactory] { [LossFactory(FooLoss<Float>.self)] }
}

public struct FooLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  public var margin: Scalar
  public var distance: Distance { .squaredEuclidean }
  var mask = PairMask()

  public init(margin: Scalar = 1) { self.margin = margin }

  public static var registryName: String { "foo" }
  public static var summary: String { "mean d² of positive pairs + mean relu(margin − d²) of negative pairs" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("margin", .real, default: "1", "squared distance beyond which negatives add nothing", range: .positive)]
  }
  public init(_ v: HyperparameterValues, context: LossContext) throws { self.init(margin: Scalar(try v.real("margin"))) }

  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, m) = (scores.rows, scores.columns)
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: m, zeroed: true)
    let positives = Scalar(mask.values.filter { $0 == PairMask.positive }.count)
    let negatives = Scalar(mask.values.filter { $0 == PairMask.negative }.count)
    var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
    for i in 0..<n {
      for j in 0..<m {
        if mask.values[i * m + j] == PairMask.positive {
          pos.add(scores[i, j])
          scoreGradient[i, j] = 1 / positives
        } else if mask.values[i * m + j] == PairMask.negative {
          neg.add(Swift.max(0, margin - scores[i, j]))
          if scores[i, j] < margin { scoreGradient[i, j] = -1 / negatives }
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: pos.sum / Swift.max(1, positives), count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: neg.sum / Swift.max(1, negatives), count: neg.count, nonZero: neg.nonZero))
  }
}

@Suite("The article's loss passes the conformance suite")
struct ArticleLossTests {
  @Test func conformance() {
    #expect(LossConformance.failures(FooLoss<Double>(), FooLoss<Float>(), usesTuples: true).isEmpty)
  }
}

/// The article's proxies: a loss with learned references visits them.
struct ArticleProxies<Scalar: DMLScalar>: ParameterContainer {
  struct Proxies { var parameter = Parameter<Scalar>(name: "proxies", shape: [2, 2], value: Matrix<Scalar>(rows: 2, columns: 2)) }
  var proxies = Proxies()

  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&proxies.parameter)
  }
}

/// The article's registration, with its own loss (never run: it starts the command line).
func addingALossSnippet() {
  var registry = LossRegistry.standard
  registry.register(LossFactory(FooLoss<Float>.self))
  CommandRegistry.losses = registry

  DML.main()
}

// MARK: Writing a plugin

/// The article's loading of a plugin into the registries.
func pluginSnippet(path: String) throws -> (AnyEmbeddingLoss<Float>, AnyTupleSampler<Float>) {
  let plugin = try PluginLibrary.load(path)
  var losses = LossRegistry.standard, miners = MinerRegistry.standard
  try plugin.register(losses: &losses, miners: &miners)
  let (loss, _) = try losses.make("squared-hinge:alpha=0.2", context: LossContext(classes: 3, embeddingDimension: 64))
  let miner = try miners.make("none", context: MinerContext(embeddingDimension: 64))
  return (loss, miner)
}

// MARK: Searching at scale

/// The article's index: trained, filled, searched.
func searchingAtScaleSnippet(sample: Matrix<Float>, embeddings: Matrix<Float>, ids: [Int64], queries: Matrix<Float>) throws -> IndexSearchResult {
  var index = try IndexKind(parsing: "ivf:nlist=1024").make(dimension: 128, metric: .cosine)
  try index.train(sample)                       // IVF and PQ indexes learn their centroids
  try index.add(embeddings, ids: ids)           // ids: Int64, one per row, distinct
  let found = try index.search(queries, k: 10, parameters: IndexSearchParameters(nprobe: 16))
  return found
}

// MARK: Using the library from your own package

func trainAndEvaluate(checkpoints: String) throws -> TestReport {
  let pool = try FashionMNIST.load(train: true).restricted(to: [0, 1, 2, 3, 4])
  let train = pool.restricted(to: [0, 1, 2]), validation = pool.restricted(to: [3, 4]).subset(Array(0..<1000))
  var run = try TrainingRun(
    trainer: Trainer(
      network: MLP<Float>.mlp(inputFeatures: 784, hidden: [256], embeddingDimension: 64, seed: 0),
      loss: TripletMarginLoss<Float>(margin: 0.2), sampler: TripletMarginMiner<Float>(margin: 0.2, type: .semihard),
      optimizer: Adam<Float>(learningRate: 1e-3)),
    training: train, validation: validation,
    batches: MPerClassSampler(labels: train.labels, m: 4, batchSize: 128, seed: 1),
    settings: RunSettings(epochs: 10, patience: 2, checkpoint: CheckpointSettings(folder: checkpoints)))
  let summary = try run.fit { event in
    if case .epoch(let e) = event { print("epoch \(e.epoch): loss \(e.meanLoss), validation MAP@R \(e.validationMapAtR ?? 0)") }
  }
  print("best epoch \(summary.bestEpoch) of \(summary.epochsRun)")
  let report = try run.test(on: FashionMNIST.load(train: false).restricted(to: [5, 6, 7, 8, 9]))
  print("MAP@R trained \(report.trained.mapAtR), untrained \(report.untrained.mapAtR), raw \(report.rawInput.mapAtR)")
  return report
}

// MARK: Adding a layer

/// The article's residual block, a copy of the library's under another name.
struct ArticleResidual<Body: Layer>: Layer {
  typealias Scalar = Body.Scalar
  var body: Body
  var bodyOutput = Matrix<Scalar>()

  func outputFeatures(forInput n: Int) -> Int { n }

  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    body.forward(input, into: &bodyOutput, mode: mode, compute: compute)
    output.assign(bodyOutput)
    output.add(input)
  }

  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    body.backward(
      input: input, output: bodyOutput, outputGradient: outputGradient, inputGradient: &inputGradient,
      propagate: propagate, compute: compute)
    if propagate { inputGradient.add(outputGradient) }
  }

  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.enterScope("body")
    body.visitParameters(&visitor)
    visitor.leaveScope()
  }

  mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { body.visitRandomSources(visit) }
}

func residualMLP(seed: UInt64) -> Network<some Layer<Float>> {
  var rng = RandomSource(seed: seed)
  return Network(inputFeatures: 784, body: sequential {
    Linear<Float>(784, 128, rng: &rng)
    Residual {
      ReLU<Float>()
      Linear<Float>(128, 128, rng: &rng)
    }
    Linear<Float>(128, 64, rng: &rng)
    L2Normalize<Float>()
  })
}

@Suite("The layer article's code")
struct ArticleLayerTests {
  @Test func residualGradients() {
    var rng = RandomSource(seed: 1)
    let block = Residual {
      Linear<Double>(6, 9, rng: &rng)
      ReLU<Double>()
      Linear<Double>(9, 6, rng: &rng)
    }
    let report = GradientCheck.layer(block, input: Matrix(rows: 5, columns: 6, elements: (0..<30).map { Double($0 % 7) / 3 - 1 }))
    #expect(report.checked > 0 && report.maxError < 1e-6)
  }

  @Test func residualNetwork() {
    let net = residualMLP(seed: 2)
    #expect(net.embeddingDimension == 64 && net.parameters.count == 6)
  }
}
