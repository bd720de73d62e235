@_exported import DMLCore

/// Settings of one optimizer parameter group. A `nil` field falls back to the optimizer's own.
public struct ParameterGroup: Sendable, Equatable, Codable {
  /// The group's base learning rate.
  public var learningRate: Double?
  /// The group's weight decay.
  public var weightDecay: Double?

  /// A group with the given settings; a `nil` one keeps the optimizer's own.
  public init(learningRate: Double? = nil, weightDecay: Double? = nil) {
    self.learningRate = learningRate
    self.weightDecay = weightDecay
  }
}

/// Updates parameters from their gradients.
///
/// An optimizer is a `ParameterVisitor`: it visits the containers it steps, and keeps its state
/// (momenta, step counts) per parameter *name*, the full path of scopes that leads to it
/// (`network.0.weight`, `loss.proxies`), as PyTorch's `state_dict` keys it. Several containers (a
/// network and a loss with proxies) are stepped together, each in a scope of its own:
/// ```swift
/// optimizer.scope("network") { network.visitParameters(&$0) }
/// optimizer.scope("loss") { loss.visitParameters(&$0) }
/// ```
/// Internally each name is given a slot, a position in the state buffers, on its first update;
/// the lookup hashes the current path without building a string, so a step allocates nothing once
/// every name has its slot. Non-trainable parameters are skipped.
///
/// The effective learning rate of a parameter is its group's rate (or `learningRate`) times
/// `learningRateScale`, which a schedule sets every step.
public protocol Optimizer<Scalar>: ParameterVisitor {
  /// The base learning rate of the default group.
  var learningRate: Double { get set }
  /// The schedule's factor, applied to every group's rate.
  var learningRateScale: Double { get set }
  /// Per-group settings, indexed by `Parameter.group`; groups past the end use the defaults.
  var groups: [ParameterGroup] { get set }
  /// Updates one parameter, whose state lives in `slot`.
  mutating func update(_ parameter: inout Parameter<Scalar>, slot: Int)
  /// The slot of each parameter name, and the path being visited.
  var slots: ParameterSlots { get set }
  /// The per-slot buffers (momenta) by buffer name, and the per-slot step counts.
  var slotState: SlotState<Scalar> { get set }
  /// The threads an update may use. An optimizer that splits its updates stores it; the default
  /// ignores it.
  var compute: ComputeContext { get set }
}

/// The names of an optimizer's slots, and the scopes of the visit in progress.
public struct ParameterSlots: Sendable, Equatable {
  /// The scopes entered so far in the current visit, outermost first.
  public var path: [String] = []
  /// The slot of each full name: by the scopes' path, then by the parameter's own name. A hit
  /// reads the path without changing it, so a step allocates nothing.
  @usableFromInline var index: [[String]: [String: Int]] = [:]
  /// The full name of each slot, by slot.
  public private(set) var names: [String] = []

  /// No slots yet.
  public init() {}

  /// The slot of the parameter `name` in the current path, given a new one on first use.
  @inlinable
  public mutating func slot(for name: String) -> Int {
    if let slot = index[path]?[name] { return slot }
    return add(path, name)
  }

  /// Gives the parameter `name` under `scopes` the next slot.
  @usableFromInline
  mutating func add(_ scopes: [String], _ name: String) -> Int {
    let slot = names.count
    // A copy with its own buffer, so that `path`'s buffer stays uniquely owned.
    index[scopes.map { $0 }, default: [:]][name] = slot
    names.append((scopes + [name]).joined(separator: "."))
    return slot
  }

  /// Slots for `names`, in that order, replacing every slot (the path is kept).
  public mutating func reset(to names: [String]) {
    index = [:]
    self.names = []
    for name in names {
      let components = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
      _ = add(Array(components.dropLast()), components.last ?? "")
    }
  }
}

/// An optimizer's per-slot state: named per-slot buffers and per-slot step counts.
public struct SlotState<Scalar: DMLScalar>: Sendable, Equatable {
  /// Per-slot buffers by buffer name (`velocity` for SGD; `m` and `v` for Adam).
  public var buffers: [String: SlotBuffers<Scalar>]
  /// Updates taken per slot (empty for optimizers that do not count them).
  public var stepCounts: [Int]

  /// A state with the given buffers and step counts (empty by default).
  public init(buffers: [String: SlotBuffers<Scalar>] = [:], stepCounts: [Int] = []) {
    self.buffers = buffers
    self.stepCounts = stepCounts
  }
}

/// An optimizer's state keyed by parameter name, for checkpoints: what PyTorch's optimizer
/// `state_dict` holds, with names instead of positions.
public struct OptimizerState<Scalar: DMLScalar>: Sendable, Equatable {
  /// Buffers by buffer name (`velocity`; `m`, `v`), then by parameter name.
  public var buffers: [String: [String: [Scalar]]]
  /// Updates taken, by parameter name (empty for optimizers that do not count them).
  public var stepCounts: [String: Int]

  /// A state with the given buffers and step counts (empty by default).
  public init(buffers: [String: [String: [Scalar]]] = [:], stepCounts: [String: Int] = [:]) {
    self.buffers = buffers
    self.stepCounts = stepCounts
  }

  /// Every parameter name the state mentions, sorted.
  public var parameterNames: [String] {
    Set(buffers.values.flatMap(\.keys)).union(stepCounts.keys).sorted()
  }
}

extension Optimizer {
  /// `.serial`, and setting it does nothing: for optimizers whose updates run on one thread.
  @inlinable public var compute: ComputeContext {
    get { .serial }
    set {}
  }

  /// Enters the scope `name` of the parameters about to be visited.
  @inlinable public mutating func enterScope(_ name: String) { slots.path.append(name) }
  /// Leaves the scope entered last.
  @inlinable public mutating func leaveScope() { slots.path.removeLast() }

  /// Updates `parameter` if it is trainable and not frozen, with the state kept under its full
  /// name.
  @inlinable
  public mutating func visit(_ parameter: inout Parameter<Scalar>) {
    guard parameter.trainable && !parameter.frozen else { return }
    let slot = slots.slot(for: parameter.name)
    update(&parameter, slot: slot)
  }

  /// Updates every parameter of `container`, named in the scope `scope` if given.
  @inlinable
  public mutating func step<C: ParameterContainer>(_ container: inout C, scope: String? = nil) where C.Scalar == Scalar {
    if let scope { enterScope(scope) }
    container.visitParameters(&self)
    if scope != nil { leaveScope() }
  }

  /// The state keyed by parameter name: every buffer and step count of every slot.
  public var state: OptimizerState<Scalar> {
    get {
      let s = slotState
      var state = OptimizerState<Scalar>()
      for (slot, name) in slots.names.enumerated() {
        for (buffer, b) in s.buffers where slot < b.buffers.count && !b.buffers[slot].isEmpty {
          state.buffers[buffer, default: [:]][name] = b.buffers[slot]
        }
        if slot < s.stepCounts.count { state.stepCounts[name] = s.stepCounts[slot] }
      }
      return state
    }
    set {
      let names = newValue.parameterNames
      slots.reset(to: names)
      var s = SlotState<Scalar>()
      for (buffer, values) in newValue.buffers {
        var b = SlotBuffers<Scalar>()
        b.buffers = names.map { values[$0] ?? [] }
        s.buffers[buffer] = b
      }
      if !newValue.stepCounts.isEmpty { s.stepCounts = names.map { newValue.stepCounts[$0] ?? 0 } }
      slotState = s
    }
  }

  /// The effective learning rate and weight decay of a parameter in `group`.
  @inlinable
  public func settings(forGroup group: Int, defaultDecay: Double) -> (lr: Double, decay: Double) {
    let g = group < groups.count ? groups[group] : ParameterGroup()
    return ((g.learningRate ?? learningRate) * learningRateScale, g.weightDecay ?? defaultDecay)
  }
}

/// Per-slot buffers of an optimizer, grown on first use and reused afterwards.
public struct SlotBuffers<Scalar: DMLScalar>: Sendable, Codable, Equatable {
  /// One buffer per slot.
  public var buffers: [[Scalar]] = []

  /// Empty buffers; `prepare(slot:count:)` adds the slots.
  public init() {}

  /// Makes sure slot `slot` has a zeroed buffer of `count` values; returns whether it was new.
  @inlinable
  @discardableResult
  public mutating func prepare(slot: Int, count: Int) -> Bool {
    while buffers.count <= slot { buffers.append([]) }
    if buffers[slot].count != count {
      buffers[slot] = [Scalar](repeating: 0, count: count)
      return true
    }
    return false
  }
}

/// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, with
/// PyTorch's `torch.optim.SGD` update:
/// ```
/// g ← ∇ + λ θ;  b ← μ b + (1 − τ) g (b ← g on the first step);
/// g ← g + μ b (Nesterov) or b;  θ ← θ − η g
/// ```
public struct SGD<Scalar: DMLScalar>: Optimizer {
  /// The learning rate η.
  public var learningRate: Double
  /// The schedule's factor on η.
  public var learningRateScale: Double = 1
  /// The momentum μ (0 disables it).
  public var momentum: Double
  /// The dampening τ of the momentum.
  public var dampening: Double
  /// Use Nesterov momentum.
  public var nesterov: Bool
  /// The L2 weight decay λ, for parameters with `decays` set.
  public var weightDecay: Double
  /// Per-group settings.
  public var groups: [ParameterGroup]
  /// The momentum buffers.
  public var velocity = SlotBuffers<Scalar>()
  /// The slot of each parameter name.
  public var slots = ParameterSlots()

  /// The momentum buffers, named `velocity`; setting a state without them clears them.
  public var slotState: SlotState<Scalar> {
    get { SlotState(buffers: ["velocity": velocity]) }
    set { velocity = newValue.buffers["velocity"] ?? SlotBuffers() }
  }

  /// SGD with learning rate 0.01 by default and, as in PyTorch, no momentum, dampening, Nesterov
  /// or weight decay. Nesterov momentum needs `momentum > 0` and no dampening.
  public init(
    learningRate: Double = 0.01, momentum: Double = 0, dampening: Double = 0,
    nesterov: Bool = false, weightDecay: Double = 0, groups: [ParameterGroup] = []
  ) {
    precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov needs momentum and no dampening")
    self.learningRate = learningRate
    self.momentum = momentum
    self.dampening = dampening
    self.nesterov = nesterov
    self.weightDecay = weightDecay
    self.groups = groups
  }

  @inlinable
  public mutating func update(_ parameter: inout Parameter<Scalar>, slot: Int) {
    let (lr, wd) = settings(forGroup: parameter.group, defaultDecay: weightDecay)
    let eta = Scalar(lr), lambda = Scalar(parameter.decays ? wd : 0)
    let mu = Scalar(momentum), damp = Scalar(1 - dampening), nest = nesterov
    let first = momentum != 0 ? velocity.prepare(slot: slot, count: parameter.count) : false
    parameter.gradient.withUnsafeBufferPointer { grad in
      parameter.value.withUnsafeMutableBufferPointer { theta in
        if momentum == 0 {
          for i in theta.indices { theta[i] -= eta * (grad[i] + lambda * theta[i]) }
          return
        }
        velocity.buffers[slot].withUnsafeMutableBufferPointer { b in
          for i in theta.indices {
            let g = grad[i] + lambda * theta[i]
            b[i] = first ? g : mu * b[i] + damp * g
            theta[i] -= eta * (nest ? g + mu * b[i] : b[i])
          }
        }
      }
    }
  }
}

/// Adam (Kingma and Ba 2015) with PyTorch's `torch.optim.Adam` update, including its L2 weight
/// decay added to the gradient; with `decoupled`, AdamW's decay (Loshchilov and Hutter 2019),
/// `θ ← θ (1 − η λ)` before the Adam step.
public struct Adam<Scalar: DMLScalar>: Optimizer {
  /// The learning rate η.
  public var learningRate: Double
  /// The schedule's factor on η.
  public var learningRateScale: Double = 1
  /// The decay rates of the first and second moments.
  public var beta1: Double, beta2: Double
  /// Added to the denominator for stability.
  public var epsilon: Double
  /// The weight decay λ, for parameters with `decays` set.
  public var weightDecay: Double
  /// Decoupled weight decay (AdamW) instead of L2 in the gradient.
  public var decoupled: Bool
  /// Per-group settings.
  public var groups: [ParameterGroup]
  /// First and second moments, and the step count, per slot.
  ///
  /// This one holds the first moments m, the running means of the gradients (`m` in `state`).
  public var firstMoment = SlotBuffers<Scalar>()
  /// The second moments v, the running means of the squared gradients (`v` in `state`).
  public var secondMoment = SlotBuffers<Scalar>()
  /// Updates taken per slot, for the bias corrections.
  public var stepCounts: [Int] = []
  /// The slot of each parameter name.
  public var slots = ParameterSlots()
  /// The threads a large parameter's update is split over.
  public var compute = ComputeContext.automatic

  /// The moments, named `m` and `v`, and the step counts; setting a state without them clears them.
  public var slotState: SlotState<Scalar> {
    get { SlotState(buffers: ["m": firstMoment, "v": secondMoment], stepCounts: stepCounts) }
    set {
      firstMoment = newValue.buffers["m"] ?? SlotBuffers()
      secondMoment = newValue.buffers["v"] ?? SlotBuffers()
      stepCounts = newValue.stepCounts
    }
  }

  /// Adam with PyTorch's defaults: learning rate 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-8 and no weight
  /// decay; `decoupled` gives AdamW's decay.
  public init(
    learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
    epsilon: Double = 1e-8, weightDecay: Double = 0, decoupled: Bool = false,
    groups: [ParameterGroup] = []
  ) {
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
    self.decoupled = decoupled
    self.groups = groups
  }

  /// AdamW, with PyTorch's default weight decay of 0.01.
  public static func adamW(
    learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
    epsilon: Double = 1e-8, weightDecay: Double = 0.01, groups: [ParameterGroup] = []
  ) -> Adam {
    Adam(
      learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
      weightDecay: weightDecay, decoupled: true, groups: groups)
  }

  @inlinable
  public mutating func update(_ parameter: inout Parameter<Scalar>, slot: Int) {
    let (lr, wd) = settings(forGroup: parameter.group, defaultDecay: weightDecay)
    firstMoment.prepare(slot: slot, count: parameter.count)
    secondMoment.prepare(slot: slot, count: parameter.count)
    while stepCounts.count <= slot { stepCounts.append(0) }
    stepCounts[slot] += 1
    let t = Double(stepCounts[slot])
    let bias1 = 1 - Double.pow(beta1, t), bias2 = 1 - Double.pow(beta2, t)
    let stepSize = Scalar(lr / bias1)
    let rootBias2 = Scalar(bias2.squareRoot())
    let b1 = Scalar(beta1), b2 = Scalar(beta2), eps = Scalar(epsilon)
    let lambda = Scalar(parameter.decays ? wd : 0)
    let shrink = decoupled ? 1 - Scalar(lr) * lambda : 1
    let l2 = decoupled ? 0 : lambda
    let count = parameter.count
    parameter.gradient.withUnsafeBufferPointer { gradBuffer in
      parameter.value.withUnsafeMutableBufferPointer { thetaBuffer in
        firstMoment.buffers[slot].withUnsafeMutableBufferPointer { mBuffer in
          secondMoment.buffers[slot].withUnsafeMutableBufferPointer { vBuffer in
            // In chunks, so that each loop vectorises: the moments, then the square roots of v in
            // one vectorised pass (`squareRootInPlace`; a scalar `squareRoot()` in the loop kept it
            // scalar), then the step. Every element sees the same operations as the one-loop form.
            // Large parameters are split over `compute`'s threads: each element is updated on its
            // own, so the split changes no result.
            let grad = gradBuffer.baseAddress!, theta = thetaBuffer.baseAddress!
            let m = mBuffer.baseAddress!, v = vBuffer.baseAddress!
            let parts = compute.chunkCount(rows: count, workPerRow: 1, minimumWork: Adam.parallelMinimum)
            BatchParallelism.forEachChunk(rows: count, chunks: parts) { _, range in
              withUnsafeTemporaryAllocation(of: Scalar.self, capacity: Adam.chunk) { rootBuffer in
                let root = rootBuffer.baseAddress!
                var start = range.lowerBound
                while start < range.upperBound {
                  let n = Swift.min(Adam.chunk, range.upperBound - start)
                  let (g0, t0, m0, v0) = (grad + start, theta + start, m + start, v + start)
                  for i in 0..<n {
                    let g = g0[i] + l2 * t0[i]
                    m0[i] = b1 * m0[i] + (1 - b1) * g
                    v0[i] = b2 * v0[i] + (1 - b2) * g * g
                    root[i] = v0[i]
                  }
                  Scalar.squareRootInPlace(root, count: n)
                  for i in 0..<n {
                    t0[i] = t0[i] * shrink - stepSize * m0[i] / (root[i] / rootBias2 + eps)
                  }
                  start += n
                }
              }
            }
          }
        }
      }
    }
  }

  /// Elements per chunk of the update: 1 KiB, which `withUnsafeTemporaryAllocation` always puts
  /// on the stack (a larger buffer may go to the heap, one allocation per parameter and step).
  @usableFromInline static var chunk: Int { 1024 / MemoryLayout<Scalar>.stride }
  /// Elements per core below which the update stays on one core.
  @usableFromInline static var parallelMinimum: Int { 1 << 15 }
}
