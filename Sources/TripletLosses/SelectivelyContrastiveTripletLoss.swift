/// Selectively contrastive triplet loss (Xuan et al., "Hard negative examples are hard, but
/// useful", ECCV 2020), the loss PML 3 adds as `SelectivelyContrastiveTripletLoss`: a triplet whose
/// negative is more similar to the anchor than its positive is not pulled as a triplet (which
/// collapses embeddings early in training); only its negative is pushed away.
///
/// ```
/// loss_apn = λ · s(a,n)                       if s(a,n) > s(a,p)   (a hard negative)
/// loss_apn = [s(a,n) − s(a,p) + margin]₊      otherwise (softplus with smooth=true)
/// loss = the mean over triplets
/// ```
/// on cosine similarities. A hard negative's term has a gradient whatever its sign, so every
/// triplet counts in the mean (the mean of the non-zero terms would drop hard negatives of negative
/// similarity and jump as terms cross 0). The loss jumps where a triplet turns hard, as the paper's.
///
/// - Defaults: margin 0.05 (PML's triplet margin), penalty λ 1.
/// - Term: `triplet`, one per triplet (every valid one, or the miner's).
/// - Accepts a cross-batch memory.
public struct SelectivelyContrastiveTripletLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The triplet margin of the triplets without a hard negative.
  public var margin: Scalar
  /// The weight λ of a hard negative's similarity.
  public var penalty: Scalar
  /// Whether the triplet term is `softplus` instead of a hinge.
  public var smoothLoss: Bool
  /// Cosine similarity (fixed, as the paper's).
  public var distance: Distance { .cosine }

  /// The loss with margin 0.05 and penalty 1 by default.
  public init(margin: Scalar = 0.05, penalty: Scalar = 1, smoothLoss: Bool = false) {
    self.margin = margin
    self.penalty = penalty
    self.smoothLoss = smoothLoss
  }

  public static var registryName: String { "selectively-contrastive-triplet" }
  public static var summary: String { "Selectively contrastive triplet (Xuan et al. 2020): hard negatives pushed alone" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("margin", .real, default: "0.05", "triplet margin when the negative is not the harder"),
      HyperparameterSpec("penalty", .real, default: "1", "λ, the weight of a hard negative's similarity", range: .nonNegative),
      HyperparameterSpec("smooth", .boolean, default: "false", "softplus instead of the hinge"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(margin: Scalar(try v.real("margin")), penalty: Scalar(try v.real("penalty")), smoothLoss: try v.boolean("smooth"))
  }

  /// A triplet's term and its derivatives with respect to `s(a,p)` and `s(a,n)`.
  @inlinable
  func term(positive sp: Scalar, negative sn: Scalar) -> (value: Scalar, dp: Scalar, dn: Scalar) {
    if sn > sp { return (penalty * sn, 0, penalty) }
    let v = sn - sp + margin
    if smoothLoss {
      let value = v > 0 ? v + Scalar.log(1 + Scalar.exp(-v)) : Scalar.log(1 + Scalar.exp(v))
      let slope = 1 / (1 + Scalar.exp(-v))
      return (value, -slope, slope)
    }
    return v > 0 ? (v, -1, 1) : (0, 0, 0)
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let (n, columns) = (scores.rows, scores.columns)
    var acc = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
        acc.add(term(positive: s[a * columns + p], negative: s[a * columns + q]).value)
      }
    }
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        Tuples.forEachTriplet(rows: n, labels: labels, tuples: tuples) { a, p, q in
          let t = term(positive: s[a * columns + p], negative: s[a * columns + q])
          let w = Reduction.mean.weight(of: t.value, acc)
          guard w != 0 else { return }
          g[a * columns + p] += w * t.dp
          g[a * columns + q] += w * t.dn
        }
      }
    }
    return LossValue(LossTerm(name: "triplet", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
