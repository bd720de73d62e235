/// Margin loss (Wu et al. 2017, "Sampling matters in deep embedding learning"), as PML's
/// `MarginLoss`: positives closer and negatives farther than a boundary β, by a margin, with β
/// optionally learned (one for all, or one per class).
///
/// ```
/// pos_ap = relu(d(a,p) − β_a + margin)     neg_an = relu(β_a − d(a,n) + margin)
/// margin_loss = Σ_triplets (pos + neg) / (#pos > 0 + #neg > 0)
/// beta_reg_loss = ν·β (one β), or Σ_triplets ν·β_{y_a} / the same divisor (one β per class)
/// ```
/// With a similarity the inequalities flip: `relu(β − s(a,p) + margin)`, `relu(s(a,n) − β + margin)`.
///
/// - Default distance: Euclidean between L2-normalised rows; margin 0.2, β 1.2, ν 0, β fixed.
///   Reduction: PML's `DivisorReducer`, dividing by the number of non-zero positive and negative
///   terms (0 when there is none).
/// - Terms: `margin_loss` (one per triplet) and `beta_reg_loss` (present when β is learned).
/// - Learned state: `beta`, one value or one per class, in the optimizer group of the loss's
///   learned parameters (group 1, `proxy_lr` on the command line). It is trainable only with
///   `learnBeta`; a fixed β is still saved in checkpoints.
/// - Triplets: the given ones, or every valid triplet (PML's `triplets_per_anchor="all"`).
///
/// ### See Also
/// `TripletMarginLoss`, `DistanceWeightedMiner`.
public struct MarginLoss<Scalar: DMLScalar>: RegisteredLoss {
  /// The margin around β.
  public var margin: Scalar
  /// ν, the weight of the regulariser on β.
  public var nu: Scalar
  /// β: one value, or one per class (`beta.count` classes), in the parameter `beta`.
  public var beta: Parameter<Scalar>
  /// The score between embeddings.
  public var distance: Distance

  /// A margin loss with `margin` 0.2, `nu` 0 and every β starting at `beta` (1.2): one for all
  /// classes, or one per class when `classes` is given. With `learnBeta` the optimizer trains β.
  public init(
    margin: Scalar = 0.2, nu: Scalar = 0, beta: Scalar = 1.2, learnBeta: Bool = false, classes: Int? = nil,
    distance: Distance = .euclidean
  ) {
    precondition(classes.map { $0 >= 1 } ?? true, "MarginLoss: classes must be at least 1")
    let count = classes ?? 1
    self.margin = margin
    self.nu = nu
    self.beta = Parameter(
      name: "beta", shape: [count], value: Matrix(rows: 1, columns: count, repeating: beta), group: 1, decays: false,
      trainable: learnBeta)
    self.distance = distance
  }

  public static var registryName: String { "margin" }
  public static var summary: String { "Margin loss (Wu et al. 2017): pairs against a boundary β, optionally learned" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("margin", .real, default: "0.2", "margin around the boundary β", range: .atLeast(0)),
      HyperparameterSpec("nu", .real, default: "0", "ν, weight of the regulariser on β", range: .atLeast(0)),
      HyperparameterSpec("beta", .real, default: "1.2", "the boundary β's initial value"),
      HyperparameterSpec("learn_beta", .boolean, default: "false", "train β with the optimizer (group 1, proxy_lr)"),
      HyperparameterSpec("per_class", .boolean, default: "false", "one β per training class"),
      .distance(default: "euclidean"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let perClass = try v.boolean("per_class")
    guard !perClass || context.classes >= 1 else {
      throw SpecificationError("margin: per_class=true needs the number of training classes")
    }
    self.init(
      margin: Scalar(try v.real("margin")), nu: Scalar(try v.real("nu")), beta: Scalar(try v.real("beta")),
      learnBeta: try v.boolean("learn_beta"), classes: perClass ? context.classes : nil, distance: try v.distance())
  }

  /// Visits `beta`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&beta)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    let sign = Scalar(distance.closeness)  // +1 similarity, −1 distance
    let perClass = beta.count > 1
    if perClass { checkLabels(Array(labels.prefix(n)), classes: beta.count, loss: "MarginLoss") }
    let b = beta.value
    let m = margin
    // pos = relu(sign·(β − s_ap) + margin), neg = relu(sign·(s_an − β) + margin).
    @inline(__always) func terms(_ s: UnsafeBufferPointer<Scalar>, _ a: Int, _ p: Int, _ q: Int) -> (pos: Scalar, neg: Scalar, beta: Int) {
      let k = perClass ? labels[a] : 0
      let boundary = b.withUnsafeBufferPointer { $0[k] }
      return (sign * (boundary - s[a * columns + p]) + m, sign * (s[a * columns + q] - boundary) + m, k)
    }
    var margins = TermAccumulator<Scalar>()
    var positives = 0, negatives = 0, triplets = 0
    scores.withUnsafeBufferPointer { s in
      Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
        let t = terms(s, a, p, q)
        margins.add(Swift.max(0, t.pos) + Swift.max(0, t.neg))
        if t.pos > 0 { positives += 1 }
        if t.neg > 0 { negatives += 1 }
        triplets += 1
      }
    }
    let divisor = Scalar(positives + negatives)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    beta.gradient.resize(rows: 1, columns: beta.count, zeroed: true)
    var regularizer: Scalar = 0
    if beta.trainable && triplets > 0 {
      // ν·β once for a single β (already reduced), else ν·β_{y_a} per triplet over the divisor.
      if !perClass {
        regularizer = nu * b.withUnsafeBufferPointer { $0[0] }
        beta.gradient.withUnsafeMutableBufferPointer { $0[0] = nu }
      } else if divisor > 0 {
        scores.withUnsafeBufferPointer { s in
          beta.gradient.withUnsafeMutableBufferPointer { gb in
            Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
              let k = terms(s, a, p, q).beta
              regularizer += nu * b.withUnsafeBufferPointer { $0[k] }
              gb[k] += nu / divisor
            }
          }
        }
        regularizer /= divisor
      }
    }
    if divisor > 0 {
      let w = 1 / divisor
      let learns = beta.trainable
      scores.withUnsafeBufferPointer { s in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          beta.gradient.withUnsafeMutableBufferPointer { gb in
            Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
              let t = terms(s, a, p, q)
              if t.pos > 0 {
                g[a * columns + p] -= sign * w
                if learns { gb[t.beta] += sign * w }
              }
              if t.neg > 0 {
                g[a * columns + q] += sign * w
                if learns { gb[t.beta] -= sign * w }
              }
            }
          }
        }
      }
    }
    let marginLoss = divisor > 0 ? margins.sum / divisor : 0
    var value = LossValue(
      LossTerm(name: "margin_loss", value: marginLoss, count: margins.count, nonZero: margins.nonZero),
      beta.trainable ? LossTerm(name: "beta_reg_loss", value: regularizer, count: 1, nonZero: regularizer > 0 ? 1 : 0) : nil)
    value.total = marginLoss + regularizer
    return value
  }
}
