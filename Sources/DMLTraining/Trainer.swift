import Foundation

/// No mining: the loss uses every pair or triplet of the batch (or ignores tuples).
public struct NoMining<Scalar: DMLScalar>: TupleSampler {
  public var distance: Distance { .euclidean }
  public var providesTuples: Bool { false }
  public var acceptsMemory: Bool { true }
  public var statistics = MiningStatistics()
  /// The no-mining sampler.
  public init() {}
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    tuples = .none
  }
}

/// What one training step produced.
public struct StepResult<Scalar: DMLScalar>: Sendable {
  /// The loss of the batch, before the update.
  public var loss: LossValue<Scalar>
  /// Tuples the sampler mined (`nil` without mining).
  public var mined: Int?

  /// A result from the step's loss and the number of tuples mined.
  @inlinable
  public init(loss: LossValue<Scalar>, mined: Int?) {
    self.loss = loss
    self.mined = mined
  }
}

/// A non-finite value stopped training.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
  /// The message, naming the step or the file at fault.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// The training step, specialised at compile time for one network, loss, sampler and optimizer:
/// batch → embeddings → (mining) → loss → backward → optimizer → reference updates. Nothing in
/// the step goes through an existential or a dictionary, and after warm-up it allocates nothing.
public struct Trainer<
  Network: EmbeddingNetwork, Loss: EmbeddingLoss, Sampler: TupleSampler, Opt: Optimizer
> where Network.Scalar == Loss.Scalar, Loss.Scalar == Sampler.Scalar, Sampler.Scalar == Opt.Scalar {
  /// The scalar type of the network, the loss, the sampler and the optimizer.
  public typealias Scalar = Network.Scalar
  /// The network being trained.
  public var network: Network
  /// The loss, whose parameters (proxies, if any) are stepped with the network's.
  public var loss: Loss
  /// The tuple sampler (miner); `NoMining` for none.
  public var sampler: Sampler
  /// The optimizer of the network's and the loss's parameters.
  public var optimizer: Opt
  /// Whether `sampler` mines (false for `NoMining`).
  public let mines: Bool
  /// Optimizer steps taken.
  public var step = 0
  /// A cross-batch memory that extends the loss's and the miner's reference set (`nil`: none).
  /// Set it only when `loss.acceptsMemory` and `sampler.acceptsMemory`.
  public var memory: CrossBatchMemory<Scalar>?
  @usableFromInline var tuples = Tuples.none
  @usableFromInline var scores = Matrix<Scalar>()
  @usableFromInline var workspace = DistanceWorkspace<Scalar>()
  /// The rows of the embedding gradient that the last data-parallel step back-propagated on this
  /// rank (its own rows' share).
  public var routedGradient = Matrix<Scalar>()
  /// The threads and GEMM engine of every step: the network's passes, the score products, the
  /// optimizer's updates. Setting it hands it to the loss and the optimizer.
  public var compute: ComputeContext {
    didSet { distribute() }
  }

  /// A trainer at step 0 without a cross-batch memory; `mines` is `sampler.providesTuples`.
  public init(
    network: Network, loss: Loss, sampler: Sampler, optimizer: Opt, compute: ComputeContext = .automatic
  ) {
    self.network = network
    self.loss = loss
    self.sampler = sampler
    self.optimizer = optimizer
    self.compute = compute
    mines = sampler.providesTuples
    distribute()
  }

  /// Gives `compute` to the loss, the optimizer and the trainer's own score workspace.
  @usableFromInline
  mutating func distribute() {
    loss.compute = compute
    optimizer.compute = compute
    workspace.compute = compute
  }

  /// One optimisation step on a batch. Throws, before touching the parameters, if the loss or a
  /// gradient is not finite.
  @inlinable
  public mutating func train(_ batch: Matrix<Scalar>, labels: [Int]) throws -> StepResult<Scalar> {
    network.forward(batch, mode: .training, compute: compute)
    var mined: Int?
    let usesMemory = memory?.isUsed(atStep: step) ?? false
    if usesMemory {
      precondition(loss.acceptsMemory && (!mines || sampler.acceptsMemory), "Trainer: the loss or the miner cannot use a cross-batch memory")
      memory!.makeReferences(batch: network.embeddings, labels: labels)
    }
    // One score matrix per step: when the miner and the loss compare the batch with itself under
    // the same distance, the loss evaluates on the miner's scores.
    var shared = false
    if mines {
      let e = network.embeddings
      if usesMemory {
        sampler.distance.scores(e, memory!.references, into: &scores, workspace: &workspace)
        sampler.mine(scores: scores, labels: memory!.referenceLabels, into: &tuples)
      } else {
        sampler.distance.scores(e, e, sameSet: true, into: &scores, workspace: &workspace)
        sampler.mine(scores: scores, labels: labels, into: &tuples)
        shared = loss.sharedScoreDistance == sampler.distance
      }
      mined = tuples.count
      if let failure = sampler.failure { throw TrainingError("step \(step + 1): \(failure); parameters left as they were") }
    }
    let value =
      shared
      ? loss.evaluate(network.embeddings, labels: labels, tuples: tuples, sharedScores: &scores, workspace: &workspace)
      : loss.evaluate(network.embeddings, labels: labels, memory: usesMemory ? memory : nil, tuples: mines ? tuples : nil)
    if let failure = loss.failure { throw TrainingError("step \(step + 1): \(failure); parameters left as they were") }
    guard value.total.isFinite else {
      throw TrainingError("step \(step + 1): the loss is \(value.total); parameters left as they were")
    }
    guard loss.embeddingGradient.isFinite, network.embeddings.isFinite else {
      throw TrainingError(
        "step \(step + 1): the embeddings or the loss's gradient are not finite (loss \(value.total)); parameters left as they were")
    }
    // The step's embeddings join the memory without gradient, as in the paper.
    if memory?.fills(atStep: step) ?? false { memory!.enqueue(network.embeddings, labels: labels) }
    network.backward(loss.embeddingGradient, compute: compute)
    optimizer.scope("network") { network.visitParameters(&$0) }
    optimizer.scope("loss") { loss.visitParameters(&$0) }
    loss.updateReferences()
    step += 1
    return StepResult(loss: value, mined: mined)
  }
}

extension Trainer {
  /// A trainer of a `PairwiseLoss` (a loss on a score matrix), which runs in a `LossEvaluator`:
  /// the evaluator computes the scores, the loss and the backward pass to the embeddings.
  public init<Pairwise: PairwiseLoss>(
    network: Network, loss: Pairwise, sampler: Sampler, optimizer: Opt, compute: ComputeContext = .automatic
  ) where Loss == LossEvaluator<Pairwise> {
    self.init(network: network, loss: LossEvaluator(loss), sampler: sampler, optimizer: optimizer, compute: compute)
  }

  /// A trainer without a miner: the loss sees every pair or triplet of the batch.
  public init(
    network: Network, loss: Loss, optimizer: Opt, compute: ComputeContext = .automatic
  ) where Sampler == NoMining<Network.Scalar> {
    self.init(network: network, loss: loss, sampler: NoMining(), optimizer: optimizer, compute: compute)
  }

  /// A trainer of a `PairwiseLoss` without a miner.
  public init<Pairwise: PairwiseLoss>(
    network: Network, loss: Pairwise, optimizer: Opt, compute: ComputeContext = .automatic
  ) where Loss == LossEvaluator<Pairwise>, Sampler == NoMining<Network.Scalar> {
    self.init(network: network, loss: LossEvaluator(loss), sampler: NoMining(), optimizer: optimizer, compute: compute)
  }
}
