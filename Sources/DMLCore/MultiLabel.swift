extension Tuples {
  /// The pairs of a batch whose rows carry label sets (multi-label data): `(i, j)`, `i ≠ j`, is
  /// positive when the two rows share at least one label and negative when they share none (PML
  /// 3's multi-label pairs). A row with an empty set is in no pair.
  public static func multiLabel(_ labelSets: [[Int]]) -> Tuples {
    let sets = labelSets.map(Set.init)
    var positive: [SIMD2<Int32>] = [], negative: [SIMD2<Int32>] = []
    for i in sets.indices where !sets[i].isEmpty {
      for j in sets.indices where j != i && !sets[j].isEmpty {
        if sets[i].isDisjoint(with: sets[j]) {
          negative.append(SIMD2(Int32(i), Int32(j)))
        } else {
          positive.append(SIMD2(Int32(i), Int32(j)))
        }
      }
    }
    return .pairs(positive: positive, negative: negative)
  }
}

extension LossEvaluator {
  /// Evaluates the loss on rows that each carry a set of labels: the pairs are
  /// `Tuples.multiLabel(labelSets)`, positives sharing a label, negatives sharing none. With
  /// `SupConLoss` this is PML 3's `MultiSupConLoss`; any loss that reads pairs (contrastive,
  /// NT-Xent, multi-similarity, circle, triplet) takes multi-label rows the same way. Losses that
  /// read no tuples (NCA, FastAP, the class-weight losses) cannot.
  public mutating func evaluate(_ embeddings: Matrix<Scalar>, labelSets: [[Int]]) -> LossValue<Scalar> {
    precondition(labelSets.count == embeddings.rows, "multi-label evaluation: \(embeddings.rows) rows but \(labelSets.count) label sets")
    // Each row its own label: only the tuples say which rows go together.
    return evaluate(embeddings, labels: Array(0..<embeddings.rows), tuples: .multiLabel(labelSets))
  }
}
