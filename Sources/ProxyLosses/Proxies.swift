@_exported import DMLCore

/// Learned proxies, one per class: the family's shared storage, a parameter in its own optimizer
/// group so that proxies can train with their own learning rate.
public struct Proxies<Scalar: DMLScalar>: Sendable {
  /// The proxies, `classes × dimension`.
  public var parameter: Parameter<Scalar>

  /// Proxies drawn from `N(0, 1)` with `seed` (the losses normalise them, so the scale is moot).
  public init(classes: Int, dimension: Int, seed: UInt64, group: Int) {
    precondition(classes > 0 && dimension > 0, "Proxies need classes and a dimension")
    var rng = RandomSource(seed: seed)
    var value = Matrix<Scalar>(rows: classes, columns: dimension)
    value.apply { _ in rng.normal() }
    parameter = Parameter(name: "proxies", shape: [classes, dimension], value: value, group: group, decays: false)
  }

  /// Given proxies.
  public init(_ value: Matrix<Scalar>, group: Int) {
    parameter = Parameter(
      name: "proxies", shape: [value.rows, value.columns], value: value, group: group, decays: false)
  }

  /// The number of classes.
  public var classes: Int { parameter.value.rows }

  /// The hyperparameters every proxy loss shares.
  public static var sharedHyperparameters: [HyperparameterSpec] {
    [
      .classes,
      HyperparameterSpec("group", .integer, default: "1", "optimizer parameter group of the proxies", range: .atLeast(0)),
    ]
  }

  /// Proxies built from a registry's values.
  public init(_ v: HyperparameterValues, context: LossContext) throws {
    let classes = try v.learnedClasses(context)
    self.init(
      classes: classes, dimension: context.embeddingDimension,
      seed: context.seed &+ 0x5052_4F58, group: try v.integer("group"))
  }
}

/// A loss of this family: its references are its proxies, trained by the optimizer in their own
/// parameter group.
public protocol ProxyLoss: PairwiseLoss {
  /// The proxies.
  var proxies: Proxies<Scalar> { get set }
}

extension ProxyLoss {
  /// The proxies' values, one row per class.
  public var references: Matrix<Scalar>? { proxies.parameter.value }

  /// Stores `∂loss/∂proxies` as the proxies' gradient, for the optimizer.
  public mutating func receiveReferenceGradient(
    _ gradient: Matrix<Scalar>, embeddings: Matrix<Scalar>, labels: [Int]
  ) {
    proxies.parameter.gradient.assign(gradient)
  }

  /// Visits the proxies (`proxies`).
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&proxies.parameter)
  }
}

/// ProxyNCA (Movshovitz-Attias et al. 2017): softmax over the negated squared distances to the
/// class proxies.
///
/// ```
/// loss_i = −log softmax_{y_i}(−scale · ‖x̂_i − p̂_c‖²)      loss = mean_i loss_i
/// ```
///
/// - Default distance: squared Euclidean between normalised rows. Reduction: the mean over rows.
/// - Terms: `element`, one per row. Unlike PML, a row whose class probability underflows to 0 is
///   kept (its finite, large loss counts) rather than dropped.
///
/// ### See Also
/// `ProxyAnchorLoss`.
public struct ProxyNCALoss<Scalar: DMLScalar>: RegisteredLoss, ProxyLoss {
  /// The proxies.
  public var proxies: Proxies<Scalar>
  /// The softmax scale.
  public var softmaxScale: Scalar
  /// The score between embeddings and proxies.
  public var distance: Distance

  /// ProxyNCA over `proxies` with softmax scale `softmaxScale` (1 by default) and `distance`
  /// (squared Euclidean between normalised rows by default).
  public init(proxies: Proxies<Scalar>, softmaxScale: Scalar = 1, distance: Distance = .squaredEuclidean) {
    self.proxies = proxies
    self.softmaxScale = softmaxScale
    self.distance = distance
  }

  public static var registryName: String { "proxy-nca" }
  public static var summary: String { "ProxyNCA (Movshovitz-Attias et al. 2017)" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    Proxies<Scalar>.sharedHyperparameters + [
      HyperparameterSpec("softmax_scale", .real, default: "1", "scale of the negated distances", range: .positive),
      .distance(default: "squared-euclidean"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      proxies: try Proxies(v, context: context),
      softmaxScale: Scalar(try v.real("softmax_scale", "positive") { $0 > 0 }), distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, c) = (scores.rows, scores.columns)
    checkLabels(labels, classes: c, loss: "ProxyNCALoss")
    scoreGradient.resize(rows: n, columns: c)
    // Logits −sign·scale·s: a distance is negated, a similarity kept.
    let k = Scalar(distance.closeness) * softmaxScale
    var acc = TermAccumulator<Scalar>()
    let inverseN = n > 0 ? 1 / Scalar(n) : 0
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: c) { logits in
          for i in 0..<n {
            for j in 0..<c { logits[j] = k * s[i * c + j] }
            let loss = crossEntropy(
              logits: logits.baseAddress!, count: c, label: labels[i], scale: inverseN * k,
              gradient: g.baseAddress! + i * c)
            acc.add(loss)
          }
        }
      }
    }
    return LossValue(LossTerm(name: "element", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }

}

/// Proxy-Anchor (Kim, Kim, Cho and Kwak 2020): each proxy is an anchor against all the batch.
///
/// ```
/// pos_loss = (1/|C⁺|) Σ_{c∈C⁺} log(1 + Σ_{i: y_i = c} exp(−α (s_ic − δ)))
/// neg_loss = (1/|C|)  Σ_c      log(1 + Σ_{i: y_i ≠ c} exp( α (s_ic + δ)))
/// ```
/// where `C⁺` holds the classes present in the batch. Proxies of absent classes still add
/// negative terms.
///
/// - Default distance: cosine similarity. Reduction: PML's `DivisorReducer` as above.
/// - Terms: `pos_loss` and `neg_loss`, each indexing proxies.
///
/// ### See Also
/// `ProxyNCALoss`.
public struct ProxyAnchorLoss<Scalar: DMLScalar>: RegisteredLoss, ProxyLoss {
  /// The proxies.
  public var proxies: Proxies<Scalar>
  /// The margin δ.
  public var margin: Scalar
  /// The scale α.
  public var alpha: Scalar
  /// The score between embeddings and proxies.
  public var distance: Distance
  /// Scratch of `compute`, kept between steps: the negative exponentials (rows × classes), each
  /// column's largest value and sum, and the rows of each class (`members[start[j]..<start[j + 1]]`).
  @usableFromInline var negatives = Matrix<Scalar>(), columns = Matrix<Scalar>()
  @usableFromInline var members: [Int] = [], start: [Int] = []

  /// Proxy-Anchor over `proxies` with margin δ `margin` (0.1 by default) and scale α `alpha` (32
  /// by default), the paper's values, and `distance` (cosine similarity by default).
  public init(proxies: Proxies<Scalar>, margin: Scalar = 0.1, alpha: Scalar = 32, distance: Distance = .cosine) {
    self.proxies = proxies
    self.margin = margin
    self.alpha = alpha
    self.distance = distance
  }

  public static var registryName: String { "proxy-anchor" }
  public static var summary: String { "Proxy-Anchor (Kim et al. 2020)" }
  public static var usesTuples: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    Proxies<Scalar>.sharedHyperparameters + [
      HyperparameterSpec("margin", .real, default: "0.1", "margin δ", range: .nonNegative),
      HyperparameterSpec("alpha", .real, default: "32", "scale α", range: .positive),
      .distance(default: "cosine"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      proxies: try Proxies(v, context: context), margin: Scalar(try v.real("margin")),
      alpha: Scalar(try v.real("alpha", "positive") { $0 > 0 }), distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, c) = (scores.rows, scores.columns)
    checkLabels(labels, classes: c, loss: "ProxyAnchorLoss")
    scoreGradient.resize(rows: n, columns: c, zeroed: true)
    let xs = alpha * Scalar(distance.closeness)  // α·sign
    let d = margin
    guard n > 0, c > 0 else {
      // No rows: every proxy's two terms are log(1 + 0) = 0 (no buffers to touch).
      var zero = TermAccumulator<Scalar>()
      for _ in 0..<c { zero.add(0) }
      return LossValue(
        LossTerm(name: "pos_loss", value: 0, count: zero.count, nonZero: 0),
        LossTerm(name: "neg_loss", value: 0, count: zero.count, nonZero: 0))
    }
    // The rows of each class, in row order (a counting sort): `members[start[j]..<start[j + 1]]`.
    if start.count != c + 1 { start = [Int](repeating: 0, count: c + 1) }
    if members.count != n { members = [Int](repeating: 0, count: n) }
    for j in 0...c { start[j] = 0 }
    for y in labels { start[y + 1] += 1 }
    var present = 0
    for j in 0..<c {
      if start[j + 1] > 0 { present += 1 }
      start[j + 1] += start[j]
    }
    for (i, y) in labels.enumerated() {  // start[y] walks class y's slots, ending at start[y + 1]
      members[start[y]] = i
      start[y] += 1
    }
    for j in stride(from: c, to: 0, by: -1) { start[j] = start[j - 1] }
    start[0] = 0
    let posScale = present > 0 ? 1 / Scalar(present) : 0
    let negScale = 1 / Scalar(c)
    var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
    negatives.resize(rows: n, columns: c)
    columns.resize(rows: 2, columns: c)  // row 0: each column's largest x (at least 0, the "1"); row 1: its sum
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        negatives.withUnsafeMutableBufferPointer { e in
          columns.withUnsafeMutableBufferPointer { colBuffer in
            let largest = colBuffer.baseAddress!, sum = largest + c
            // Positives: x = α·sign·(δ − s) over the few rows of class j.
            members.withUnsafeBufferPointer { rows in
              withUnsafeTemporaryAllocation(of: Scalar.self, capacity: Swift.max(n, 1)) { scratch in
                for j in 0..<c {
                  let first = start[j]
                  let lp = logOnePlusSumExp(
                    count: start[j + 1] - first, keep: { _ in true }, x: { xs * (d - s[rows[first + $0] * c + j]) },
                    scratch: scratch.baseAddress!, weights: { k, w in g[rows[first + k] * c + j] += -xs * w * posScale })
                  pos.add(lp)
                }
              }
            }
            // Negatives, all columns at once, row by row: x = α·sign·(s + δ), −∞ (left out) at
            // the row's own class. Column j's largest, exponentials, sum and gradient are those
            // `logOnePlusSumExp` gives, with the rows in the same order.
            for j in 0..<c { largest[j] = 0 }
            for i in 0..<n {
              let row = e.baseAddress! + i * c, srow = s.baseAddress! + i * c
              for j in 0..<c { row[j] = xs * (srow[j] + d) }
              row[labels[i]] = -Scalar.infinity
              Scalar.maximumInPlace(largest, row, count: c)
            }
            for i in 0..<n {
              let row = e.baseAddress! + i * c
              for j in 0..<c { row[j] -= largest[j] }
            }
            Scalar.expInPlace(e.baseAddress!, count: n * c)
            for j in 0..<c { sum[j] = Scalar.exp(-largest[j]) }
            for i in 0..<n {
              let row = e.baseAddress! + i * c
              for j in 0..<c { sum[j] += row[j] }
            }
            for j in 0..<c {
              neg.add(Scalar.log(sum[j]) + largest[j])
              sum[j] = 1 / sum[j]  // now the inverse
            }
            for i in 0..<n {
              let row = e.baseAddress! + i * c, grow = g.baseAddress! + i * c
              for j in 0..<c { grow[j] += xs * (row[j] * sum[j]) * negScale }
            }
          }
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: pos.sum * posScale, count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: neg.sum * negScale, count: neg.count, nonZero: neg.nonZero))
  }

}

/// The proxy losses of this module, for a `LossRegistry`.
public enum ProxyLosses {
  /// Registry entries for `ProxyNCALoss` and `ProxyAnchorLoss`, in `Float`.
  public static var registrations: [LossFactory] {
    [LossFactory(ProxyNCALoss<Float>.self), LossFactory(ProxyAnchorLoss<Float>.self), ManifoldLoss<Float>.registration]
  }
}
