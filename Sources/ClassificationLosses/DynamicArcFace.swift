/// Dynamic-margin ArcFace (Ha et al., "Google Landmark Recognition 2020 Competition Third Place
/// Solution", 2020), the loss PML 3 adds as `DynamicArcFaceLoss`: sub-center ArcFace whose margin
/// is larger for rarer classes,
///
/// ```
/// m_c = a · n_c^(−λ₀) + b        (radians; n_c the training samples of class c)
/// ```
/// - Defaults as PML 3: λ₀ 0.25, a 0.5, b 0.05, on `SubCenterArcFaceLoss` with 3 sub-centers and
///   scale 64.
/// - The margins come from the training set's class sizes (`LossContext.classCounts`, which
///   `dml train` fills); they are fixed, not learned, and rebuilt alike when a run resumes.
/// - Learned state: `class_weights`, `classes · sub_centers` rows, as sub-center ArcFace.
public enum DynamicArcFace {
  /// The margins `a · n^(−λ₀) + b` of classes of sizes `counts` (radians).
  public static func margins<Scalar: DMLScalar>(counts: [Int], lambda0: Double = 0.25, a: Double = 0.5, b: Double = 0.05) -> [Scalar] {
    counts.map { Scalar(a * Double.pow(Double(Swift.max($0, 1)), -lambda0) + b) }
  }

  /// Sub-center ArcFace over `weights` with the dynamic margins of classes of sizes `counts`.
  public static func loss<Scalar: DMLScalar>(
    weights: ClassWeights<Scalar>, counts: [Int], subCenters: Int = 3, scale: Scalar = 64, lambda0: Double = 0.25, a: Double = 0.5,
    b: Double = 0.05
  ) -> SubCenterArcFaceLoss<Scalar> {
    var loss = SubCenterArcFaceLoss(weights: weights, subCenters: subCenters, scale: scale)
    loss.arcFace.classMargins = margins(counts: counts, lambda0: lambda0, a: a, b: b)
    return loss
  }

  /// The declared hyperparameters, with PML 3's defaults.
  public static var hyperparameters: [HyperparameterSpec] {
    [
      .classes,
      HyperparameterSpec("lambda0", .real, default: "0.25", "λ₀, the margin's power of the class size", range: .nonNegative),
      HyperparameterSpec("a", .real, default: "0.5", "the margin's scale (radians)", range: .nonNegative),
      HyperparameterSpec("b", .real, default: "0.05", "the margin's floor (radians)", range: .nonNegative),
      HyperparameterSpec("scale", .real, default: "64", "logit scale", range: .positive),
      HyperparameterSpec("sub_centers", .integer, default: "3", "sub-centers per class", range: .closed(1, 64)),
    ]
  }

  /// The registry entry, `dynamic-arcface`, in `Float`.
  public static var registration: LossFactory {
    LossFactory(
      name: "dynamic-arcface", summary: "Dynamic-margin ArcFace (Ha et al. 2020): sub-center ArcFace, larger margins for rarer classes",
      hyperparameters: hyperparameters, usesTuples: false, acceptsMemory: false
    ) { v, context in
      let classes = try v.learnedClasses(context), k = try v.integer("sub_centers")
      guard context.classCounts.count == classes else {
        throw SpecificationError("\(v.component): the margins need the training samples of each of the \(classes) classes, which this run does not give")
      }
      let weights = ClassWeights<Float>(classes: classes * k, dimension: context.embeddingDimension, seed: context.seed &+ 0x5343_4146)
      let loss = Self.loss(
        weights: weights, counts: context.classCounts, subCenters: k, scale: Float(try v.real("scale")), lambda0: try v.real("lambda0"),
        a: try v.real("a"), b: try v.real("b"))
      return AnyEmbeddingLoss(LossEvaluator(loss))
    }
  }
}
