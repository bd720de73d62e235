/// Verification: deciding whether two items match from the score between them.
///
/// Scores are oriented by `higherIsMatch` (true for similarities, false for distances). Every
/// quantity is computed exactly from the sorted scores, ties included.
public enum Verification {
  /// How a threshold is chosen on a calibration split.
  public enum Target: Sendable, Equatable {
    /// The threshold with the best F1.
    case bestF1
    /// The threshold with the most matches accepted while precision stays at least this.
    case precision(Double)
    /// The threshold where the false acceptance rate is at most this.
    case falseAcceptRate(Double)
  }

  /// A decision rule: a pair matches when its score is at least (`higherIsMatch`) or at most the
  /// threshold. It can be calibrated on one split and applied to another, as TensorFlow
  /// Similarity's `calibrate`.
  public struct Calibration: Sendable, Equatable, Codable {
    /// The decision boundary; a pair scoring exactly this matches.
    public var threshold: Double
    /// Whether higher scores mean a match (similarities) rather than lower ones (distances).
    public var higherIsMatch: Bool

    /// Creates a rule matching scores at least (`higherIsMatch`) or at most `threshold`.
    public init(threshold: Double, higherIsMatch: Bool) {
      self.threshold = threshold
      self.higherIsMatch = higherIsMatch
    }

    /// Whether a pair with this score matches.
    public func matches(_ score: Double) -> Bool { higherIsMatch ? score >= threshold : score <= threshold }
  }

  /// ROC and threshold statistics of a set of scored pairs.
  public struct Report: Sendable, CustomStringConvertible {
    /// The numbers of matching (positive) and non-matching (negative) pairs.
    public var positives: Int, negatives: Int
    /// Area under the ROC curve (ties count one half).
    public var auc: Double
    /// Equal error rate: where the false accept and false reject rates cross.
    public var eer: Double
    /// The threshold of the operating point where the two rates are closest, which gives `eer`.
    public var eerThreshold: Double
    /// True accept rate at a false accept rate of at most 1e-2 and 1e-3, with thresholds.
    public var tarAtFAR: [(far: Double, tar: Double, threshold: Double)]
    /// The best F1 and its threshold.
    public var bestF1: Double, bestF1Threshold: Double

    /// One line with the pair counts, AUC, EER, best F1 (with their thresholds) and each TAR@FAR,
    /// values rounded to four decimals.
    public var description: String {
      var s = "pairs \(positives)+/\(negatives)-  AUC \(r(auc))  EER \(r(eer)) at \(r(eerThreshold))  best F1 \(r(bestF1)) at \(r(bestF1Threshold))"
      for t in tarAtFAR { s += "  TAR@FAR=\(t.far) \(r(t.tar))" }
      return s
    }
    func r(_ v: Double) -> String { "\((v * 10000).rounded() / 10000)" }
  }

  /// The operating points: for each distinct threshold, from the strictest to the loosest, the
  /// true and false positives accepted.
  static func sweep(_ scores: [Double], _ matches: [Bool], higherIsMatch: Bool)
    -> [(threshold: Double, tp: Int, fp: Int)]
  {
    let order = scores.indices.sorted {
      higherIsMatch ? scores[$0] > scores[$1] : scores[$0] < scores[$1]
    }
    var points: [(Double, Int, Int)] = []
    var tp = 0, fp = 0, k = 0
    while k < order.count {
      let t = scores[order[k]]
      while k < order.count && scores[order[k]] == t {
        if matches[order[k]] { tp += 1 } else { fp += 1 }
        k += 1
      }
      points.append((t, tp, fp))
    }
    return points
  }

  static func check(_ scores: [Double], _ matches: [Bool]) throws -> (Int, Int) {
    guard scores.count == matches.count else {
      throw EvaluationError("\(scores.count) scores but \(matches.count) match flags")
    }
    guard scores.allSatisfy(\.isFinite) else { throw EvaluationError("scores contain NaN or infinite values") }
    let p = matches.filter { $0 }.count, n = matches.count - p
    guard p > 0 && n > 0 else {
      throw EvaluationError("verification needs matching and non-matching pairs (got \(p) and \(n))")
    }
    return (p, n)
  }

  /// The full report for scored pairs.
  public static func evaluate(scores: [Double], matches: [Bool], higherIsMatch: Bool) throws -> Report {
    let (p, n) = try check(scores, matches)
    let points = sweep(scores, matches, higherIsMatch: higherIsMatch)
    var auc = 0.0, prevTPR = 0.0, prevFPR = 0.0
    var eer = 1.0, eerThreshold = points.first!.threshold, bestGap = Double.infinity
    var f1 = 0.0, f1Threshold = points.first!.threshold
    for point in points {
      let tpr = Double(point.tp) / Double(p), fpr = Double(point.fp) / Double(n)
      auc += (fpr - prevFPR) * (tpr + prevTPR) / 2  // trapezoid: ties count one half
      prevTPR = tpr
      prevFPR = fpr
      let fnr = 1 - tpr
      if abs(fpr - fnr) < bestGap {
        bestGap = abs(fpr - fnr)
        eer = (fpr + fnr) / 2
        eerThreshold = point.threshold
      }
      let precision = Double(point.tp) / Double(point.tp + point.fp)
      let f = point.tp == 0 ? 0 : 2 * precision * tpr / (precision + tpr)
      if f > f1 {
        f1 = f
        f1Threshold = point.threshold
      }
    }
    let tar = [1e-2, 1e-3].map { far -> (Double, Double, Double) in
      let ok = points.last { Double($0.fp) / Double(n) <= far }
      return (far, ok.map { Double($0.tp) / Double(p) } ?? 0, ok?.threshold ?? (higherIsMatch ? .infinity : -.infinity))
    }
    return Report(
      positives: p, negatives: n, auc: auc, eer: eer, eerThreshold: eerThreshold,
      tarAtFAR: tar.map { (far: $0.0, tar: $0.1, threshold: $0.2) }, bestF1: f1, bestF1Threshold: f1Threshold)
  }

  /// Chooses a threshold on scored pairs.
  public static func calibrate(scores: [Double], matches: [Bool], higherIsMatch: Bool, target: Target = .bestF1)
    throws -> Calibration
  {
    let (p, n) = try check(scores, matches)
    let points = sweep(scores, matches, higherIsMatch: higherIsMatch)
    switch target {
    case .bestF1:
      return Calibration(threshold: try evaluate(scores: scores, matches: matches, higherIsMatch: higherIsMatch).bestF1Threshold, higherIsMatch: higherIsMatch)
    case .precision(let wanted):
      guard let point = points.last(where: { Double($0.tp) / Double($0.tp + $0.fp) >= wanted }) else {
        throw EvaluationError("no threshold reaches precision \(wanted)")
      }
      return Calibration(threshold: point.threshold, higherIsMatch: higherIsMatch)
    case .falseAcceptRate(let far):
      guard let point = points.last(where: { Double($0.fp) / Double(n) <= far }) else {
        throw EvaluationError("no threshold keeps the false accept rate at \(far)")
      }
      _ = p
      return Calibration(threshold: point.threshold, higherIsMatch: higherIsMatch)
    }
  }

  /// Precision, recall, F1 and accuracy of a calibrated rule on scored pairs.
  public static func apply(_ c: Calibration, scores: [Double], matches: [Bool]) -> (precision: Double, recall: Double, f1: Double, accuracy: Double) {
    var tp = 0, fp = 0, fn = 0, tn = 0
    for (s, m) in zip(scores, matches) {
      switch (c.matches(s), m) {
      case (true, true): tp += 1
      case (true, false): fp += 1
      case (false, true): fn += 1
      case (false, false): tn += 1
      }
    }
    let precision = tp + fp > 0 ? Double(tp) / Double(tp + fp) : 1
    let recall = tp + fn > 0 ? Double(tp) / Double(tp + fn) : 1
    let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    return (precision, recall, f1, Double(tp + tn) / Double(Swift.max(1, scores.count)))
  }

  /// Scored pairs from a labelled set: every pair `i < j` when there are at most `maxPairs`,
  /// else a seeded sample of `maxPairs`.
  public static func pairs<T: DMLScalar>(
    _ embeddings: Matrix<T>, labels: [Int], distance: Distance = .cosine, maxPairs: Int = 1_000_000, seed: UInt64 = 0
  ) throws -> (scores: [Double], matches: [Bool]) {
    guard labels.count == embeddings.rows else { throw EvaluationError("\(embeddings.rows) embeddings but \(labels.count) labels") }
    guard maxPairs >= 0 else { throw EvaluationError("maxPairs \(maxPairs) must be ≥ 0") }
    let n = labels.count
    var w = DistanceWorkspace<T>()
    var scores: [Double] = [], matches: [Bool] = []
    let total = n * (n - 1) / 2
    if total <= maxPairs {
      var s = Matrix<T>()
      distance.scores(embeddings, embeddings, sameSet: true, into: &s, workspace: &w)
      for i in 0..<n {
        for j in (i + 1)..<Swift.max(n, i + 1) {
          scores.append(Double(s[i, j]))
          matches.append(labels[i] == labels[j])
        }
      }
      return (scores, matches)
    }
    var rng = RandomSource(seed: seed)
    var a = Matrix<T>(rows: 1, columns: embeddings.columns), b = a, s = Matrix<T>()
    for _ in 0..<maxPairs {
      let i = rng.index(below: n)
      var j = rng.index(below: n - 1)
      if j >= i { j += 1 }
      for k in 0..<embeddings.columns {
        a[0, k] = embeddings[i, k]
        b[0, k] = embeddings[j, k]
      }
      distance.scores(a, b, into: &s, workspace: &w)
      scores.append(Double(s[0, 0]))
      matches.append(labels[i] == labels[j])
    }
    return (scores, matches)
  }
}
