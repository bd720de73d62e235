/// Smooth-AP (Brown et al. 2020), as PML's `SmoothAPLoss`: one minus each row's average precision,
/// its ranks made smooth by sigmoids of score differences.
///
/// ```
/// σ_τ(x) = 1 / (1 + e^(−x/τ)),  s the cosine similarities,  C(a) the rows of a's label, a included
/// R_C(a, b) = 1 + Σ_{k ∈ C(a), k ≠ b} σ_τ(s_ak − s_ab)     R(a, b) = 1 + Σ_{k ≠ b} σ_τ(s_ak − s_ab)
/// AP_a = (1 / |C(a)|) Σ_{b ∈ C(a)} R_C(a, b) / R(a, b)          loss = mean over rows of (1 − AP_a)
/// ```
///
/// - Distance: cosine similarity. Default temperature τ = 0.01, as PML.
/// - Term: `ap_loss`, one per row. Ignores tuples (PML weighs rows by a miner's tuples; here
///   `--miner` does not apply) and has no cross-batch memory, as in PML.
/// - As PML (and the paper's code), the anchor counts among its own class's members, and each
///   rank counts the anchor too.
/// - Any batch: PML requires as many classes in the batch as rows per class, in consecutive runs
///   (it cuts the batch into runs of `batch / classes` rows and takes each run for a class, and
///   refuses classes of unequal sizes). Here `C(a)` is the rows that share a's label, wherever they
///   are, so the value is the formula's for every batch and does not change when rows are
///   reordered; on the batches PML accepts and computes correctly the two agree.
///
/// ### See Also
/// `FastAPLoss`, `PNPLoss`.
public struct SmoothAPLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The sigmoid's temperature τ.
  public var temperature: Scalar
  @usableFromInline var smoothed: [Scalar] = []
  @usableFromInline var members: [Int: [Int]] = [:]

  /// The score between embeddings: cosine similarity.
  public var distance: Distance { .cosine }

  /// A Smooth-AP loss with temperature `temperature` (0.01 by default, as PML).
  public init(temperature: Scalar = 0.01) {
    precondition(temperature > 0, "SmoothAPLoss: the temperature must be positive")
    self.temperature = temperature
  }

  public static var registryName: String { "smooth-ap" }
  public static var summary: String { "Smooth-AP (Brown et al. 2020): average precision with sigmoid-smoothed ranks" }
  public static var usesTuples: Bool { false }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] {
    [HyperparameterSpec("temperature", .real, default: "0.01", "τ, the sigmoid's temperature", range: .positive)]
  }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(temperature: Scalar(try v.real("temperature")))
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows
    precondition(scores.columns == n, "SmoothAPLoss compares the batch with itself (no cross-batch memory)")
    precondition(labels.count == n, "SmoothAPLoss: \(n) rows but \(labels.count) labels")
    scoreGradient.resize(rows: n, columns: n, zeroed: true)
    members.removeAll(keepingCapacity: true)
    for (i, y) in labels.enumerated() { members[y, default: []].append(i) }
    if smoothed.count < n { smoothed = [Scalar](repeating: 0, count: n) }
    let tau = temperature, inverseN = n > 0 ? 1 / Scalar(n) : 0
    var acc = TermAccumulator<Scalar>()
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { grad in
        smoothed.withUnsafeMutableBufferPointer { u in
          for a in 0..<n {
            let row = s.baseAddress! + a * n, g = grad.baseAddress! + a * n
            let own = members[labels[a]]!
            let coefficient = -inverseN / Scalar(own.count)  // ∂loss/∂(R_C / R) of each member b
            var ap: Scalar = 0
            for b in own {
              let sab = row[b]
              var all: Scalar = 0, inClass: Scalar = 0
              for k in 0..<n {
                let v = k == b ? 0 : 1 / (1 + Scalar.exp(-(row[k] - sab) / tau))
                u[k] = v
                all += v
                if labels[k] == labels[a] { inClass += v }
              }
              let (p, r) = (1 + inClass, 1 + all)
              ap += p / r
              // ∂(p / r)/∂u_k = [k ∈ C(a)] / r − p / r²; ∂u_k/∂s_ak = u_k (1 − u_k) / τ = −∂u_k/∂s_ab.
              let (inside, outside) = (1 / r - p / (r * r), -p / (r * r))
              var total: Scalar = 0
              for k in 0..<n where k != b {
                let d = (labels[k] == labels[a] ? inside : outside) * u[k] * (1 - u[k]) / tau
                g[k] += coefficient * d
                total += d
              }
              g[b] -= coefficient * total
            }
            acc.add(1 - ap / Scalar(own.count))
          }
        }
      }
    }
    return LossValue(LossTerm(name: "ap_loss", value: Reduction.mean.value(acc), count: acc.count, nonZero: acc.nonZero))
  }
}
