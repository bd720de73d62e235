import DMLEvaluation
import Testing

@Suite("Verification, few-shot episodes, near-duplicates")
struct VerificationTests {
  @Test("ROC AUC, EER, TAR@FAR and best F1 on hand-checked pairs")
  func report() throws {
    // Similarities: matches 0.9, 0.8, 0.4; non-matches 0.7, 0.3, 0.2, 0.1.
    let scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1]
    let matches = [true, true, true, false, false, false, false]
    let r = try Verification.evaluate(scores: scores, matches: matches, higherIsMatch: true)
    // Pairs (match, non-match) ranked correctly: 0.9 and 0.8 beat all 4, 0.4 beats 3: 11 / 12.
    #expect(abs(r.auc - 11.0 / 12.0) < 1e-12)
    #expect(r.positives == 3 && r.negatives == 4)
    // Best F1: threshold 0.4 accepts 3 matches and 1 non-match: P 0.75, R 1, F1 6/7.
    #expect(abs(r.bestF1 - 6.0 / 7.0) < 1e-12 && r.bestF1Threshold == 0.4)
    // TAR at FAR 1e-2: no false accept allowed → threshold 0.8, 2 of 3 matches.
    #expect(abs(r.tarAtFAR[0].tar - 2.0 / 3.0) < 1e-12 && r.tarAtFAR[0].threshold == 0.8)
    #expect(r.eer > 0 && r.eer < 0.34)
    // The same pairs as distances give the same AUC.
    let d = try Verification.evaluate(scores: scores.map { 1 - $0 }, matches: matches, higherIsMatch: false)
    #expect(abs(d.auc - r.auc) < 1e-12)
  }

  @Test("ties count one half; all-equal scores give AUC 0.5")
  func ties() throws {
    let r = try Verification.evaluate(scores: [1, 1, 1, 1], matches: [true, false, true, false], higherIsMatch: true)
    #expect(r.auc == 0.5)
  }

  @Test("calibrate on one split, apply to another")
  func calibration() throws {
    var rng = RandomSource(seed: 3)
    func split() -> ([Double], [Bool]) {
      var s: [Double] = [], m: [Bool] = []
      for _ in 0..<2000 {
        let match = rng.uniform(Double.self) < 0.3
        s.append((match ? 0.8 : 0.3) + 0.1 * rng.normal(Double.self))
        m.append(match)
      }
      return (s, m)
    }
    let (cs, cm) = split(), (ts, tm) = split()
    let c = try Verification.calibrate(scores: cs, matches: cm, higherIsMatch: true)
    #expect(c.threshold > 0.45 && c.threshold < 0.65)
    let applied = Verification.apply(c, scores: ts, matches: tm)
    #expect(applied.f1 > 0.95 && applied.accuracy > 0.97)
    let strict = try Verification.calibrate(scores: cs, matches: cm, higherIsMatch: true, target: .precision(0.999))
    #expect(strict.threshold >= c.threshold)
    #expect(Verification.apply(strict, scores: cs, matches: cm).precision >= 0.999)
    #expect(throws: EvaluationError.self) { try Verification.evaluate(scores: [1, 2], matches: [true, true], higherIsMatch: true) }
    #expect(throws: EvaluationError.self) { try Verification.evaluate(scores: [1, .nan], matches: [true, false], higherIsMatch: true) }
  }

  static func clusters(classes: Int, perClass: Int, spread: Double, seed: UInt64) -> (Matrix<Double>, [Int]) {
    var rng = RandomSource(seed: seed)
    var centers = Matrix<Double>(rows: classes, columns: 8)
    centers.apply { _ in rng.normal() * 3 }
    var x = Matrix<Double>(rows: classes * perClass, columns: 8)
    var y: [Int] = []
    for i in 0..<(classes * perClass) {
      let c = i / perClass
      y.append(c)
      for k in 0..<8 { x[i, k] = centers[c, k] + spread * rng.normal() }
    }
    return (x, y)
  }

  @Test("few-shot: separable classes are perfect, noise is chance; the interval shrinks with episodes")
  func fewShot() throws {
    let (x, y) = Self.clusters(classes: 10, perClass: 30, spread: 0.1, seed: 1)
    let r = try fewShotEvaluation(x, labels: y, ways: 5, shots: 1, episodes: 50)
    #expect(r.accuracy == 1 && r.confidence95 == 0)
    let (noise, ny) = Self.clusters(classes: 10, perClass: 30, spread: 100, seed: 2)
    let chance = try fewShotEvaluation(noise, labels: ny, ways: 5, shots: 5, episodes: 400, seed: 3)
    #expect(abs(chance.accuracy - 0.2) < 0.05 && chance.confidence95 > 0 && chance.confidence95 < 0.02)
    #expect(throws: EvaluationError.self) { try fewShotEvaluation(x, labels: y, ways: 11, shots: 1, episodes: 1) }
  }

  @Test("near-duplicate groups recover planted copies, in blocks")
  func dedup() throws {
    var rng = RandomSource(seed: 5)
    var x = Matrix<Double>(rows: 300, columns: 16)
    x.apply { _ in rng.normal() }
    // Plant: rows 200..<300 are noisy copies of rows 0..<100 (pairs), and row 50 also copied at 299.
    for i in 200..<300 {
      let source = i == 299 ? 50 : i - 200
      for k in 0..<16 { x[i, k] = x[source, k] + 0.01 * rng.normal() }
    }
    let groups = try nearDuplicateGroups(x, threshold: 0.99, distance: .cosine, block: 64)
    #expect(groups.count == 99)
    #expect(groups.contains([50, 250, 299]))
    #expect(groups.allSatisfy { $0.count >= 2 })
    let byDistance = try nearDuplicateGroups(x, threshold: 0.5, distance: Distance(.euclidean, normalizesEmbeddings: false), block: 1000)
    #expect(byDistance == groups)
  }
}
