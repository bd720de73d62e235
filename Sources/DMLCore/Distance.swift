/// Buffers a distance keeps between its forward and backward passes, reused from step to step.
public struct DistanceWorkspace<Scalar: DMLScalar>: Sendable {
  @usableFromInline var query = Matrix<Scalar>()
  @usableFromInline var reference = Matrix<Scalar>()
  @usableFromInline var queryNorms: [Scalar] = []
  @usableFromInline var referenceNorms: [Scalar] = []
  @usableFromInline var weights = Matrix<Scalar>()
  @usableFromInline var rowWeights: [Scalar] = []
  @usableFromInline var columnWeights: [Scalar] = []
  @usableFromInline var lastSameSet = false
  @usableFromInline var querySquares: [Scalar] = []
  @usableFromInline var referenceSquares: [Scalar] = []
  /// The signal-to-noise distance's centred rows and the query rows' squared centred norms.
  @usableFromInline var centeredQuery = Matrix<Scalar>()
  @usableFromInline var centeredReference = Matrix<Scalar>()
  @usableFromInline var anchorSquares: [Scalar] = []
  /// The threads the distance's products may use.
  public var compute: ComputeContext

  /// An empty workspace; its buffers grow on first use.
  public init(compute: ComputeContext = .automatic) { self.compute = compute }
}

/// How a `Distance` compares two rows.
public enum DistanceKind: String, Sendable, Codable, CaseIterable {
  /// `‖a − b‖` (PML's `LpDistance(p=2, power=1)`).
  case euclidean
  /// `‖a − b‖²` (PML's `LpDistance(p=2, power=2)`).
  case squaredEuclidean
  /// `a · b` (PML's `DotProductSimilarity`; with normalisation, `CosineSimilarity`).
  case dotProduct
  /// The signal-to-noise ratio `var(a − b) / var(a)` (PML's `SNRDistance`, Yuan et al. 2019): the
  /// noise `b − a` against the anchor's signal, each variance over the features. Not symmetric.
  case snr
  /// `‖a − b‖_p^power`, the p-norm of the difference raised to a power (PML's `LpDistance(p:
  /// power:)` for the orders and powers the two Euclidean kinds do not cover); `p ≥ 1`, `power > 0`.
  case lp
  /// The geodesic distance of the Poincaré ball of curvature `−c` (Hyp-ViT, Ermolov et al. 2022):
  /// rows are clipped to a norm of at most `r` (Guo et al. 2022) and mapped into the ball by the
  /// exponential map at 0, then `d(u, v) = arcosh(1 + 2c‖u − v‖² / ((1 − c‖u‖²)(1 − c‖v‖²))) / √c`.
  case poincare
}

/// Turns a batch of embeddings (rows) and a reference set (rows) into a score matrix, and, backwards,
/// the gradient with respect to the scores into gradients with respect to both sides.
///
/// One type covers PML's five: `LpDistance(p:, power:, normalize_embeddings:)`,
/// `CosineSimilarity()` (dot product of normalised rows), `DotProductSimilarity(normalize_embeddings:)`
/// and `SNRDistance()`. The Euclidean distance and its square are kinds of their own; other orders
/// and powers are `.lp` (`Distance.lp(p:power:)`), computed row pair by row pair.
/// Squared distances come from one GEMM, `‖a‖² + ‖b‖² − 2 a·b`; entries small enough for that
/// formula to lose precision are recomputed directly, so identical rows are exactly 0 apart (PML's
/// `torch.cdist` returns about 1e-8 there above 25 rows). The gradient of the Euclidean distance at
/// 0 is 0, as in PML.
public struct Distance: Sendable, Equatable, Codable, CustomStringConvertible {
  /// The comparison.
  public var kind: DistanceKind
  /// Whether rows are normalised (`x / max(‖x‖, 1e-12)`) before comparison: in the L2 norm, or
  /// for an `.lp` distance in its own p-norm, as PML's `LpDistance` does.
  public var normalizesEmbeddings: Bool
  /// The norm's order `p` of an `.lp` distance (2 for the other kinds).
  public var p: Double
  /// The power an `.lp` distance is raised to (1 for the other kinds).
  public var power: Double
  /// The curvature `c` of a `.poincare` distance's ball (of curvature `−c`); 0.1 for the other kinds.
  public var curvature: Double
  /// The norm `r` a `.poincare` distance clips rows to before mapping them into the ball (0: no
  /// clipping); 2.3 for the other kinds.
  public var clipRadius: Double

  /// A distance of `kind`, L2-normalising rows first if `normalizesEmbeddings`. An `.lp` distance
  /// made here is the Euclidean one; `lp(p:power:normalizesEmbeddings:)` sets its order and power.
  public init(_ kind: DistanceKind, normalizesEmbeddings: Bool) {
    self.kind = kind
    self.normalizesEmbeddings = normalizesEmbeddings
    p = 2
    power = 1
    curvature = 0.1
    clipRadius = 2.3
  }

  /// The Poincaré ball's distance with curvature `−c` (`c > 0`) and feature clipping at norm `r`
  /// (0: none); Hyp-ViT's defaults are `c = 0.1`, `r = 2.3`.
  public static func poincare(curvature c: Double = 0.1, clipRadius r: Double = 2.3) -> Distance {
    precondition(c > 0 && c.isFinite && r >= 0 && r.isFinite, "Distance.poincare: c = \(c) must be > 0 and r = \(r) ≥ 0")
    var d = Distance(.poincare, normalizesEmbeddings: false)
    d.curvature = c
    d.clipRadius = r
    return d
  }

  /// PML's `LpDistance(p:, power:, normalize_embeddings:)`: `‖a − b‖_p^power`, with `p ≥ 1` and
  /// `power > 0`. `p = 2` with power 1 or 2 gives the `.euclidean` and `.squaredEuclidean` kinds
  /// (one GEMM); any other order or power is an `.lp` distance.
  public static func lp(p: Double, power: Double = 1, normalizesEmbeddings: Bool = true) -> Distance {
    precondition(p >= 1 && p.isFinite && power > 0 && power.isFinite, "Distance.lp: p = \(p) must be ≥ 1 and finite, power = \(power) > 0")
    if p == 2 && (power == 1 || power == 2) {
      return Distance(power == 1 ? .euclidean : .squaredEuclidean, normalizesEmbeddings: normalizesEmbeddings)
    }
    var d = Distance(.lp, normalizesEmbeddings: normalizesEmbeddings)
    d.p = p
    d.power = power
    return d
  }

  /// A distance from its command-line name: `euclidean`, `squared-euclidean`, `cosine`, `dot`,
  /// `snr`, or `l<p>` / `l<p>^<power>` for an Lp distance (`l1` is the Manhattan distance, `l3^2`
  /// the squared 3-norm), all on normalised rows as PML's defaults; nil for anything else.
  public init?(parsing text: String) {
    switch text {
    case "euclidean": self = .euclidean
    case "squared-euclidean": self = .squaredEuclidean
    case "cosine": self = .cosine
    case "dot": self = .dotProduct
    case "snr": self = .snr
    case _ where text == "poincare" || text.hasPrefix("poincare/"):
      // poincare, poincare/<c> or poincare/<c>/<r>.
      let parts = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
      guard parts.count <= 2, let c = parts.first.map({ Double($0) }) ?? 0.1, c > 0, c.isFinite,
        let r = parts.count == 2 ? Double(parts.last!) : 2.3, r >= 0, r.isFinite
      else { return nil }
      self = .poincare(curvature: c, clipRadius: r)
    default:
      guard text.first == "l" else { return nil }
      let parts = text.dropFirst().split(separator: "^", omittingEmptySubsequences: false)
      guard parts.count <= 2, let p = Double(parts[0]), p >= 1, p.isFinite,
        let power = parts.count == 2 ? Double(parts[1]) : 1, power > 0, power.isFinite
      else { return nil }
      self = .lp(p: p, power: power)
    }
  }

  enum CodingKeys: String, CodingKey { case kind, normalizesEmbeddings, p, power, curvature, clipRadius }

  /// Decodes a distance; `p`, `power`, `curvature` and `clipRadius` may be absent (files written
  /// before Lp and Poincaré distances).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(try c.decode(DistanceKind.self, forKey: .kind), normalizesEmbeddings: try c.decode(Bool.self, forKey: .normalizesEmbeddings))
    p = try c.decodeIfPresent(Double.self, forKey: .p) ?? 2
    power = try c.decodeIfPresent(Double.self, forKey: .power) ?? 1
    curvature = try c.decodeIfPresent(Double.self, forKey: .curvature) ?? 0.1
    clipRadius = try c.decodeIfPresent(Double.self, forKey: .clipRadius) ?? 2.3
    guard p >= 1, p.isFinite, power > 0, power.isFinite, curvature > 0, curvature.isFinite, clipRadius >= 0, clipRadius.isFinite else {
      throw DecodingError.dataCorruptedError(
        forKey: .p, in: c, debugDescription: "p = \(p) must be ≥ 1, power = \(power) > 0, curvature = \(curvature) > 0, clipRadius = \(clipRadius) ≥ 0")
    }
  }

  /// PML's `LpDistance()`: Euclidean between normalised rows.
  public static let euclidean = Distance(.euclidean, normalizesEmbeddings: true)
  /// PML's `LpDistance(power=2)`: squared Euclidean between normalised rows.
  public static let squaredEuclidean = Distance(.squaredEuclidean, normalizesEmbeddings: true)
  /// PML's `CosineSimilarity()`.
  public static let cosine = Distance(.dotProduct, normalizesEmbeddings: true)
  /// PML's `DotProductSimilarity(normalize_embeddings=False)`.
  public static let dotProduct = Distance(.dotProduct, normalizesEmbeddings: false)
  /// PML's `SNRDistance()`: the signal-to-noise ratio of normalised rows.
  public static let snr = Distance(.snr, normalizesEmbeddings: true)

  /// The smallest anchor variance the signal-to-noise ratio divides by: an anchor whose features
  /// are all equal (no signal) gives large finite scores, and no gradient through its variance,
  /// where PML would divide by zero.
  public static let snrVarianceFloor = 1e-12

  /// True for similarities, where larger means closer.
  @inlinable public var isSimilarity: Bool { kind == .dotProduct }

  /// The name the command line uses (`cosine`, `dot`, `euclidean`, `squared-euclidean`, `snr`,
  /// `l<p>^<power>`), with `(unnormalized)` appended to a distance that does not normalise rows.
  public var description: String {
    switch (kind, normalizesEmbeddings) {
    case (.dotProduct, true): return "cosine"
    case (.dotProduct, false): return "dot"
    case (.euclidean, let n): return n ? "euclidean" : "euclidean(unnormalized)"
    case (.squaredEuclidean, let n): return n ? "squared-euclidean" : "squared-euclidean(unnormalized)"
    case (.snr, let n): return n ? "snr" : "snr(unnormalized)"
    case (.lp, let n):
      func short(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
      return "l" + short(p) + (power == 1 ? "" : "^" + short(power)) + (n ? "" : "(unnormalized)")
    case (.poincare, _):
      return curvature == 0.1 && clipRadius == 2.3 ? "poincare" : "poincare/\(curvature)/\(clipRadius)"
    }
  }

  /// Writes `scores[i, j] = d(query_i, reference_j)`.
  ///
  /// - Parameters:
  ///   - query: the batch, `n × d`.
  ///   - reference: the reference set, `m × d` (pass the batch itself for within-batch scores).
  ///   - sameSet: whether `reference` is `query` (the diagonal is then exactly 0 for distances).
  ///   - scores: receives the `n × m` matrix.
  ///   - w: the workspace, which keeps what the backward pass needs.
  @inlinable
  public func scores<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, sameSet: Bool = false,
    into scores: inout Matrix<T>, workspace w: inout DistanceWorkspace<T>
  ) {
    precondition(
      query.columns == reference.columns,
      "Distance: query rows have \(query.columns) features, reference rows \(reference.columns)")
    guard kind != .snr else { return snrScores(query, reference, sameSet: sameSet, into: &scores, workspace: &w) }
    guard kind != .lp else { return lpScores(query, reference, sameSet: sameSet, into: &scores, workspace: &w) }
    guard kind != .poincare else { return poincareScores(query, reference, sameSet: sameSet, into: &scores, workspace: &w) }
    prepare(query, into: &w.query, norms: &w.queryNorms)
    w.lastSameSet = sameSet
    if sameSet {
      gemm(w.query, w.query, transposeB: true, into: &scores, compute: w.compute)
    } else {
      prepare(reference, into: &w.reference, norms: &w.referenceNorms)
      gemm(w.query, w.reference, transposeB: true, into: &scores, compute: w.compute)
    }
    guard kind != .dotProduct else { return }
    let d = query.columns
    let power1 = kind == .euclidean
    w.query.rowSquaredNorms(into: &w.querySquares)
    if sameSet {
      w.referenceSquares = w.querySquares
    } else {
      w.reference.rowSquaredNorms(into: &w.referenceSquares)
    }
    Self.finishSquaredDistances(
      w.query, sameSet ? w.query : w.reference, querySquares: w.querySquares, referenceSquares: w.referenceSquares,
      sameSet: sameSet, squareRoot: power1, d: d, into: &scores)
  }

  /// Turns `scores`, the products `q_i · r_j`, into squared distances `‖q_i‖² + ‖r_j‖² − 2 q_i·r_j`,
  /// recomputing directly the entries where that form cancels (exactly 0 on a same set's
  /// diagonal), then into distances if `squareRoot`.
  @inlinable
  static func finishSquaredDistances<T: DMLScalar>(
    _ queryRows: Matrix<T>, _ referenceRows: Matrix<T>, querySquares: [T], referenceSquares: [T], sameSet: Bool,
    squareRoot power1: Bool, d: Int, into scores: inout Matrix<T>
  ) {
    let n = scores.rows, m = scores.columns
    queryRows.withUnsafeBufferPointer { q in
      referenceRows.withUnsafeBufferPointer { r in
        querySquares.withUnsafeBufferPointer { qs in
          referenceSquares.withUnsafeBufferPointer { rs in
            scores.withUnsafeMutableBufferPointer { s in
              for i in 0..<n {
                let cancelled = T.squaredDistanceRow(
                  s.baseAddress! + i * m, querySquare: qs[i], referenceSquares: rs.baseAddress!, count: m,
                  countingCancellations: true)
                // The scan runs only when an entry other than a same set's diagonal cancelled.
                let diagonal = sameSet && i < m && s[i * m + i] < 1e-3 * (qs[i] + rs[i]) ? 1 : 0
                guard cancelled > diagonal else { continue }
                for j in 0..<m where s[i * m + j] < 1e-3 * (qs[i] + rs[j]) {
                  // Cancellation: recompute this one directly (and exactly 0 on the diagonal).
                  var d2: T = 0
                  if !(sameSet && i == j) {
                    for k in 0..<d {
                      let diff = q[i * d + k] - r[j * d + k]
                      d2 += diff * diff
                    }
                  }
                  s[i * m + j] = d2
                }
              }
              if sameSet {
                for i in 0..<Swift.min(n, m) { s[i * m + i] = 0 }
              }
              if power1 { T.squareRootInPlace(s.baseAddress!, count: n * m) }
            }
          }
        }
      }
    }
  }

  /// Writes only `scores[i, columns[i]]` of `scores(query, reference)`, each computed directly
  /// in O(d) (a difference of rows for Euclidean kinds, so without the GEMM form's cancellation),
  /// and 0 elsewhere. The workspace is left as `scores(_:_:into:workspace:)` leaves it, so
  /// `backward` runs unchanged. For a loss that reads one reference per row (center loss).
  ///
  /// - Parameters:
  ///   - query: the batch, `n × d`.
  ///   - reference: the reference set, `m × d`.
  ///   - columns: for each row, the column of its one score (`n` values in `0..<m`).
  ///   - scores: receives the `n × m` matrix.
  ///   - w: the workspace, which keeps what the backward pass needs.
  @inlinable
  public func scores<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, onlyColumns columns: [Int],
    into scores: inout Matrix<T>, workspace w: inout DistanceWorkspace<T>
  ) {
    let (n, m, d) = (query.rows, reference.rows, query.columns)
    precondition(
      query.columns == reference.columns,
      "Distance: query rows have \(query.columns) features, reference rows \(reference.columns)")
    precondition(columns.count == n, "Distance: \(columns.count) columns for \(n) rows")
    prepare(query, into: &w.query, norms: &w.queryNorms)
    prepare(reference, into: &w.reference, norms: &w.referenceNorms)
    w.lastSameSet = false
    scores.resize(rows: n, columns: m, zeroed: true)
    guard d > 0 else { return }
    if kind == .snr {
      // What the backward pass reads: the centred rows and the anchors' squared centred norms.
      Self.centerRows(w.query, into: &w.centeredQuery)
      Self.centerRows(w.reference, into: &w.centeredReference)
      w.centeredQuery.rowSquaredNorms(into: &w.anchorSquares)
    }
    if kind == .poincare {
      // What the backward pass reads: the ball points' squared norms.
      w.query.rowSquaredNorms(into: &w.querySquares)
      w.reference.rowSquaredNorms(into: &w.referenceSquares)
    }
    let kind = self.kind
    w.query.withUnsafeBufferPointer { q in
      w.reference.withUnsafeBufferPointer { r in
        scores.withUnsafeMutableBufferPointer { s in
          for i in 0..<n {
            let j = columns[i]
            precondition(j >= 0 && j < m, "Distance: column \(j) of row \(i) is outside 0..<\(m)")
            let a = q.baseAddress! + i * d, b = r.baseAddress! + j * d
            switch kind {
            case .dotProduct: s[i * m + j] = T.dot(a, b, count: d)
            case .snr:
              // var(a − b) / var(a), each as a sum of squares about its mean (the (d − 1) cancels).
              var meanA: T = 0, meanDiff: T = 0
              for k in 0..<d {
                meanA += a[k]
                meanDiff += a[k] - b[k]
              }
              meanA /= T(d)
              meanDiff /= T(d)
              var signal: T = 0, noise: T = 0
              for k in 0..<d {
                let u = a[k] - meanA, v = (a[k] - b[k]) - meanDiff
                signal += u * u
                noise += v * v
              }
              s[i * m + j] = noise / Swift.max(signal, T(Distance.snrVarianceFloor))
            case .euclidean, .squaredEuclidean:
              var d2: T = 0
              for k in 0..<d {
                let diff = a[k] - b[k]
                d2 += diff * diff
              }
              s[i * m + j] = kind == .euclidean ? d2.squareRoot() : d2
            case .lp:
              s[i * m + j] = Self.lpScore(Self.lpSum(a, b, count: d, p: T(p)), p: T(p), power: T(power))
            case .poincare:
              var d2: T = 0, na: T = 0, nb: T = 0
              for k in 0..<d {
                d2 += (a[k] - b[k]) * (a[k] - b[k])
                na += a[k] * a[k]
                nb += b[k] * b[k]
              }
              s[i * m + j] = Self.poincareScore(squaredDistance: d2, querySquare: na, referenceSquare: nb, curvature: T(curvature)).score
            }
          }
        }
      }
    }
  }

  /// Given `∂L/∂scores` of within-batch scores (`scores(x, x, sameSet: true)`), writes `∂L/∂x`,
  /// with `x` on both sides: one GEMM with `G + Gᵀ` instead of two.
  @inlinable
  public func backwardSameSet<T: DMLScalar>(
    _ x: Matrix<T>, scores: Matrix<T>, scoreGradient: Matrix<T>,
    workspace w: inout DistanceWorkspace<T>, gradient: inout Matrix<T>
  ) {
    let n = scores.rows
    precondition(
      scores.columns == n && scoreGradient.rows == n && scoreGradient.columns == n,
      "Distance backward: gradient is \(scoreGradient.rows)x\(scoreGradient.columns), scores \(n)x\(scores.columns)")
    if kind == .snr || kind == .lp || kind == .poincare {
      // The two sides' gradients, added (the SNR is not symmetric; an Lp distance is computed pair by pair).
      var other = Matrix<T>()
      backward(x, x, scores: scores, scoreGradient: scoreGradient, workspace: &w, queryGradient: &gradient, referenceGradient: &other)
      gradient.add(other)
      return
    }
    scoreWeights(scores, scoreGradient, into: &w.weights)
    w.weights.withUnsafeMutableBufferPointer { wt in
      // Symmetrise: W ← W + Wᵀ, so one product serves both sides; in tiles of 32 × 32, so the
      // column side is read from cache rather than a row apart each step.
      let tile = 32
      for ti in stride(from: 0, to: n, by: tile) {
        for tj in stride(from: ti, to: n, by: tile) {
          for i in ti..<Swift.min(ti + tile, n) {
            for j in Swift.max(tj, i + 1)..<Swift.max(Swift.min(tj + tile, n), Swift.max(tj, i + 1)) {
              let v = wt[i * n + j] + wt[j * n + i]
              wt[i * n + j] = v
              wt[j * n + i] = v
            }
          }
        }
      }
      for i in 0..<n { wt[i * n + i] *= 2 }
    }
    if kind == .dotProduct {
      // S = X Xᵀ: dX = (G + Gᵀ) X.
      multiplyWeights(w.weights, w.query, alpha: 1, into: &gradient, compute: w.compute)
    } else {
      // dX = 2 (rowsum(W') X − W' X) with W' the symmetrised weights (the 2 is folded in).
      if w.rowWeights.count != n { w.rowWeights = [T](repeating: 0, count: n) }
      w.weights.withUnsafeBufferPointer { wt in
        w.rowWeights.withUnsafeMutableBufferPointer { rw in
          // W' is symmetric, so its row sums are its column sums, added row by row (vectorised),
          // each in the order of its row.
          for j in 0..<n { rw[j] = 0 }
          for i in 0..<n {
            for j in 0..<n { rw[j] += wt[i * n + j] }
          }
        }
      }
      multiplyWeights(w.weights, w.query, alpha: -1, into: &gradient, compute: w.compute)
      addScaledRows(w.query, scales: w.rowWeights, into: &gradient)
    }
    if normalizesEmbeddings {
      normalizeBackward(&gradient, normalized: w.query, norms: w.queryNorms)
    }
  }

  /// Given `∂L/∂scores`, writes `∂L/∂query` and `∂L/∂reference` (for the raw, unnormalised rows).
  /// For within-batch scores use `backwardSameSet`, or add the two.
  @inlinable
  public func backward<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, scores: Matrix<T>, scoreGradient: Matrix<T>,
    workspace w: inout DistanceWorkspace<T>,
    queryGradient: inout Matrix<T>, referenceGradient: inout Matrix<T>
  ) {
    let n = scores.rows, m = scores.columns
    // After a within-batch forward pass the reference rows are the query rows.
    let referenceRows = w.lastSameSet ? w.query : w.reference
    let referenceNorms = w.lastSameSet ? w.queryNorms : w.referenceNorms
    precondition(
      scoreGradient.rows == n && scoreGradient.columns == m,
      "Distance backward: gradient is \(scoreGradient.rows)x\(scoreGradient.columns), scores \(n)x\(m)")
    switch kind {
    case .dotProduct:
      // S = Q Rᵀ: dQ = G R, dR = Gᵀ Q.
      multiplyWeights(scoreGradient, referenceRows, alpha: 1, into: &queryGradient, compute: w.compute)
      multiplyWeights(scoreGradient, transposeW: true, w.query, alpha: 1, into: &referenceGradient, compute: w.compute)
    case .euclidean, .squaredEuclidean:
      // With W = ∂L/∂(d²) (·2 folded in): dQ = 2(rowsum(W) Q − W R), dR = 2(colsum(W) R − Wᵀ Q).
      scoreWeights(scores, scoreGradient, into: &w.weights)
      if w.rowWeights.count != n { w.rowWeights = [T](repeating: 0, count: n) }
      if w.columnWeights.count != m { w.columnWeights = [T](repeating: 0, count: m) }
      w.weights.withUnsafeBufferPointer { wt in
        w.rowWeights.withUnsafeMutableBufferPointer { rw in
          w.columnWeights.withUnsafeMutableBufferPointer { cw in
            for j in 0..<m { cw[j] = 0 }
            for i in 0..<n {
              var s: T = 0
              for j in 0..<m {
                s += wt[i * m + j]
                cw[j] += wt[i * m + j]
              }
              rw[i] = s
            }
          }
        }
      }
      multiplyWeights(w.weights, referenceRows, alpha: -1, into: &queryGradient, compute: w.compute)
      addScaledRows(w.query, scales: w.rowWeights, into: &queryGradient)
      multiplyWeights(w.weights, transposeW: true, w.query, alpha: -1, into: &referenceGradient, compute: w.compute)
      addScaledRows(referenceRows, scales: w.columnWeights, into: &referenceGradient)
    case .snr:
      snrBackward(scores: scores, scoreGradient: scoreGradient, workspace: &w, queryGradient: &queryGradient, referenceGradient: &referenceGradient)
    case .lp:
      lpBackward(referenceRows, scores: scores, scoreGradient: scoreGradient, workspace: &w, queryGradient: &queryGradient, referenceGradient: &referenceGradient)
    case .poincare:
      poincareBackward(
        query, w.lastSameSet ? query : reference, referenceRows, scores: scores, scoreGradient: scoreGradient, workspace: &w,
        queryGradient: &queryGradient, referenceGradient: &referenceGradient)
    }
    if normalizesEmbeddings {
      normalizeBackward(&queryGradient, normalized: w.query, norms: w.queryNorms, p: kind == .lp ? T(p) : 2)
      normalizeBackward(&referenceGradient, normalized: referenceRows, norms: referenceNorms, p: kind == .lp ? T(p) : 2)
    }
  }

  /// The weights both backward passes multiply the rows by: `G` for a dot product, and for
  /// Euclidean distances `∂L/∂(d²)` with the factor 2 of `∂(d²)/∂x` folded in: `2G` for squared
  /// distances, `G / d` for distances (`∂d/∂(d²) = 1/(2d)`; the gradient at `d = 0` is 0).
  @inlinable
  func scoreWeights<T: DMLScalar>(_ scores: Matrix<T>, _ scoreGradient: Matrix<T>, into weights: inout Matrix<T>) {
    weights.resize(rows: scores.rows, columns: scores.columns)
    let kind = self.kind
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeBufferPointer { g in
        weights.withUnsafeMutableBufferPointer { wt in
          switch kind {
          case .dotProduct: wt.baseAddress!.update(from: g.baseAddress!, count: wt.count)
          case .euclidean: T.divideWherePositive(g.baseAddress!, s.baseAddress!, wt.baseAddress!, count: wt.count)
          case .squaredEuclidean: for k in wt.indices { wt[k] = 2 * g[k] }
          case .snr: preconditionFailure("the signal-to-noise distance weighs its scores in snrBackward")
          case .lp: preconditionFailure("an Lp distance weighs its scores in lpBackward")
          case .poincare: preconditionFailure("the Poincaré distance weighs its scores in poincareBackward")
          }
        }
      }
    }
  }

  /// `x` as this distance compares it: its rows normalised if it normalises them (in the L2 norm,
  /// or an Lp distance's own p-norm), else `x` itself.
  public func preparedRows<T: DMLScalar>(_ x: Matrix<T>) -> Matrix<T> {
    guard normalizesEmbeddings || kind == .poincare else { return x }
    var out = Matrix<T>(), norms = [T]()
    prepare(x, into: &out, norms: &norms)
    return out
  }

  /// Copies `x` into `out`, normalising rows if this distance does (in the same pass).
  @inlinable
  func prepare<T: DMLScalar>(_ x: Matrix<T>, into out: inout Matrix<T>, norms: inout [T]) {
    // A copy, not a shared buffer: sharing `x` (the network's output) would make its next write
    // copy the whole buffer, every step.
    if kind == .poincare { return toBall(x, into: &out) }
    guard normalizesEmbeddings else { return out.assign(x) }
    let (n, d) = (x.rows, x.columns)
    out.resize(rows: n, columns: d)
    if norms.count != n { norms = [T](repeating: 0, count: n) }
    guard d > 0 else { return }
    if kind == .lp && p != 2 {
      // The row's own p-norm, as PML normalises for LpDistance.
      let order = T(p)
      let zeros = [T](repeating: 0, count: d)
      for i in 0..<n {
        let norm = x.withUnsafeBufferPointer { source in
          zeros.withUnsafeBufferPointer { z in Swift.max(Self.lpScore(Self.lpSum(source.baseAddress! + i * d, z.baseAddress!, count: d, p: order), p: order, power: 1), 1e-12) }
        }
        norms[i] = norm
        for k in 0..<d { out[i, k] = x[i, k] / norm }
      }
      return
    }
    x.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBufferPointer { p in
        norms.withUnsafeMutableBufferPointer { nr in
          for i in 0..<n {
            let from = source.baseAddress! + i * d, row = p.baseAddress! + i * d  // row pointers: the loop vectorises
            let norm = Swift.max(T.dot(from, from, count: d).squareRoot(), 1e-12)
            nr[i] = norm
            for k in 0..<d { row[k] = from[k] / norm }
          }
        }
      }
    }
  }
}

extension Distance {
  /// The signal-to-noise ratio: rows prepared (normalised if asked), centred (their mean
  /// removed, as a variance does), then `S[i, j] = ‖ĉ_i − r̂_j‖² / ‖ĉ_i‖²`, the squared distances
  /// of the centred rows by one GEMM (cancelling entries recomputed directly), each row divided
  /// by its anchor's squared centred norm (at least `snrVarianceFloor`).
  @inlinable
  func snrScores<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, sameSet: Bool, into scores: inout Matrix<T>, workspace w: inout DistanceWorkspace<T>
  ) {
    prepare(query, into: &w.query, norms: &w.queryNorms)
    w.lastSameSet = sameSet
    Self.centerRows(w.query, into: &w.centeredQuery)
    if !sameSet {
      prepare(reference, into: &w.reference, norms: &w.referenceNorms)
      Self.centerRows(w.reference, into: &w.centeredReference)
    }
    let centeredReference = sameSet ? w.centeredQuery : w.centeredReference
    gemm(w.centeredQuery, centeredReference, transposeB: true, into: &scores, compute: w.compute)
    w.centeredQuery.rowSquaredNorms(into: &w.querySquares)
    w.anchorSquares = w.querySquares
    if sameSet {
      w.referenceSquares = w.querySquares
    } else {
      centeredReference.rowSquaredNorms(into: &w.referenceSquares)
    }
    Self.finishSquaredDistances(
      w.centeredQuery, centeredReference, querySquares: w.querySquares, referenceSquares: w.referenceSquares,
      sameSet: sameSet, squareRoot: false, d: query.columns, into: &scores)
    let (n, m) = (scores.rows, scores.columns)
    let floor = T(Distance.snrVarianceFloor)
    w.anchorSquares.withUnsafeBufferPointer { a in
      scores.withUnsafeMutableBufferPointer { s in
        for i in 0..<n {
          let inverse = 1 / Swift.max(a[i], floor), row = s.baseAddress! + i * m
          for j in 0..<m { row[j] *= inverse }
        }
      }
    }
  }

  /// The signal-to-noise ratio's backward pass to the centred rows, then through the centring
  /// (each gradient row's mean removed). With `N_i = ‖ĉ_i‖²` and `W = 2G / N` (row-wise):
  /// `∂ĉ_i = Σ_j W_ij (ĉ_i − r̂_j) − (2 / N_i) (Σ_j G_ij S_ij) ĉ_i` and `∂r̂_j = Σ_i W_ij (r̂_j − ĉ_i)`;
  /// an anchor at the variance floor has no gradient through its variance.
  @inlinable
  func snrBackward<T: DMLScalar>(
    scores: Matrix<T>, scoreGradient: Matrix<T>, workspace w: inout DistanceWorkspace<T>,
    queryGradient: inout Matrix<T>, referenceGradient: inout Matrix<T>
  ) {
    let n = scores.rows, m = scores.columns
    let centeredReference = w.lastSameSet ? w.centeredQuery : w.centeredReference
    let floor = T(Distance.snrVarianceFloor)
    w.weights.resize(rows: n, columns: m)
    if w.rowWeights.count != n { w.rowWeights = [T](repeating: 0, count: n) }
    if w.columnWeights.count != m { w.columnWeights = [T](repeating: 0, count: m) }
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeBufferPointer { g in
        w.anchorSquares.withUnsafeBufferPointer { a in
          w.weights.withUnsafeMutableBufferPointer { wt in
            w.rowWeights.withUnsafeMutableBufferPointer { rw in
              w.columnWeights.withUnsafeMutableBufferPointer { cw in
                for j in 0..<m { cw[j] = 0 }
                for i in 0..<n {
                  let scale = 2 / Swift.max(a[i], floor)
                  var rowSum: T = 0, weighted: T = 0
                  for j in 0..<m {
                    let v = scale * g[i * m + j]
                    wt[i * m + j] = v
                    rowSum += v
                    cw[j] += v
                    weighted += g[i * m + j] * s[i * m + j]
                  }
                  rw[i] = a[i] < floor ? rowSum : rowSum - scale * weighted
                }
              }
            }
          }
        }
      }
    }
    multiplyWeights(w.weights, centeredReference, alpha: -1, into: &queryGradient, compute: w.compute)
    addScaledRows(w.centeredQuery, scales: w.rowWeights, into: &queryGradient)
    multiplyWeights(w.weights, transposeW: true, w.centeredQuery, alpha: -1, into: &referenceGradient, compute: w.compute)
    addScaledRows(centeredReference, scales: w.columnWeights, into: &referenceGradient)
    queryGradient.subtractRowMeans()
    referenceGradient.subtractRowMeans()
  }

  /// `out[i, :] = x[i, :] − mean(x[i, :])`.
  @inlinable
  static func centerRows<T: DMLScalar>(_ x: Matrix<T>, into out: inout Matrix<T>) {
    out.assign(x)
    out.subtractRowMeans()
  }
}

/// `out = alpha · W X` (or `alpha · Wᵀ X`): one GEMM, or, when at most one entry of `W` in 16 is non-zero (the score
/// gradient of a miner's few pairs or triplets), a sum over those entries only, row by row in
/// column order.
@inlinable
func multiplyWeights<T: DMLScalar>(
  _ w: Matrix<T>, transposeW: Bool = false, _ x: Matrix<T>, alpha: T, into out: inout Matrix<T>,
  compute: ComputeContext
) {
  let (n, m, d) = (w.rows, w.columns, x.columns)
  precondition(x.rows == (transposeW ? n : m), "multiplyWeights: W is \(n)x\(m), X is \(x.rows)x\(d)")
  let limit = n * m / 16
  guard d > 0, limit > 0 else {
    return gemm(w, transposeA: transposeW, x, alpha: alpha, into: &out, compute: compute)
  }
  let sparse: Bool = w.withUnsafeBufferPointer { wt in
    withUnsafeTemporaryAllocation(of: Int.self, capacity: limit) { found in
      guard let count = nonZeroPositions(wt, into: found) else { return false }
      out.resize(rows: transposeW ? m : n, columns: d, zeroed: true)
      x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBufferPointer { o in
          for q in 0..<count {
            let k = found[q], i = k / m, j = k - i * m
            // W X: row i gains W[i, j] x_j; Wᵀ X: row j gains W[i, j] x_i.
            let (target, from) = transposeW ? (j, i) : (i, j)
            let a = alpha * wt[k], source = xp.baseAddress! + from * d, row = o.baseAddress! + target * d
            for e in 0..<d { row[e] += a * source[e] }
          }
        }
      }
      return true
    }
  }
  if !sparse { gemm(w, transposeA: transposeW, x, alpha: alpha, into: &out, compute: compute) }
}

/// The positions of the non-zero entries of `p` in increasing order, into `found`; their number,
/// or nil when there are more than `found` holds. Zero runs are skipped 32 bytes at a time by
/// OR-ing the entries' bits without their signs (so −0 counts as zero, NaN as non-zero).
@inlinable
func nonZeroPositions<T: DMLScalar>(_ p: UnsafeBufferPointer<T>, into found: UnsafeMutableBufferPointer<Int>) -> Int? {
  guard let base = p.baseAddress else { return 0 }
  let perWord = 8 / MemoryLayout<T>.stride  // entries per 64-bit word: 2 for Float, 1 for Double
  let magnitude: UInt64 = perWord == 2 ? 0x7FFF_FFFF_7FFF_FFFF : 0x7FFF_FFFF_FFFF_FFFF
  let block = 4 * perWord
  var count = 0
  var k = 0
  if perWord == 1 || perWord == 2 {
    let words = UnsafeRawPointer(base)
    while k + block <= p.count {
      let o = k * MemoryLayout<T>.stride
      let bits = words.loadUnaligned(fromByteOffset: o, as: UInt64.self) | words.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self)
        | words.loadUnaligned(fromByteOffset: o + 16, as: UInt64.self) | words.loadUnaligned(fromByteOffset: o + 24, as: UInt64.self)
      if bits & magnitude != 0 {
        for e in k..<(k + block) where base[e] != 0 {
          guard count < found.count else { return nil }
          found[count] = e
          count += 1
        }
      }
      k += block
    }
  }
  for e in k..<p.count where base[e] != 0 {
    guard count < found.count else { return nil }
    found[count] = e
    count += 1
  }
  return count
}

/// `out[i, :] += scales[i] * x[i, :]`.
@inlinable
func addScaledRows<T: DMLScalar>(_ x: Matrix<T>, scales: [T], into out: inout Matrix<T>) {
  let (n, d) = (x.rows, x.columns)
  guard d > 0 else { return }
  x.withUnsafeBufferPointer { p in
    out.withUnsafeMutableBufferPointer { o in
      for i in 0..<n {
        let s = scales[i]
        let source = p.baseAddress! + i * d, target = o.baseAddress! + i * d
        for k in 0..<d { target[k] += s * source[k] }
      }
    }
  }
}

/// Back-propagates through `y = x / max(‖x‖, ε)` in place: `g ← (g − y (y·g)) / ‖x‖`; in a
/// p-norm other than 2, `g ← (g − φ(y) (y·g)) / ‖x‖_p` with `φ(v) = sign(v) |v|^(p − 1)`.
@inlinable
func normalizeBackward<T: DMLScalar>(
  _ g: inout Matrix<T>, normalized y: Matrix<T>, norms: [T], p: T = 2
) {
  let (n, d) = (g.rows, g.columns)
  guard d > 0 else { return }
  if p != 2 {
    for i in 0..<n {
      let norm = norms[i]
      guard norm > 1e-12 else {
        for k in 0..<d { g[i, k] /= 1e-12 }
        continue
      }
      var dot: T = 0
      for k in 0..<d { dot += y[i, k] * g[i, k] }
      for k in 0..<d { g[i, k] = (g[i, k] - Distance.lpSlope(y[i, k], p: p) * dot) / norm }
    }
    return
  }
  y.withUnsafeBufferPointer { yp in
    g.withUnsafeMutableBufferPointer { gp in
      for i in 0..<n {
        let norm = norms[i]
        if norm > 1e-12 {
          let dot = T.dot(yp.baseAddress! + i * d, gp.baseAddress! + i * d, count: d)
          let g = gp.baseAddress! + i * d, y = yp.baseAddress! + i * d  // row pointers: the loop vectorises
          for k in 0..<d { g[k] = (g[k] - y[k] * dot) / norm }
        } else {
          let g = gp.baseAddress! + i * d
          for k in 0..<d { g[k] /= 1e-12 }
        }
      }
    }
  }
}

extension Distance {
  /// `Σ_k |a_k − b_k|^p` over `count` features (the p-th power of the p-norm of the difference).
  @inlinable
  public static func lpSum<T: DMLScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, count: Int, p: T) -> T {
    var sum: T = 0
    if p == 1 {
      for k in 0..<count { sum += abs(a[k] - b[k]) }
    } else if p == 2 {
      for k in 0..<count { sum += (a[k] - b[k]) * (a[k] - b[k]) }
    } else if p == 3 {
      for k in 0..<count {
        let v = abs(a[k] - b[k])
        sum += v * v * v
      }
    } else {
      for k in 0..<count {
        let v = abs(a[k] - b[k])
        if v > 0 { sum += T.pow(v, p) }
      }
    }
    return sum
  }

  /// The score `‖a − b‖_p^power` of the sum `Σ|a_k − b_k|^p`: `sum^(power / p)`.
  @inlinable
  public static func lpScore<T: DMLScalar>(_ sum: T, p: T, power: T) -> T {
    guard sum > 0 else { return 0 }
    let exponent = power / p
    return exponent == 1 ? sum : exponent == T(0.5) ? sum.squareRoot() : T.pow(sum, exponent)
  }

  /// `sign(v) |v|^(p − 1)`, the derivative of `|v|^p / p` (0 at `v = 0`).
  @inlinable
  static func lpSlope<T: DMLScalar>(_ v: T, p: T) -> T {
    if p == 2 { return v }
    if p == 1 { return v > 0 ? 1 : v < 0 ? -1 : 0 }
    guard v != 0 else { return 0 }
    let magnitude = p == 3 ? v * v : T.pow(abs(v), p - 1)
    return v > 0 ? magnitude : -magnitude
  }

  /// An Lp distance's scores, row pair by row pair (`p` other than 2 has no product form), split
  /// over the workspace's threads by rows.
  @inlinable
  func lpScores<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, sameSet: Bool, into scores: inout Matrix<T>, workspace w: inout DistanceWorkspace<T>
  ) {
    prepare(query, into: &w.query, norms: &w.queryNorms)
    w.lastSameSet = sameSet
    if !sameSet { prepare(reference, into: &w.reference, norms: &w.referenceNorms) }
    let references = sameSet ? w.query : w.reference
    let (n, m, d) = (query.rows, references.rows, query.columns)
    scores.resize(rows: n, columns: m)
    let (p, power) = (T(self.p), T(self.power))
    let chunks = w.compute.chunkCount(rows: n, workPerRow: m * Swift.max(d, 1) * (p == 1 || p == 2 ? 1 : 8), minimumWork: 1 << 16)
    w.query.withUnsafeBufferPointer { q in
      references.withUnsafeBufferPointer { r in
        scores.withUnsafeMutableBufferPointer { s in
          let (q, r, s) = (q.baseAddress, r.baseAddress, s.baseAddress!)
          BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, rows in
            for i in rows {
              for j in 0..<m {
                // Identical rows, and a same set's diagonal, are exactly 0 apart.
                s[i * m + j] = d == 0 || (sameSet && i == j) ? 0 : Self.lpScore(Self.lpSum(q! + i * d, r! + j * d, count: d, p: p), p: p, power: power)
              }
            }
          }
        }
      }
    }
  }

  /// An Lp distance's backward pass to the prepared rows. With `D = ‖q_i − r_j‖_p`, the score
  /// `S = D^power` and `c_ij = G_ij · power · D^(power − p)` (0 where `D = 0`):
  /// `∂q_i = Σ_j c_ij φ(q_i − r_j)` and `∂r_j = −Σ_i c_ij φ(q_i − r_j)`, `φ(v) = sign(v) |v|^(p − 1)`
  /// element-wise. Zero entries of `G` (a miner's few pairs) cost nothing.
  @inlinable
  func lpBackward<T: DMLScalar>(
    _ referenceRows: Matrix<T>, scores: Matrix<T>, scoreGradient: Matrix<T>, workspace w: inout DistanceWorkspace<T>,
    queryGradient: inout Matrix<T>, referenceGradient: inout Matrix<T>
  ) {
    let (n, m, d) = (scores.rows, scores.columns, w.query.columns)
    let (p, power) = (T(self.p), T(self.power))
    // c = G · power · S^(1 − p / power), as D^(power − p) = S^((power − p) / power).
    w.weights.resize(rows: n, columns: m)
    let exponent = 1 - p / power
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeBufferPointer { g in
        w.weights.withUnsafeMutableBufferPointer { c in
          for k in 0..<(n * m) {
            c[k] = g[k] == 0 || s[k] <= 0 ? 0 : g[k] * power * (exponent == 0 ? 1 : T.pow(s[k], exponent))
          }
        }
      }
    }
    queryGradient.resize(rows: n, columns: d, zeroed: true)
    referenceGradient.resize(rows: m, columns: d, zeroed: true)
    guard d > 0 else { return }
    let work = d * (p == 1 || p == 2 ? 1 : 8)
    w.query.withUnsafeBufferPointer { q in
      referenceRows.withUnsafeBufferPointer { r in
        w.weights.withUnsafeBufferPointer { c in
          queryGradient.withUnsafeMutableBufferPointer { gq in
            let (q, r, c, gq) = (q.baseAddress!, r.baseAddress!, c.baseAddress!, gq.baseAddress!)
            BatchParallelism.forEachChunk(rows: n, chunks: w.compute.chunkCount(rows: n, workPerRow: m * work, minimumWork: 1 << 16)) { _, rows in
              for i in rows {
                let out = gq + i * d, a = q + i * d
                for j in 0..<m where c[i * m + j] != 0 {
                  let weight = c[i * m + j], b = r + j * d
                  for k in 0..<d { out[k] += weight * Self.lpSlope(a[k] - b[k], p: p) }
                }
              }
            }
          }
          referenceGradient.withUnsafeMutableBufferPointer { gr in
            let (q, r, c, gr) = (q.baseAddress!, r.baseAddress!, c.baseAddress!, gr.baseAddress!)
            BatchParallelism.forEachChunk(rows: m, chunks: w.compute.chunkCount(rows: m, workPerRow: n * work, minimumWork: 1 << 16)) { _, columns in
              for j in columns {
                let out = gr + j * d, b = r + j * d
                for i in 0..<n where c[i * m + j] != 0 {
                  let weight = c[i * m + j], a = q + i * d
                  for k in 0..<d { out[k] -= weight * Self.lpSlope(a[k] - b[k], p: p) }
                }
              }
            }
          }
        }
      }
    }
  }
}

extension Distance {
  /// The score of a pair in the Poincaré ball from the squared distance of its points and their
  /// squared norms: `arcosh(1 + δ) / √c` with `δ = 2c D² / ((1 − c‖u‖²)(1 − c‖v‖²))`, computed as
  /// `log1p(δ + √(δ(δ + 2)))` (exact near 0); `δ` is returned for the backward pass.
  @inlinable
  public static func poincareScore<T: DMLScalar>(squaredDistance: T, querySquare: T, referenceSquare: T, curvature c: T) -> (score: T, delta: T) {
    let alpha = Swift.max(1 - c * querySquare, T.ulpOfOne), beta = Swift.max(1 - c * referenceSquare, T.ulpOfOne)
    let delta = 2 * c * Swift.max(squaredDistance, 0) / (alpha * beta)
    return (T.log(onePlus: delta + (delta * (delta + 2)).squareRoot()) / c.squareRoot(), delta)
  }

  /// Maps rows into the Poincaré ball: each row clipped to norm `clipRadius` (if positive), then
  /// `u = tanh(√c ‖y‖) y / (√c ‖y‖)` (the exponential map at 0), then kept within norm
  /// `(1 − 10⁻³) / √c` (hyptorch's projection).
  @inlinable
  func toBall<T: DMLScalar>(_ x: Matrix<T>, into out: inout Matrix<T>) {
    let (n, d) = (x.rows, x.columns)
    out.resize(rows: n, columns: d)
    guard d > 0 else { return }
    let a = T(curvature).squareRoot(), r = T(clipRadius), maxNorm = (1 - T(1e-3)) / a
    x.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBufferPointer { target in
        for i in 0..<n {
          let from = source.baseAddress! + i * d, row = target.baseAddress! + i * d
          let norm = T.dot(from, from, count: d).squareRoot()
          let t = r > 0 ? Swift.min(norm, r) : norm
          // u = g · x with g = (t / ‖x‖) · tanh(a t) / (a t), then the projection.
          var g: T = t > 0 ? (t / norm) * T.tanh(a * t) / (a * t) : 1
          let ballNorm = t > 0 ? T.tanh(a * t) / a : 0
          if ballNorm > maxNorm { g *= maxNorm / ballNorm }
          for k in 0..<d { row[k] = g * from[k] }
        }
      }
    }
  }

  /// Back-propagates `∂u` (rows of the ball) to the raw rows `x`, in place: through the
  /// projection, the exponential map and the clipping.
  @inlinable
  func ballBackward<T: DMLScalar>(_ g: inout Matrix<T>, raw x: Matrix<T>) {
    let (n, d) = (x.rows, x.columns)
    guard d > 0 else { return }
    let a = T(curvature).squareRoot(), r = T(clipRadius), maxNorm = (1 - T(1e-3)) / a
    x.withUnsafeBufferPointer { source in
      g.withUnsafeMutableBufferPointer { gradient in
        for i in 0..<n {
          let xi = source.baseAddress! + i * d, gi = gradient.baseAddress! + i * d
          let norm = T.dot(xi, xi, count: d).squareRoot()
          guard norm > 0 else { continue }  // u = x near 0: the Jacobian is the identity
          let clipped = r > 0 && norm > r
          let t = clipped ? r : norm, scaleToY = t / norm  // y = scaleToY · x
          let tanhAT = T.tanh(a * t), ballNorm = tanhAT / a
          // Projection: u = p(w) = w · maxNorm / ‖w‖ beyond maxNorm; ∂w = (maxNorm/‖w‖)(∂u − ŵ (ŵ·∂u)).
          if ballNorm > maxNorm {
            var dot: T = 0
            for k in 0..<d { dot += xi[k] * gi[k] }
            dot /= norm  // ŵ = x̂
            for k in 0..<d { gi[k] = (maxNorm / ballNorm) * (gi[k] - xi[k] / norm * dot) }
          }
          // Exponential map: w = h(t) y, h(t) = tanh(at)/(at); ∂y = h ∂w + (h'(t)/t)(y·∂w) y.
          let h = tanhAT / (a * t)
          let sech2 = 1 - tanhAT * tanhAT
          let hPrime = sech2 / t - tanhAT / (a * t * t)
          var yDot: T = 0
          for k in 0..<d { yDot += scaleToY * xi[k] * gi[k] }
          let radial = hPrime / t * yDot * scaleToY  // times x: y = scaleToY · x
          for k in 0..<d { gi[k] = h * gi[k] + radial * xi[k] }
          // Clipping: y = r x / ‖x‖ beyond r; ∂x = (r/‖x‖)(∂y − x̂ (x̂·∂y)).
          if clipped {
            var dot: T = 0
            for k in 0..<d { dot += xi[k] * gi[k] }
            dot /= norm
            for k in 0..<d { gi[k] = scaleToY * (gi[k] - xi[k] / norm * dot) }
          }
        }
      }
    }
  }

  /// The Poincaré distance's scores: rows mapped into the ball, their squared distances by one GEMM
  /// (cancelling entries recomputed directly), then each turned into the geodesic distance.
  @inlinable
  func poincareScores<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, sameSet: Bool, into scores: inout Matrix<T>, workspace w: inout DistanceWorkspace<T>
  ) {
    toBall(query, into: &w.query)
    w.lastSameSet = sameSet
    if !sameSet { toBall(reference, into: &w.reference) }
    let references = sameSet ? w.query : w.reference
    gemm(w.query, references, transposeB: true, into: &scores, compute: w.compute)
    w.query.rowSquaredNorms(into: &w.querySquares)
    if sameSet { w.referenceSquares = w.querySquares } else { references.rowSquaredNorms(into: &w.referenceSquares) }
    Self.finishSquaredDistances(
      w.query, references, querySquares: w.querySquares, referenceSquares: w.referenceSquares, sameSet: sameSet,
      squareRoot: false, d: query.columns, into: &scores)
    let (n, m, c) = (scores.rows, scores.columns, T(curvature))
    scores.withUnsafeMutableBufferPointer { s in
      for i in 0..<n {
        for j in 0..<m {
          s[i * m + j] = Self.poincareScore(
            squaredDistance: s[i * m + j], querySquare: w.querySquares[i], referenceSquare: w.referenceSquares[j], curvature: c).score
        }
      }
    }
  }

  /// The Poincaré distance's backward pass: with `δ` recovered from the score
  /// (`δ = 2 sinh²(√c s / 2)`) and `k = G / (√c √(δ(δ + 2)))` (0 where `δ = 0`), the squared
  /// distances' weights `W = 4c k / (αβ)` and the norms' terms `2cδ k / α` on `u` (and `/ β` on
  /// `v`); then back through the map into the ball.
  @inlinable
  func poincareBackward<T: DMLScalar>(
    _ rawQuery: Matrix<T>, _ rawReference: Matrix<T>, _ referenceRows: Matrix<T>, scores: Matrix<T>, scoreGradient: Matrix<T>,
    workspace w: inout DistanceWorkspace<T>, queryGradient: inout Matrix<T>, referenceGradient: inout Matrix<T>
  ) {
    let (n, m) = (scores.rows, scores.columns)
    let c = T(curvature), a = c.squareRoot()
    w.weights.resize(rows: n, columns: m)
    if w.rowWeights.count != n { w.rowWeights = [T](repeating: 0, count: n) }
    if w.columnWeights.count != m { w.columnWeights = [T](repeating: 0, count: m) }
    var rowRadial = [T](repeating: 0, count: n), columnRadial = [T](repeating: 0, count: m)
    for j in 0..<m { w.columnWeights[j] = 0 }
    for i in 0..<n {
      let alpha = Swift.max(1 - c * w.querySquares[i], T.ulpOfOne)
      var rowSum: T = 0
      for j in 0..<m {
        let g = scoreGradient[i, j], half = T.sinh(a * scores[i, j] / 2)
        let delta = 2 * half * half
        guard g != 0, delta > 0 else {
          w.weights[i, j] = 0
          continue
        }
        let beta = Swift.max(1 - c * w.referenceSquares[j], T.ulpOfOne)
        let k = g / (a * (delta * (delta + 2)).squareRoot())
        let weight = 4 * c * k / (alpha * beta)
        w.weights[i, j] = weight
        rowSum += weight
        w.columnWeights[j] += weight
        rowRadial[i] += 2 * c * delta * k / alpha
        columnRadial[j] += 2 * c * delta * k / beta
      }
      w.rowWeights[i] = rowSum + rowRadial[i]
    }
    for j in 0..<m { w.columnWeights[j] += columnRadial[j] }
    // ∂u_i = Σ_j W_ij (u_i − v_j) + radial_i u_i;  ∂v_j = Σ_i W_ij (v_j − u_i) + radial_j v_j.
    multiplyWeights(w.weights, referenceRows, alpha: -1, into: &queryGradient, compute: w.compute)
    addScaledRows(w.query, scales: w.rowWeights, into: &queryGradient)
    multiplyWeights(w.weights, transposeW: true, w.query, alpha: -1, into: &referenceGradient, compute: w.compute)
    addScaledRows(referenceRows, scales: w.columnWeights, into: &referenceGradient)
    ballBackward(&queryGradient, raw: rawQuery)
    ballBackward(&referenceGradient, raw: rawReference)
  }
}

extension Distance {
  /// PML's `BatchedDistance`: the scores of `query` against `reference`, computed `blockRows`
  /// query rows at a time, each block handed to `body(scores, rows)` (the block's `rows.count × m`
  /// scores, and the query rows they belong to). Memory stays at one block, for sets whose whole
  /// score matrix would not fit. The blocks' scores equal those rows of `scores(query, reference)`.
  public func forEachBlock<T: DMLScalar>(
    _ query: Matrix<T>, _ reference: Matrix<T>, blockRows: Int = 1024, compute: ComputeContext = .automatic,
    _ body: (Matrix<T>, Range<Int>) throws -> Void
  ) rethrows {
    precondition(blockRows > 0, "Distance.forEachBlock: blockRows must be positive")
    var w = DistanceWorkspace<T>(compute: compute)
    var block = Matrix<T>(), rows = Matrix<T>()
    var start = 0
    while start < query.rows {
      let end = Swift.min(query.rows, start + blockRows)
      rows = query.rows(Array(start..<end))
      scores(rows, reference, into: &block, workspace: &w)
      try body(block, start..<end)
      start = end
    }
  }
}
