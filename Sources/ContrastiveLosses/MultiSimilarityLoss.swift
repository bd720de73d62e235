/// Multi-similarity loss (Wang et al. 2019): weighs each pair by its similarity relative to the
/// others of its row.
///
/// ```
/// loss_i = (1/α) log(1 + Σ_{p∈P_i} exp(−α (s_ip − base))) + (1/β) log(1 + Σ_{n∈N_i} exp(β (s_in − base)))
/// loss = mean_i loss_i
/// ```
///
/// - Default distance: cosine similarity. Default reduction: the mean over the batch's rows, rows
///   without pairs counting as 0 (PML's `MeanReducer`).
/// - Terms: `pos_loss` and `neg_loss`, the two parts, each a mean over rows.
///
/// ### See Also
/// `MultiSimilarityMiner`, `ContrastiveLoss`.
public struct MultiSimilarityLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The scale α of the positive part.
  public var alpha: Scalar
  /// The scale β of the negative part.
  public var beta: Scalar
  /// The similarity offset.
  public var base: Scalar
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var mask = PairMask()

  /// A multi-similarity loss with scales `alpha` (2 by default) and `beta` (50), offset `base`
  /// (0.5) and `distance` (cosine similarity by default), as PML.
  public init(alpha: Scalar = 2, beta: Scalar = 50, base: Scalar = 0.5, distance: Distance = .cosine) {
    self.alpha = alpha
    self.beta = beta
    self.base = base
    self.distance = distance
  }

  public static var registryName: String { "multi-similarity" }
  public static var summary: String { "Multi-similarity loss (Wang et al. 2019)" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean, .mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("alpha", .real, default: "2", "scale of the positive part", range: .positive),
      HyperparameterSpec("beta", .real, default: "50", "scale of the negative part", range: .positive),
      HyperparameterSpec("base", .real, default: "0.5", "similarity offset", range: .closed(-1, 1)),
      .distance(default: "cosine"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      alpha: Scalar(try v.real("alpha", "positive") { $0 > 0 }),
      beta: Scalar(try v.real("beta", "positive") { $0 > 0 }), base: Scalar(try v.real("base")),
      distance: try v.distance())
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let sign = Scalar(distance.closeness)
    let (a, b, base) = (alpha, beta, base)
    let inverseN = n > 0 ? 1 / Scalar(n) : 0
    var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
          for i in 0..<n {
            let row = i * columns
            // x = α·sign·(base − s) for positives, β·sign·(s − base) for negatives.
            let lp = logOnePlusSumExp(
              count: columns, keep: { m[row + $0] == PairMask.positive },
              x: { a * sign * (base - s[row + $0]) },
              scratch: scratch.baseAddress!, weights: { j, w in g[row + j] += -sign * w * inverseN })
            let ln = logOnePlusSumExp(
              count: columns, keep: { m[row + $0] == PairMask.negative },
              x: { b * sign * (s[row + $0] - base) },
              scratch: scratch.baseAddress!, weights: { j, w in g[row + j] += sign * w * inverseN })
            pos.add(lp / a)
            neg.add(ln / b)
          }
          }
        }
      }
    }
    return LossValue(
      LossTerm(name: "pos_loss", value: Reduction.mean.value(pos), count: pos.count, nonZero: pos.nonZero),
      LossTerm(name: "neg_loss", value: Reduction.mean.value(neg), count: neg.count, nonZero: neg.nonZero))
  }
}

/// The pair losses of this module, for a `LossRegistry`.
public enum ContrastiveLosses {
  /// Registry entries for `ContrastiveLoss`, `MultiSimilarityLoss`, `SupConLoss`,
  /// `UniformityLoss`, `LiftedStructureLoss`, `GeneralizedLiftedStructureLoss`, `NTXentLoss`,
  /// `NCALoss`, `IntraPairVarianceLoss`, `TupletMarginLoss`, `AngularLoss`, `NPairsLoss`,
  /// `RankedListLoss`, `HistogramLoss`, `ThresholdConsistentMarginLoss`, `FastAPLoss`, `PNPLoss`,
  /// `InstanceLoss`, `SNRContrastiveLoss`, `SmoothAPLoss`, `VICRegLoss`, `CircleLoss` and
  /// `DecoupledContrastiveLoss`, in `Float`.
  public static var registrations: [LossFactory] {
    [
      LossFactory(ContrastiveLoss<Float>.self), LossFactory(MultiSimilarityLoss<Float>.self), LossFactory(SupConLoss<Float>.self),
      LossFactory(UniformityLoss<Float>.self), LossFactory(LiftedStructureLoss<Float>.self),
      LossFactory(GeneralizedLiftedStructureLoss<Float>.self), LossFactory(NTXentLoss<Float>.self),
      LossFactory(NCALoss<Float>.self), LossFactory(IntraPairVarianceLoss<Float>.self), LossFactory(TupletMarginLoss<Float>.self),
      LossFactory(AngularLoss<Float>.self), LossFactory(NPairsLoss<Float>.self),
      LossFactory(RankedListLoss<Float>.self), LossFactory(HistogramLoss<Float>.self),
      LossFactory(ThresholdConsistentMarginLoss<Float>.self), LossFactory(FastAPLoss<Float>.self),
      LossFactory(PNPLoss<Float>.self), LossFactory(InstanceLoss<Float>.self), LossFactory(SNRContrastiveLoss<Float>.self),
      LossFactory(SmoothAPLoss<Float>.self), VICRegLoss<Float>.registration, LossFactory(CircleLoss<Float>.self),
      LossFactory(DecoupledContrastiveLoss<Float>.self),
    ]
  }
}
