/// A PNP variant: how a positive's count of negatives ranked above it becomes its loss.
public enum PNPVariant: String, Sendable, CaseIterable {
  /// `log(1 + R)` (PNP-D_s).
  case ds = "Ds"
  /// `1 − 1/(1 + R)^α` through the mean (PNP-D_q).
  case dq = "Dq"
  /// `(1 + R) log(1 + R)` (PNP-I_u).
  case iu = "Iu"
  /// `(bR − log(1 + bR))/b²` (PNP-I_b).
  case ib = "Ib"
  /// `R` (PNP-O).
  case o = "O"
}

/// PNP loss (Li et al. 2022, "Rethinking the optimization of average precision"), as PML's
/// `PNPLoss`: for each row's positives (itself included), a smoothed count of the negatives that
/// score above them, shaped by the variant.
///
/// ```
/// R_qj = Σ_{n∈N_q} σ((s_qn − s_qj)/τ)       (σ's argument clamped to ±50, as PML)
/// loss_q = Σ_{j∈P_q ∪ {q}} f(R_qj) / |P_q ∪ {q}|      loss = mean over rows with a positive
/// ```
/// with `f` the variant's (`Dq` reports `1 − mean`).
///
/// - Distance: cosine similarity. Defaults as PML: variant `O`, τ (`anneal`) 0.01, b 2, α 1.
///   The value is already reduced. Ignores tuples and has no cross-batch memory, as in PML.
/// - Term: `loss`, one value.
///
/// ### See Also
/// `FastAPLoss`, `SmoothAPLoss`.
public struct PNPLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// `b` of the `Ib` variant.
  public var b: Scalar
  /// `α` of the `Dq` variant.
  public var alpha: Scalar
  /// The sigmoid's temperature τ.
  public var anneal: Scalar
  /// How a count becomes a loss.
  public var variant: PNPVariant

  /// The score between embeddings: cosine similarity.
  public var distance: Distance { .cosine }

  /// A PNP loss with PML's defaults: b 2, α 1, τ 0.01, variant `O`.
  public init(b: Scalar = 2, alpha: Scalar = 1, anneal: Scalar = 0.01, variant: PNPVariant = .o) {
    self.b = b
    self.alpha = alpha
    self.anneal = anneal
    self.variant = variant
  }

  public static var registryName: String { "pnp" }
  public static var summary: String { "PNP loss (Li et al. 2022): smoothed counts of negatives ranked above each positive" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [
      HyperparameterSpec("b", .real, default: "2", "b of the Ib variant", range: .positive),
      HyperparameterSpec("alpha", .real, default: "1", "α of the Dq variant", range: .positive),
      HyperparameterSpec("anneal", .real, default: "0.01", "the sigmoid's temperature τ", range: .positive),
      HyperparameterSpec("variant", .choice(PNPVariant.allCases.map(\.rawValue)), default: "O", "how a count becomes a loss"),
    ]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(
      b: Scalar(try v.real("b")), alpha: Scalar(try v.real("alpha")), anneal: Scalar(try v.real("anneal")),
      variant: PNPVariant(rawValue: try v.string("variant"))!)
  }

  /// `f(R)` and `f′(R)` of the variant (`Dq`'s before the final `1 −`).
  @inlinable
  func shape(_ r: Scalar) -> (value: Scalar, slope: Scalar) {
    switch variant {
    case .ds: return (Scalar.log(1 + r), 1 / (1 + r))
    case .dq: return (1 / Scalar.pow(1 + r, alpha), -alpha * Scalar.pow(1 + r, -alpha - 1))
    case .iu: return ((1 + r) * Scalar.log(1 + r), Scalar.log(1 + r) + 1)
    case .ib: return ((b * r - Scalar.log(1 + b * r)) / (b * b), r / (1 + b * r))
    case .o: return (r, 1)
    }
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "PNPLoss compares the batch with itself (no cross-batch memory)")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let tau = anneal
    // σ((s_qn − s_qj)/τ) with PML's clamp, and its derivative with respect to the difference.
    @inline(__always) func sigmoid(_ difference: Scalar) -> (value: Scalar, slope: Scalar) {
      let exponent = -difference / tau
      let clamped = Swift.min(Swift.max(exponent, -50), 50)
      let y = 1 / (1 + Scalar.exp(clamped))
      return (y, clamped == exponent ? y * (1 - y) / tau : 0)
    }
    let rows = (0..<n).filter { i in (0..<n).contains { $0 != i && labels[$0] == labels[i] } }
    guard !rows.isEmpty else { return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }
    let perRow = 1 / Scalar(rows.count)
    var total: Scalar = 0
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        for q in rows {
          let row = q * columns
          let members = (0..<n).filter { labels[$0] == labels[q] }  // the positives and q itself
          let scale = perRow / Scalar(members.count) * (variant == .dq ? -1 : 1)
          var sum: Scalar = 0
          for j in members {
            var r: Scalar = 0
            for k in 0..<n where labels[k] != labels[q] { r += sigmoid(s[row + k] - s[row + j]).value }
            let (value, slope) = shape(r)
            sum += value
            // ∂R/∂s_qk = σ′ for each negative k, ∂R/∂s_qj = −Σ_k σ′.
            var through: Scalar = 0
            for k in 0..<n where labels[k] != labels[q] {
              let d = sigmoid(s[row + k] - s[row + j]).slope * slope * scale
              g[row + k] += d
              through += d
            }
            g[row + j] -= through
          }
          total += sum / Scalar(members.count)
        }
      }
    }
    var value = total * perRow
    if variant == .dq { value = 1 - value }
    return LossValue(LossTerm(name: "loss", value: value, count: 1, nonZero: value > 0 ? 1 : 0))
  }
}
