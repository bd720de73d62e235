/// One named check of a conformance suite and what failed in it (nothing: it passed).
public struct ConformanceCheck: Sendable, Equatable {
  /// What the check verifies, in a few words.
  public var name: String
  /// Each failure, described; empty when the check passed.
  public var failures: [String]
  /// Whether the check passed.
  public var passed: Bool { failures.isEmpty }
  /// A check named `name` with `failures`.
  public init(name: String, failures: [String]) {
    self.name = name
    self.failures = failures
  }
}

/// The conformance suite every `PairwiseLoss` passes, including one written in another package:
///
/// ```swift
/// @Test func myLoss() {
///   #expect(LossConformance.failures(MyLoss<Double>(), MyLoss<Float>()).isEmpty)
/// }
/// ```
///
/// It checks, on seeded random batches:
/// - the gradient with respect to the embeddings and to every learned reference against central
///   finite differences, in Double;
/// - equivariance under permuting the batch;
/// - that an empty tuple set gives a zero loss and an all-zero gradient, never NaN (for losses
///   that read tuples);
/// - a non-zero value and gradient on an ordinary batch, so that a loss returning 0 cannot pass;
/// - finite values and gradients when embeddings are duplicated, or all identical, and on a batch
///   of a single class;
/// - determinism: the same batch twice gives bitwise the same value and gradient;
/// - that Float and Double agree within 1e-4;
/// - its learned state (`learnedStateFailures`): every declared tensor moves in a training step,
///   learned references are declared, and a copy restored from the named tensors alone continues
///   exactly as the original.
public enum LossConformance {
  /// The batch the suite uses: `rows` embeddings of `dimension`, labels cycling over `classes`.
  public struct Batch: Sendable {
    /// The `rows × dimension` embeddings, drawn from a standard normal distribution.
    public var embeddings: Matrix<Double>
    /// The label of each row: every class in turn, then shuffled.
    public var labels: [Int]

    /// A batch seeded by `seed`: by default 12 rows of dimension 6 over 4 classes, seed 1.
    public init(rows: Int = 12, dimension: Int = 6, classes: Int = 4, seed: UInt64 = 1) {
      var rng = RandomSource(seed: seed)
      embeddings = Matrix(rows: rows, columns: dimension)
      embeddings.apply { _ in rng.normal() }
      labels = (0..<rows).map { $0 % classes }
      rng.shuffle(&labels)
    }
  }

  /// Every failed check, described; empty when the loss conforms.
  ///
  /// - Parameters:
  ///   - double: the loss in Double. Its learned references, if any, must be sized for `classes`
  ///     classes of dimension `dimension`.
  ///   - float: the same loss in Float; its references are overwritten with the Double ones.
  ///   - usesTuples: whether the loss reads tuples (pair and triplet losses).
  ///   - classes: the classes of the test batch's labels.
  ///   - dimension: the embedding dimension of the test batch.
  ///   - orderDependent: skips the permutation check, for a loss whose value depends on the order
  ///     of the batch by definition (the N-pair loss takes the first pair of each label).
  public static func failures<D: PairwiseLoss, F: PairwiseLoss>(
    _ double: D, _ float: F, usesTuples: Bool, classes: Int = 4, dimension: Int = 6, orderDependent: Bool = false
  ) -> [String] where D.Scalar == Double, F.Scalar == Float {
    checks(double, float, usesTuples: usesTuples, classes: classes, dimension: dimension, orderDependent: orderDependent)
      .flatMap(\.failures)
  }

  /// The same checks as `failures`, one entry per check with its own failures (empty: passed), for
  /// a pass/fail table such as `dml check-plugin`'s.
  public static func checks<D: PairwiseLoss, F: PairwiseLoss>(
    _ double: D, _ float: F, usesTuples: Bool, classes: Int = 4, dimension: Int = 6, orderDependent: Bool = false
  ) -> [ConformanceCheck] where D.Scalar == Double, F.Scalar == Float {
    var checks: [ConformanceCheck] = []
    var failures: [String] = []
    func close(_ name: String) {
      checks.append(ConformanceCheck(name: name, failures: failures))
      failures = []
    }
    let batch = Batch(dimension: dimension, classes: classes)
    let (x, y) = (batch.embeddings, batch.labels)

    // 1. Gradients against central differences.
    var evaluator = LossEvaluator(double)
    let value = evaluator.evaluate(x, labels: y, tuples: nil)
    let gradient = evaluator.embeddingGradient
    let referenceGradients = evaluator.loss.parameters.map { $0.trainable ? $0.gradient : Matrix() }
    func loss(_ e: Matrix<Double>, _ l: D) -> Double {
      var ev = LossEvaluator(l)
      return ev.evaluate(e, labels: y, tuples: nil).total
    }
    let h = 1e-6
    var report = GradientCheckReport()
    var e = x
    for i in 0..<x.rows {
      for j in 0..<x.columns {
        let v = e[i, j]
        e[i, j] = v + h
        let plus = loss(e, double)
        e[i, j] = v - h
        let minus = loss(e, double)
        e[i, j] = v
        report.record(analytic: gradient[i, j], numeric: (plus - minus) / (2 * h), at: "embedding[\(i), \(j)]")
      }
    }
    for (p, g) in referenceGradients.enumerated() {
      for k in 0..<g.count {
        func shifted(_ delta: Double) -> Double {
          var l = double
          var index = 0
          l.forEachParameter { _, q in
            if index == p { q.value.withUnsafeMutableBufferPointer { $0[k] += delta } }
            index += 1
          }
          return loss(x, l)
        }
        let analytic = g.withUnsafeBufferPointer { $0[k] }
        report.record(analytic: analytic, numeric: (shifted(h) - shifted(-h)) / (2 * h), at: "parameter \(p)[\(k)]")
      }
    }
    if !(report.maxError < 1e-6) { failures.append("gradient differs from finite differences: \(report)") }
    close("gradients against finite differences")

    if let f = evaluator.loss.failure { failures.append("the loss failed: \(f)") }

    // 2. A non-zero value and gradient.
    if !(abs(value.total) > 1e-6) { failures.append("loss is \(value.total) on an ordinary batch") }
    if !(gradient.maxAbs() > 1e-6) { failures.append("embedding gradient is all zero on an ordinary batch") }
    if !value.total.isFinite || !gradient.isFinite { failures.append("non-finite value or gradient") }
    close("a non-zero, finite value and gradient")

    // 3. Permutation equivariance, unless the loss declares that it depends on the batch's order
    // (the N-pair loss picks the first pair of each label).
    var rng = RandomSource(seed: 99)
    let perm = rng.permutation(x.rows)
    var px = x
    for (to, from) in perm.enumerated() {
      for j in 0..<x.columns { px[to, j] = x[from, j] }
    }
    var permuted = LossEvaluator(double)
    let pv = permuted.evaluate(px, labels: perm.map { y[$0] }, tuples: nil)
    if !orderDependent, !(abs(pv.total - value.total) <= 1e-10 * max(1, abs(value.total))) {
      failures.append("loss changes when the batch is permuted: \(value.total) vs \(pv.total)")
    }
    var gradientError = 0.0
    for (to, from) in perm.enumerated() {
      for j in 0..<x.columns {
        gradientError = max(gradientError, abs(permuted.embeddingGradient[to, j] - gradient[from, j]))
      }
    }
    if !orderDependent, !(gradientError <= 1e-10) { failures.append("gradient is not permuted with the batch: \(gradientError)") }
    close(orderDependent ? "batch order (skipped: order-dependent by definition)" : "independent of the batch order")

    // Determinism: the same batch twice, from fresh copies, gives bitwise the same value and gradient.
    var again = LossEvaluator(double)
    let av = again.evaluate(x, labels: y, tuples: nil)
    if !(av.total == value.total || (av.total.isNaN && value.total.isNaN)) || again.embeddingGradient != gradient {
      failures.append("two evaluations of the same batch differ: \(value.total) vs \(av.total)")
    }
    close("deterministic")

    // 4. No tuples: zero loss, zero gradient.
    if usesTuples {
      var empty = LossEvaluator(double)
      let ev = empty.evaluate(x, labels: y, tuples: Tuples.none)
      if ev.total != 0 || empty.embeddingGradient.maxAbs() != 0 || !empty.embeddingGradient.isFinite {
        failures.append("no tuples gives loss \(ev.total), gradient max \(empty.embeddingGradient.maxAbs())")
      }
      var emptyTriplets = LossEvaluator(double)
      let et = emptyTriplets.evaluate(x, labels: y, tuples: .triplets([]))
      if et.total != 0 || emptyTriplets.embeddingGradient.maxAbs() != 0 {
        failures.append("no triplets gives loss \(et.total)")
      }
    }
    close(usesTuples ? "empty tuples give 0 and a zero gradient" : "empty tuples (skipped: the loss reads no tuples)")

    // 5. Duplicates and a collapsed batch stay finite.
    var duplicated = x
    for j in 0..<x.columns {
      duplicated[1, j] = x[0, j]
      duplicated[3, j] = x[2, j]
    }
    let collapsed = Matrix<Double>(rows: x.rows, columns: x.columns, repeating: 0.5)
    for (name, batch) in [("duplicated rows", duplicated), ("identical rows", collapsed)] {
      var ev = LossEvaluator(double)
      let v = ev.evaluate(batch, labels: y, tuples: nil)
      if !v.total.isFinite || !ev.embeddingGradient.isFinite {
        failures.append("\(name): non-finite loss \(v.total) or gradient")
      }
    }
    close("finite on duplicated and identical rows")

    // A batch of a single class: no negatives anywhere; the loss stays finite.
    var single = LossEvaluator(double)
    let sv = single.evaluate(x, labels: [Int](repeating: 0, count: x.rows), tuples: nil)
    if !sv.total.isFinite || !single.embeddingGradient.isFinite {
      failures.append("a single class: non-finite loss \(sv.total) or gradient")
    }
    close("finite on a single class")

    // 6. Float agrees with Double.
    var f = float
    let doubleReferences = double.parameters.map(\.value)
    var index = 0
    f.forEachParameter { _, q in
      if index < doubleReferences.count { q.value = doubleReferences[index].converted() }
      index += 1
    }
    var fe = LossEvaluator(f)
    let fv = fe.evaluate(x.converted(), labels: y, tuples: nil)
    if !(abs(Double(fv.total) - value.total) <= 1e-4 * max(1, abs(value.total))) {
      failures.append("Float loss \(fv.total) vs Double \(value.total)")
    }
    var gd = fe.embeddingGradient.converted(to: Double.self)
    gd.add(gradient, scaledBy: -1)
    if !(gd.maxAbs() <= 1e-4 * max(1, gradient.maxAbs())) {
      failures.append("Float gradient differs from Double by \(gd.maxAbs())")
    }
    close("Float agrees with Double")
    // 7. With a cross-batch memory: rectangular scores, gradient against central differences,
    // with the memory's rows held constant and the batch's own columns moving with it.
    if double.acceptsCrossBatchMemory {
      let n = 8
      let current = x.rows(Array(0..<n)), currentLabels = Array(y[0..<n])
      var memory = CrossBatchMemory<Double>(capacity: 6)
      memory.enqueue(x.rows(Array(n..<x.rows)), labels: Array(y[n...]))
      func memoryLoss(_ e: Matrix<Double>) -> (LossValue<Double>, Matrix<Double>) {
        var m = memory
        m.makeReferences(batch: e, labels: currentLabels)
        var ev = LossEvaluator(double)
        let v = ev.evaluate(e, labels: currentLabels, memory: m, tuples: nil)
        return (v, ev.embeddingGradient)
      }
      let (mv, mg) = memoryLoss(current)
      var memoryReport = GradientCheckReport()
      var e = current
      for i in 0..<n {
        for j in 0..<e.columns {
          let v = e[i, j]
          e[i, j] = v + h
          let plus = memoryLoss(e).0.total
          e[i, j] = v - h
          let minus = memoryLoss(e).0.total
          e[i, j] = v
          memoryReport.record(analytic: mg[i, j], numeric: (plus - minus) / (2 * h), at: "embedding[\(i), \(j)] with memory")
        }
      }
      if !(memoryReport.maxError < 1e-6) { failures.append("with a cross-batch memory, gradient differs from finite differences: \(memoryReport)") }
      if !mv.total.isFinite || !(mg.maxAbs() > 1e-6) { failures.append("with a cross-batch memory: loss \(mv.total), gradient max \(mg.maxAbs())") }
    }
    close(double.acceptsCrossBatchMemory ? "with a cross-batch memory" : "cross-batch memory (skipped: not accepted)")
    failures = learnedStateFailures(double, batch: batch)
    close(double.parameters.isEmpty ? "learned state (none declared)" : "learned state moves and round-trips")
    return checks
  }

  /// The learned-state checks, on one training step of `loss` (evaluation, a plain gradient step
  /// of its trainable parameters, its own reference update):
  /// - every parameter it declares has moved, trainable or not (center loss's centers move by
  ///   their own rule);
  /// - learned references (`references != nil`) have moved: a loss that holds references without
  ///   declaring them as parameters never trains them, and fails here;
  /// - the loss restored into a copy made before the step, from its named tensors alone, gives
  ///   bitwise the same value and gradient on another batch as the trained loss: state that the
  ///   loss updates itself and does not declare would be missing from every checkpoint.
  public static func learnedStateFailures<L: PairwiseLoss>(_ loss: L, batch: Batch = Batch()) -> [String]
  where L.Scalar == Double {
    var failures: [String] = []
    let (x, y) = (batch.embeddings, batch.labels)
    var trained = LossEvaluator(loss)
    _ = trained.evaluate(x, labels: y, tuples: nil)
    trained.forEachParameter { _, p in if p.trainable { p.value.add(p.gradient, scaledBy: -0.1) } }  // plain SGD
    trained.updateReferences()
    let before = loss.namedParameters(), after = trained.loss.namedParameters()
    if before.map(\.name) != after.map(\.name) {
      failures.append("the declared parameters changed in a step: \(before.map(\.name)) → \(after.map(\.name))")
      return failures
    }
    if Set(after.map(\.name)).count != after.count {
      failures.append("two parameters share a name: \(after.map(\.name)); give each its own")
    }
    for (b, a) in zip(before, after) where b.parameter.value == a.parameter.value {
      failures.append("parameter \(a.name) did not move in a training step (trainable: \(a.parameter.trainable))")
    }
    if let initial = loss.references, let now = trained.loss.references, initial == now {
      failures.append("the learned references did not move in a training step: declare them as parameters (visitParameters)")
    }
    // Restore a copy made before the step from the named tensors alone, then compare on a second batch.
    var restored = loss
    let values = Dictionary(after.map { ($0.name, $0.parameter.value) }, uniquingKeysWith: { a, _ in a })
    restored.forEachParameter { name, p in if let v = values[name] { p.value = v } }
    let other = Batch(rows: batch.embeddings.rows, dimension: batch.embeddings.columns, classes: Set(y).count, seed: 7)
    var a = LossEvaluator(trained.loss), b = LossEvaluator(restored)
    let va = a.evaluate(other.embeddings, labels: other.labels, tuples: nil)
    let vb = b.evaluate(other.embeddings, labels: other.labels, tuples: nil)
    if va.total != vb.total || a.embeddingGradient != b.embeddingGradient || a.loss.references != b.loss.references {
      failures.append(
        "restored from its named parameters, the loss differs from the trained one (\(vb.total) vs \(va.total)): it holds state it does not declare")
    }
    return failures
  }
}
