/// Tuplet margin loss (Yu and Tao 2019), as PML's `TupletMarginLoss`: each positive pair, its
/// angle widened by a margin, against its anchor's negatives, in a scaled softmax.
///
/// ```
/// θ_ap = arccos s(a,p)
/// loss_ap = log(1 + Σ_{n∈N_a} exp(scale · (s(a,n) − cos(θ_ap − margin))))
/// loss = mean over positive pairs (a,p)
/// ```
///
/// - Distance: cosine similarity only (PML asserts the same). Defaults: margin 5.73°, scale 64.
///   Reduction: the mean over the positive pairs, both orders counting (PML's `MeanReducer`).
/// - Term: `loss`, one per positive pair; a pair whose anchor has no negative adds 0. A batch
///   without any negative pair has loss 0, as in PML.
/// - `arccos` is taken of the score clamped to [−1, 1] (rounding can leave a normalised cosine a
///   hair above 1, where PML's `acos` gives NaN), and its derivative uses `max(1 − s², 1e−12)`, so
///   a positive pair at angle 0 has a large finite gradient instead of an infinite one.
/// - Accepts a cross-batch memory.
///
/// ### See Also
/// `IntraPairVarianceLoss` (the same paper's regulariser), `NTXentLoss`.
public struct TupletMarginLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The angular margin, in degrees.
  public var marginDegrees: Scalar
  /// The softmax scale.
  public var scale: Scalar
  @usableFromInline var mask = PairMask()

  /// The score between embeddings: cosine similarity.
  public var distance: Distance { .cosine }

  /// A tuplet margin loss with `marginDegrees` 5.73 and `scale` 64 by default, as PML.
  public init(marginDegrees: Scalar = 5.73, scale: Scalar = 64) {
    self.marginDegrees = marginDegrees
    self.scale = scale
  }

  public static var registryName: String { "tuplet-margin" }
  public static var summary: String { "Tuplet margin loss (Yu and Tao 2019): angular margin on positives in a scaled softmax" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { true }
  /// Its terms add up over blocks of anchors (`AnchorBlockedLoss`).
  public var anchorBlockReductions: AnchorBlockReductions? { AnchorBlockReductions(.mean) }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("margin", .real, default: "5.73", "angular margin in degrees", range: .closed(0, 180)),
      HyperparameterSpec("scale", .real, default: "64", "softmax scale", range: .positive),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(marginDegrees: Scalar(try v.real("margin")), scale: Scalar(try v.real("scale", "positive") { $0 > 0 }))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    mask.build(rows: n, labels: labels, tuples: tuples)
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let margin = marginDegrees * Scalar.pi / 180, scale = self.scale
    let anyNegative = mask.values.withUnsafeBufferPointer { m in (0..<(n * columns)).contains { m[$0] == PairMask.negative } }
    // cos(θ − margin) of a positive score, and its derivative with respect to the score.
    @inline(__always) func widened(_ s: Scalar) -> (value: Scalar, slope: Scalar) {
      let c = Swift.min(1, Swift.max(-1, s))
      let theta = Scalar.acos(c)
      return (Scalar.cos(theta - margin), Scalar.sin(theta - margin) / Swift.max(1 - c * c, 1e-12).squareRoot())
    }
    var terms = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
          for k in 0..<(n * columns) where m[k] == PairMask.positive {
            guard anyNegative else {
              terms.add(0)
              continue
            }
            let row = (k / columns) * columns
            let p = widened(s[k]).value
            terms.add(
              logOnePlusSumExp(
                count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * (s[row + $0] - p) },
                scratch: scratch.baseAddress!))
          }
        }
      }
    }
    guard anyNegative else { return LossValue(LossTerm(name: "loss", value: 0, count: terms.count, nonZero: 0)) }
    // ∂loss_ap/∂x_n = w_n (the softmax share of exp(x_n) against 1 + Σ), x_n = scale·(s_an − p);
    // ∂x_n/∂s_an = scale, ∂x_n/∂s_ap = −scale·p′.
    let perTerm = Reduction.mean.weight(of: Scalar(0), terms)
    scores.withUnsafeBufferPointer { s in
      mask.values.withUnsafeBufferPointer { m in
        scoreGradient.withUnsafeMutableBufferPointer { g in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: columns) { scratch in
            for k in 0..<(n * columns) where m[k] == PairMask.positive {
              let row = (k / columns) * columns
              let (p, slope) = widened(s[k])
              var total: Scalar = 0
              _ = logOnePlusSumExp(
                count: columns, keep: { m[row + $0] == PairMask.negative }, x: { scale * (s[row + $0] - p) },
                scratch: scratch.baseAddress!,
                weights: { j, w in
                  g[row + j] += w * scale * perTerm
                  total += w
                })
              g[k] -= total * scale * slope * perTerm
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
