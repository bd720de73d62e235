/// The learned-state checks for networks and layers, as `LossConformance.learnedStateFailures` is
/// for losses:
///
/// ```swift
/// @Test func myNetwork() {
///   let failures = StateConformance.networkFailures(input: x) { seed in MyNetwork<Double>(seed: seed) }
///   #expect(failures.isEmpty, "\(failures)")
/// }
/// ```
public enum StateConformance {
  /// Every failed check on a network built by `make(seed)`, described; empty when it conforms:
  /// - every parameter has a unique, non-empty name;
  /// - after one training step on `input` (forward in training mode, backward with a random
  ///   upstream gradient, a plain gradient step on the trainable parameters), every declared
  ///   parameter has moved, trainable or not (BatchNorm's running statistics move in the forward
  ///   pass);
  /// - a network built with another seed and loaded from the trained one's named tensors (and its
  ///   random generators) alone gives bitwise the same embeddings, in inference and in training
  ///   mode: a layer that holds a tensor it does not declare fails here.
  public static func networkFailures<N: EmbeddingNetwork>(
    input: Matrix<Double>, seed: UInt64 = 3, compute: ComputeContext = .automatic, _ make: (UInt64) -> N
  ) -> [String] where N.Scalar == Double {
    var failures: [String] = []
    var trained = make(1)
    let initial = trained.namedParameters()
    let names = initial.map(\.name)
    if Set(names).count != names.count { failures.append("two parameters share a name: \(names)") }
    if names.contains(where: { $0.isEmpty || $0.hasPrefix(".") || $0.hasSuffix(".") || $0.contains("..") }) {
      failures.append("a parameter name has an empty component: \(names)")
    }
    var rng = RandomSource(seed: seed)
    trained.forward(input, mode: .training, compute: compute)
    var upstream = trained.embeddings
    upstream.apply { _ in rng.normal() }
    trained.backward(upstream, compute: compute)
    trained.forEachParameter { _, p in if p.trainable { p.value.add(p.gradient, scaledBy: -0.1) } }
    let after = trained.namedParameters()
    for (b, a) in zip(initial, after) where b.parameter.value == a.parameter.value {
      failures.append("parameter \(a.name) did not move in a training step (trainable: \(a.parameter.trainable))")
    }
    var restored = make(2)
    let values = Dictionary(after.map { ($0.name, $0.parameter.value) }, uniquingKeysWith: { a, _ in a })
    var missing: [String] = []
    restored.forEachParameter { name, p in
      if let v = values[name], v.rows == p.value.rows, v.columns == p.value.columns { p.value = v } else { missing.append(name) }
    }
    if !missing.isEmpty { failures.append("a network built with another seed has parameters the trained one lacks: \(missing)") }
    if !restored.restoreRandomStates(trained.randomStates) { failures.append("the random generators do not fit a network built with another seed") }
    for mode in [ForwardMode.inference, .training] {
      var a = trained, b = restored
      a.forward(input, mode: mode, compute: compute)
      b.forward(input, mode: mode, compute: compute)
      if a.embeddings != b.embeddings {
        failures.append("loaded from the trained network's named parameters, a network built with another seed embeds differently (\(mode)): it holds state it does not declare")
      }
    }
    return failures
  }
}
