import ArgumentParser
import Foundation
import MetricLearning

/// Builds the components the flags name, from `CommandRegistry`. An error names the flag and
/// its value.
enum Builders {
  /// Makes the component `text` of `registry` in `context`; errors name `flag`.
  static func make<P, C>(_ registry: ComponentRegistry<P, C>, _ text: String, flag: String, context: C) throws -> P {
    do { return try registry.make(text, context: context) } catch let e as SpecificationError {
      throw ValidationError("\(flag) \(text): \(e.description)")
    }
  }

  /// The factory that `text` names in `registry` and its validated values; errors name `flag`.
  static func values<P, C>(_ registry: ComponentRegistry<P, C>, _ text: String, flag: String) throws -> HyperparameterValues {
    do { return try registry.values(text).values } catch let e as SpecificationError {
      throw ValidationError("\(flag) \(text): \(e.description)")
    }
  }

  /// The compute context of a command: `--threads` (else the threads OpenBLAS was started with,
  /// `OPENBLAS_NUM_THREADS` or the cores) and the GEMM engine `DML_GEMM` names (`kernels` or
  /// `blas`; unset, the fastest of this build and CPU). `kernels` on a CPU without AVX-512 is
  /// refused: the library would run their portable loop, far slower than BLAS.
  static func compute(threads: Int? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws
    -> ComputeContext
  {
    var context = ComputeContext.automatic
    if let threads {
      context.threads = threads
    } else if environment["OPENBLAS_NUM_THREADS"] == nil,
      let local = Int(environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? environment["MPI_LOCALNRANKS"] ?? ""), local > 1
    {
      // Several ranks on one machine share its cores (as torchrun sets one thread per process).
      context.threads = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount / local)
    }
    if let name = environment["DML_GEMM"], !name.isEmpty {
      guard let engine = LayerGemm.Engine(rawValue: name) else {
        throw ValidationError("DML_GEMM=\(name) in the environment: expected kernels or blas")
      }
      if engine == .kernels && !LayerGemm.kernelsAvailable {
        throw ValidationError("DML_GEMM=kernels in the environment: this CPU lacks AVX-512, which the kernels need; use blas or unset it")
      }
      context.engine = engine
    }
    return context
  }

  /// The network of `text`; pretrained weights (`weights=`) are read unless `loadsWeights` is
  /// false (a checkpoint's parameters replace them), and what was loaded is reported on stderr.
  static func network(
    _ text: String, inputFeatures: Int, imageShape: (height: Int, width: Int, channels: Int)?, seed: UInt64, loadsWeights: Bool = true
  ) throws -> AnyEmbeddingNetwork<Float> {
    var shape: ImageShape?
    if let s = imageShape, s.height > 0, s.width > 0, s.channels > 0 { shape = ImageShape(height: s.height, width: s.width, channels: s.channels) }
    var context = NetworkContext(inputFeatures: inputFeatures, imageShape: shape, seed: seed)
    context.loadsWeights = loadsWeights
    context.report = { warn("note: \($0)") }
    return try make(CommandRegistry.networks, text, flag: "--network", context: context)
  }

  static func loss(_ texts: [String], context: LossContext) throws -> (AnyEmbeddingLoss<Float>, usesTuples: Bool) {
    let registry = CommandRegistry.losses
    var parts: [(AnyEmbeddingLoss<Float>, Float)] = []
    var usesTuples = false
    for text in texts {
      parts.append(try registry.make(text, context: context))
      let values = try HyperparameterValues(parsing: text)
      // A self-supervised loss makes its own pairs of views: it reads no miner's tuples.
      // So does a loss evaluated in anchor blocks: it reads every pair of the batch.
      let selfSupervised = (values.given["self_supervised"] ?? "none") != "none"
      let blocked = (Int(values.given["anchor_block"] ?? "0") ?? 0) > 0
      usesTuples = usesTuples || (!selfSupervised && !blocked && (registry.factories[values.component]?.usesTuples ?? false))
    }
    guard !parts.isEmpty else { throw ValidationError("at least one --loss is needed") }
    if parts.count == 1 && parts[0].1 == 1 { return (parts[0].0, usesTuples) }
    // Several losses (or one with a weight): a weighted sum whose part k names its parameters
    // `loss.k.…` when there are several.
    return (AnyEmbeddingLoss(MultipleLosses(parts.map(\.0), weights: parts.map(\.1))), usesTuples)
  }

  static func sampler(_ text: String, embedding: Int, seed: UInt64) throws -> AnyTupleSampler<Float> {
    try make(CommandRegistry.miners, text, flag: "--miner", context: MinerContext(embeddingDimension: embedding, seed: seed))
  }

  static func optimizer(_ text: String) throws -> AnyOptimizer<Float> {
    try make(CommandRegistry.optimizers, text, flag: "--optimizer", context: OptimizerContext())
  }

  static func batchSampler(_ text: String, labels: [Int], seed: UInt64, superLabels: [Int]? = nil) throws -> any BatchSampler {
    try make(CommandRegistry.batches, text, flag: "--batch", context: BatchContext(labels: labels, seed: seed, superLabels: superLabels))
  }

  static func schedule(_ text: String, stepsPerEpoch: Int, epochs: Int) throws -> any LearningRateSchedule {
    try make(CommandRegistry.schedules, text, flag: "--schedule", context: ScheduleContext(stepsPerEpoch: stepsPerEpoch, epochs: epochs))
  }
}
