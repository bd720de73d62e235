/// Signal-to-noise ratio contrastive loss (Yuan et al. 2019, "Signal-To-Noise Ratio: A Robust
/// Distance Metric for Deep Metric Learning"), as PML's `SignalToNoiseRatioContrastiveLoss`: the
/// contrastive loss over the SNR distance of L2-normalised rows,
///
/// ```
/// d(a, b) = var(b − a) / var(a)        (variances over the features)
/// pos_loss = reduce relu(d(a, p) − m_pos)      neg_loss = reduce relu(m_neg − d(a, n))
/// ```
///
/// - Defaults as PML: `pos_margin` 0, `neg_margin` 1, the mean of the non-zero terms per
///   sub-loss. The distance is not symmetric: `d(a, p)` and `d(p, a)` are both terms.
/// - Terms: `pos_loss`, `neg_loss`, as `ContrastiveLoss`. Accepts a cross-batch memory.
/// - PML 2.9.0 adds no regulariser by default; the paper's zero-mean regulariser on the embeddings
///   is `embedding_regularizer=zero-mean`.
///
/// ### See Also
/// `ContrastiveLoss` with `distance=snr`, which this loss is.
public struct SNRContrastiveLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The contrastive loss it is, over the SNR distance.
  public var contrastive: ContrastiveLoss<Scalar>

  /// The score between embeddings: the signal-to-noise ratio of normalised rows.
  public var distance: Distance { contrastive.distance }

  /// An SNR contrastive loss with `positiveMargin` 0 and `negativeMargin` 1 by default, as PML.
  public init(
    positiveMargin: Scalar = 0, negativeMargin: Scalar = 1, reduction: Reduction = .nonZeroMean, low: Scalar = 0, high: Scalar = .infinity,
    classWeights: [Scalar] = []
  ) {
    contrastive = ContrastiveLoss(
      positiveMargin: positiveMargin, negativeMargin: negativeMargin, distance: .snr, reduction: reduction, low: low, high: high,
      classWeights: classWeights)
  }

  public static var registryName: String { "snr-contrastive" }
  public static var summary: String { "Signal-to-noise ratio contrastive loss (Yuan et al. 2019): contrastive over var(b − a) / var(a)" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { contrastive.anchorBlockReductions }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("pos_margin", .real, default: "0", "positive pairs with an SNR below this add nothing"),
      HyperparameterSpec("neg_margin", .real, default: "1", "negative pairs with an SNR above this add nothing"),
      .reduction(default: .nonZeroMean),
    ] + HyperparameterSpec.thresholds
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      positiveMargin: Scalar(try v.real("pos_margin")), negativeMargin: Scalar(try v.real("neg_margin")), reduction: try v.reduction(),
      low: Scalar(try v.real("low")), high: Scalar(try v.real("high")), classWeights: try v.classWeights(classes: context.classes).map { Scalar($0) })
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    contrastive.compute(scores: scores, labels: labels, tuples: tuples, scoreGradient: &scoreGradient)
  }
}
