import DMLCore
import DMLPluginABI
import DMLRun
import Foundation

/// Buffers reused from call to call: the values and gradients of the declared tensors as the
/// plugin reads and writes them, and triplets packed three `Int32` a tuple.
final class PluginScratch<Scalar: DMLScalar>: @unchecked Sendable {
  var values: [UnsafeMutableBufferPointer<Scalar>] = []
  var gradients: [UnsafeMutableBufferPointer<Scalar>] = []
  var triplets: [Int32] = []

  init(sizes: [Int]) {
    values = sizes.map { .allocate(capacity: $0) }
    gradients = sizes.map { .allocate(capacity: $0) }
  }

  deinit {
    values.forEach { $0.deallocate() }
    gradients.forEach { $0.deallocate() }
  }
}

/// A loss that a plugin computes, through `dml_plugin.h`: the host makes the score matrix and
/// back-propagates through the distance; the plugin's `compute` returns the value and
/// `∂loss/∂scores`. The learned tensors it declared are this value's parameters (named as the
/// plugin names them), so the optimizer steps them and checkpoints hold them.
///
/// A failure the plugin reports in `compute` leaves a NaN value and a zero gradient, and sets
/// `failure`, which the trainer turns into an error naming the plugin.
public struct PluginLoss<Scalar: DMLScalar>: PairwiseLoss {
  /// The component's declaration.
  public let component: PluginComponent
  /// The distance the instance chose.
  public let distance: Distance
  /// The declared tensors, as parameters.
  public var tensors: [Parameter<Scalar>]
  /// What the plugin reported in the last `compute`, if it failed.
  public private(set) var failure: String?
  let instance: PluginInstance
  let scratch: PluginScratch<Scalar>
  let referenceIndex: Int?

  /// Creates the loss through the plugin's `create`, with validated `values` and the run's
  /// `context`. An error of the plugin's is a `SpecificationError` naming the plugin and the loss.
  public init(_ component: PluginComponent, values: HyperparameterValues, context: LossContext) throws {
    guard component.kind == .loss, let d = component.descriptor.loss?.pointee else {
      throw PluginError("plugin \(component.library): '\(component.name)' is not a loss")
    }
    instance = try PluginInstance.create(
      component, d.create, destroy: d.destroy, values: values, context: dml_context(context), scalar: Scalar.self, allowsTensors: true)
    self.component = component
    distance = instance.distance
    tensors = instance.tensors.map { t in
      var value = Matrix<Scalar>(rows: t.rows, columns: t.columns)
      value.withUnsafeMutableBufferPointer { v in for k in 0..<v.count { v[k] = Scalar(t.initial[k]) } }
      return Parameter(name: t.name, shape: [t.rows, t.columns], value: value, group: t.group, decays: t.decays, trainable: t.trainable)
    }
    referenceIndex = instance.tensors.firstIndex(where: \.references)
    scratch = PluginScratch(sizes: instance.tensors.map { $0.rows * $0.columns })
  }

  /// Creates the loss from text such as `"squared-hinge:alpha=0.2"` (or `""` for the defaults).
  public init(_ component: PluginComponent, _ text: String = "", context: LossContext) throws {
    var values = try HyperparameterValues(parsing: text.isEmpty ? component.name : text)
    try values.validate(against: component.hyperparameters)
    try self.init(component, values: values, context: context)
  }

  /// The references tensor's values, when the plugin declared one.
  public var references: Matrix<Scalar>? { referenceIndex.map { tensors[$0].value } }

  /// Whether the plugin declared `DML_ACCEPTS_MEMORY` (and holds no references).
  public var acceptsCrossBatchMemory: Bool { component.acceptsMemory && referenceIndex == nil }

  /// Calls the plugin's `compute` on the scores, labels and tuples.
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, m = scores.columns
    scoreGradient.resize(rows: n, columns: m, zeroed: true)
    for (k, t) in tensors.enumerated() {
      t.value.withUnsafeBufferPointer { v in _ = scratch.values[k].initialize(from: v) }
      scratch.gradients[k].update(repeating: 0)
    }
    var output = dml_loss_output()
    var error = [CChar](repeating: 0, count: 1024)
    let compute = component.descriptor.loss!.pointee.compute!
    let status = scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        labels.withUnsafeBufferPointer { l in
          l.withMemoryRebound(to: Int64.self) { l64 in
            withTuples(tuples) { t in
              let values = scratch.values.map { UnsafeRawPointer($0.baseAddress) }
              let gradients = scratch.gradients.map { UnsafeMutableRawPointer($0.baseAddress) }
              return values.withUnsafeBufferPointer { vp in
                gradients.withUnsafeBufferPointer { gp in
                  var input = dml_loss_input(
                    scalar: Scalar.pluginScalar, rows: Int64(n), columns: Int64(m), scores: UnsafeRawPointer(s.baseAddress),
                    labels: l64.baseAddress, tuples: t, tensors: vp.baseAddress)
                  output.score_gradient = UnsafeMutableRawPointer(g.baseAddress)
                  output.tensor_gradients = gp.baseAddress
                  return compute(instance.state, &input, &output, &error, error.count)
                }
              }
            }
          }
        }
      }
    }
    guard status == DML_PLUGIN_OK else {
      let message = cMessage(error)
      return fail(message.isEmpty ? "compute returned \(status)" : message, &scoreGradient)
    }
    guard output.loss.isFinite, scoreGradient.isFinite, scratch.gradients.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
      return fail("compute returned a non-finite loss (\(output.loss)) or gradient", &scoreGradient)
    }
    guard output.count >= 0, output.nonzero >= 0, output.nonzero <= output.count else {
      return fail("compute returned count \(output.count) and nonzero \(output.nonzero)", &scoreGradient)
    }
    failure = nil
    for k in tensors.indices where tensors[k].trainable && k != referenceIndex {
      tensors[k].gradient.withUnsafeMutableBufferPointer { g in _ = g.initialize(from: scratch.gradients[k]) }
    }
    return LossValue(LossTerm(name: "loss", value: Scalar(output.loss), count: Int(output.count), nonZero: Int(output.nonzero)))
  }

  mutating func fail(_ message: String, _ scoreGradient: inout Matrix<Scalar>) -> LossValue<Scalar> {
    failure = "plugin \(component.library): loss '\(component.name)': \(message)"
    scoreGradient.resize(rows: scoreGradient.rows, columns: scoreGradient.columns, zeroed: true)
    return LossValue(LossTerm(name: "loss", value: .nan, count: 0, nonZero: 0))
  }

  /// The tuples in the ABI's layout for the duration of `body` (`nil`: none given).
  func withTuples<R>(_ tuples: Tuples?, _ body: (UnsafePointer<dml_tuples>?) -> R) -> R {
    guard let tuples else { return body(nil) }
    scratch.triplets.removeAll(keepingCapacity: true)
    for t in tuples.triplets { scratch.triplets.append(contentsOf: [t.x, t.y, t.z]) }
    // SIMD2<Int32> is two packed Int32s: pairs need no copy.
    return tuples.positivePairs.withUnsafeBytes { p in
      tuples.negativePairs.withUnsafeBytes { q in
        scratch.triplets.withUnsafeBufferPointer { t in
          var c = dml_tuples(
            are_pairs: tuples.arePairs ? 1 : 0, positive_count: Int64(tuples.positivePairs.count),
            positive: p.baseAddress?.assumingMemoryBound(to: Int32.self), negative_count: Int64(tuples.negativePairs.count),
            negative: q.baseAddress?.assumingMemoryBound(to: Int32.self), triplet_count: Int64(tuples.triplets.count), triplets: t.baseAddress)
          return body(&c)
        }
      }
    }
  }

  /// Stores `∂loss/∂references` as the references tensor's gradient, for the optimizer.
  public mutating func receiveReferenceGradient(_ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]) {
    if let r = referenceIndex, tensors[r].trainable { tensors[r].gradient.assign(gradient) }
  }

  /// Visits the declared tensors, in declaration order, under the names the plugin gave them.
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    for k in tensors.indices { visitor.visit(&tensors[k]) }
  }
}

/// A miner that a plugin implements, through `dml_plugin.h`: it reads the score matrix and labels
/// and emits pairs or triplets, which the host checks (indices in range, labels that make a
/// positive or a negative) before any loss reads them.
///
/// A failure the plugin reports, or an invalid tuple, leaves no tuples and sets `failure`, which
/// the trainer turns into an error naming the plugin.
public struct PluginMiner<Scalar: DMLScalar>: TupleSampler {
  /// The component's declaration.
  public let component: PluginComponent
  /// The distance the instance chose.
  public let distance: Distance
  /// What the miner has found so far.
  public var statistics = MiningStatistics()
  /// What went wrong in the last `mine`, if anything.
  public private(set) var failure: String?
  let instance: PluginInstance

  /// Creates the miner through the plugin's `create`.
  public init(_ component: PluginComponent, values: HyperparameterValues, context: MinerContext) throws {
    guard component.kind == .miner, let d = component.descriptor.miner?.pointee else {
      throw PluginError("plugin \(component.library): '\(component.name)' is not a miner")
    }
    instance = try PluginInstance.create(
      component, d.create, destroy: d.destroy, values: values,
      context: dml_context(classes: 0, embedding_dimension: Int64(context.embeddingDimension), seed: context.seed), scalar: Scalar.self,
      allowsTensors: false)
    self.component = component
    distance = instance.distance
  }

  /// Creates the miner from text such as `"hardest-triplets:distance=cosine"`.
  public init(_ component: PluginComponent, _ text: String = "", context: MinerContext) throws {
    var values = try HyperparameterValues(parsing: text.isEmpty ? component.name : text)
    try values.validate(against: component.hyperparameters)
    try self.init(component, values: values, context: context)
  }

  /// Whether the plugin declared `DML_ACCEPTS_MEMORY`.
  public var acceptsMemory: Bool { component.acceptsMemory }

  /// Calls the plugin's `mine`, then checks every tuple.
  public mutating func mine(scores: Matrix<Scalar>, labels: [Int], into tuples: inout Tuples) {
    let n = scores.rows, m = scores.columns
    let sink = PluginTupleSink()
    swap(&sink.tuples, &tuples)
    sink.tuples.removeAll(pairs: true)
    var error = [CChar](repeating: 0, count: 1024)
    let mineFunction = component.descriptor.miner!.pointee.mine!
    let retained = Unmanaged.passRetained(sink)
    let status = scores.withUnsafeBufferPointer { s in
      labels.withUnsafeBufferPointer { l in
        l.withMemoryRebound(to: Int64.self) { l64 in
          var input = dml_miner_input(
            scalar: Scalar.pluginScalar, rows: Int64(n), columns: Int64(m), scores: UnsafeRawPointer(s.baseAddress), labels: l64.baseAddress)
          var c = dml_tuple_sink(host: retained.toOpaque(), pair: PluginTupleSink.pair, triplet: PluginTupleSink.triplet)
          return mineFunction(instance.state, &input, &c, &error, error.count)
        }
      }
    }
    retained.release()
    swap(&sink.tuples, &tuples)
    tuples.arePairs = !sink.sawTriplets
    failure = nil
    if status != DML_PLUGIN_OK {
      let message = cMessage(error)
      failure = message.isEmpty ? "mine returned \(status)" : message
    } else if sink.sawPairs && sink.sawTriplets {
      failure = "mine emitted both pairs and triplets"
    } else if labels.count != m || n > m {
      failure = "\(labels.count) labels for \(n) × \(m) scores"
    } else if let bad = tuples.firstInvalid(rows: n, labels: labels) {
      failure = "mine emitted \(bad)"
    }
    if let f = failure {
      failure = "plugin \(component.library): miner '\(component.name)': \(f)"
      tuples.removeAll(pairs: true)
    }
    statistics.record(tuples.count)
  }
}

/// Collects what a plugin miner emits, through the C callbacks of `dml_tuple_sink`.
final class PluginTupleSink {
  var tuples = Tuples.none
  var sawPairs = false, sawTriplets = false

  static let pair: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32, Int32) -> Void = { host, a, b, positive in
    guard let host else { return }
    let sink = Unmanaged<PluginTupleSink>.fromOpaque(host).takeUnretainedValue()
    sink.sawPairs = true
    if positive != 0 { sink.tuples.positivePairs.append(SIMD2(a, b)) } else { sink.tuples.negativePairs.append(SIMD2(a, b)) }
  }

  static let triplet: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32, Int32) -> Void = { host, a, p, q in
    guard let host else { return }
    let sink = Unmanaged<PluginTupleSink>.fromOpaque(host).takeUnretainedValue()
    sink.sawTriplets = true
    sink.tuples.triplets.append(SIMD3(a, p, q))
  }
}

/// The NUL-terminated message a plugin wrote into `buffer` (all of it if it wrote no NUL).
func cMessage(_ buffer: [CChar]) -> String {
  let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
  return String(decoding: bytes, as: UTF8.self)
}
