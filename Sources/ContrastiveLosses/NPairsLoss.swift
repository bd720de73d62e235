/// N-pair loss (Sohn 2016), as PML's `NPairsLoss`: one positive pair per class, each anchor
/// classifying its own positive among the other classes' positives with a softmax.
///
/// ```
/// pairs (a_k, p_k): the first positive pair of each label, in pair order
/// loss_k = −log softmax_j(s(a_k, p_j))[k]
/// loss = mean_k loss_k
/// ```
/// With a distance, `s` is the negated distance.
///
/// - Default distance: cosine similarity (PML's default `DotProductSimilarity()` normalises rows);
///   `distance=dot` for the plain dot product. Reduction: the mean over the chosen anchors (PML's
///   `MeanReducer`).
/// - Pairs: the first positive pair of each label, in row-major order without tuples, or in the
///   order of the tuples' positive pairs (PML's `convert_to_pos_pairs_with_unique_labels`; triplet
///   tuples give their pairs sorted, which changes which pair is first but not what the loss
///   measures).
/// - Term: `loss`, one per chosen anchor. The choice depends on the order of the batch, so the
///   loss is not invariant under a permutation of the batch (PML's is not either).
/// - No cross-batch memory (as in PML).
/// - Only the chosen pairs' rows are scored (`scoredRows`), as PML scores anchors against
///   positives only: the other rows of the batch take no part and get no gradient.
///
/// ### See Also
/// `NTXentLoss`, `SupConLoss`.
public struct NPairsLoss<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
  /// The score between embeddings.
  public var distance: Distance
  @usableFromInline var logits: [Scalar] = []

  /// An N-pair loss with cosine similarity by default, as PML.
  public init(distance: Distance = .cosine) {
    self.distance = distance
  }

  public static var registryName: String { "npairs" }
  public static var summary: String { "N-pair loss (Sohn 2016): each class's anchor picks its positive among the other classes'" }
  public static var usesTuples: Bool { true }
  public static var supportsCrossBatchMemory: Bool { false }
  public static var hyperparameters: [HyperparameterSpec] { [.distance(default: "cosine")] }

  public init(_ v: HyperparameterValues, context: LossContext) throws {
    self.init(distance: try v.distance())
  }

  /// The first positive pair of each label: in row-major order without tuples (each label's first
  /// row and its second, in the order of the first rows), else in the order of the tuples'
  /// positive pairs.
  @inlinable
  static func firstPairs(labels: [Int], tuples: Tuples?) -> (anchors: [Int], positives: [Int]) {
    var anchors: [Int] = [], positives: [Int] = []
    var seen = Set<Int>()
    func offer(_ a: Int, _ p: Int) {
      if seen.insert(labels[a]).inserted {
        anchors.append(a)
        positives.append(p)
      }
    }
    if let tuples {
      for pair in tuples.asPairs.positive { offer(Int(pair.x), Int(pair.y)) }
    } else {
      var firstRow: [Int: Int] = [:]
      var pairs: [(Int, Int)] = []
      for a in 0..<labels.count {
        if let first = firstRow[labels[a]] {
          if first >= 0 { pairs.append((first, a)) }
          firstRow[labels[a]] = -1
        } else {
          firstRow[labels[a]] = a
        }
      }
      pairs.sort { $0.0 < $1.0 }
      for (a, p) in pairs { offer(a, p) }
    }
    return (anchors, positives)
  }

  /// The chosen anchors, then their positives: the loss reads only the scores among them. On those
  /// rows alone, anchor k and positive k are the first pair of their label, in the same order, so
  /// the loss is the same. `nil` (the whole batch) if a tuple pairs a row with itself or two labels.
  @inlinable
  public func scoredRows(labels: [Int], tuples: Tuples?) -> [Int]? {
    let (anchors, positives) = Self.firstPairs(labels: labels, tuples: tuples)
    guard zip(anchors, positives).allSatisfy({ $0 != $1 && labels[$0] == labels[$1] }) else { return nil }
    return anchors + positives
  }

  @inlinable
  public mutating func compute(
    scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
  ) -> LossValue<Scalar> {
    let n = scores.rows, columns = scores.columns
    precondition(columns == n, "NPairsLoss compares the batch with itself (no cross-batch memory)")
    scoreGradient.resize(rows: n, columns: columns, zeroed: true)
    let (anchors, positives) = Self.firstPairs(labels: labels, tuples: tuples)
    let k = anchors.count
    var terms = TermAccumulator<Scalar>()
    guard k > 0 else { return LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }
    let sign = Scalar(distance.closeness)
    let perTerm = 1 / Scalar(k)
    if logits.count < k { logits = [Scalar](repeating: 0, count: k) }
    scores.withUnsafeBufferPointer { s in
      scoreGradient.withUnsafeMutableBufferPointer { g in
        logits.withUnsafeMutableBufferPointer { z in
          withUnsafeTemporaryAllocation(of: Scalar.self, capacity: k) { gradient in
            for i in 0..<k {
              for j in 0..<k { z[j] = sign * s[anchors[i] * columns + positives[j]] }
              terms.add(crossEntropy(logits: z.baseAddress!, count: k, label: i, scale: perTerm, gradient: gradient.baseAddress!))
              for j in 0..<k { g[anchors[i] * columns + positives[j]] += sign * gradient[j] }
            }
          }
        }
      }
    }
    return LossValue(LossTerm(name: "loss", value: Reduction.mean.value(terms), count: terms.count, nonZero: terms.nonZero))
  }
}
