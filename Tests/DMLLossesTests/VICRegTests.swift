import DMLLosses
import Foundation
import Testing

/// VICRegLoss against PML 2.9.0 (Golden/vicreg.json, from Benchmarks/Scripts/golden_vicreg.py) and
/// finite differences.
@Suite("VICReg: two views paired by label")
struct VICRegTests {
  static let cases = GoldenCase.load("vicreg")

  /// The two views as one batch, `[Z; Z′]`, labelled `0..<N` twice (what `--batch views` gives,
  /// up to the order of the rows).
  static func batch(_ c: GoldenCase) -> (Matrix<Double>, [Int]) {
    let z = c.matrix("embeddings"), z2 = c.matrix("ref_emb")
    let n = z.rows
    var x = Matrix<Double>(rows: 2 * n, columns: z.columns)
    for i in 0..<n {
      for k in 0..<z.columns {
        x[i, k] = z[i, k]
        x[n + i, k] = z2[i, k]
      }
    }
    return (x, Array(0..<n) + Array(0..<n))
  }

  static func loss(_ c: GoldenCase) -> VICRegLoss<Double> {
    VICRegLoss(
      invarianceWeight: c.hyper("invariance_lambda"), varianceWeight: c.hyper("variance_mu"), covarianceWeight: c.hyper("covariance_v"),
      epsilon: c.hyper("eps"))
  }

  @Test("value, the invariance term, the variance and covariance terms, and both views' gradients to rtol 1e-9", arguments: cases)
  func golden(_ c: GoldenCase) {
    let (x, labels) = Self.batch(c)
    var loss = Self.loss(c)
    let v = loss.evaluate(x, labels: labels, tuples: nil)
    #expect(loss.failure == nil)
    expectClose(v.total, c.scalar("loss"), "\(c.name) loss")
    let sub = c.outputs["sub_losses"] as! [String: Any]
    expectClose(v.term("invariance_loss")!.value, GoldenCase.number(sub["invariance_loss"]!), "\(c.name) invariance")
    let rest = ["variance_loss1", "variance_loss2", "covariance_loss"].reduce(0.0) { $0 + GoldenCase.number(sub[$1]!) }
    expectClose(v.term("variance_covariance_loss")!.value, rest, "\(c.name) variance and covariance")
    let n = x.rows / 2
    let g = loss.embeddingGradient
    expectClose(g.rows(Array(0..<n)), c.output("grad_embeddings"), "\(c.name) gradient of Z")
    expectClose(g.rows(Array(n..<(2 * n))), c.output("grad_ref_emb"), "\(c.name) gradient of Z′")
  }

  @Test("the gradient is the value's, by central differences, with the rows in any order")
  func finiteDifferences() {
    var rng = RandomSource(seed: 21)
    var x = Matrix<Double>(rows: 10, columns: 4)
    x.apply { _ in 0.4 * rng.normal() }
    let labels = [3, 0, 1, 3, 2, 4, 0, 1, 4, 2]
    var loss = VICRegLoss<Double>(covarianceWeight: 3)
    _ = loss.evaluate(x, labels: labels, tuples: nil)
    let analytic = loss.embeddingGradient
    var worst = 0.0, largest = 0.0
    for i in 0..<x.rows {
      for k in 0..<x.columns {
        var plus = x, minus = x
        plus[i, k] += 1e-6
        minus[i, k] -= 1e-6
        var l = loss
        let numeric = (l.evaluate(plus, labels: labels, tuples: nil).total - l.evaluate(minus, labels: labels, tuples: nil).total) / 2e-6
        worst = max(worst, abs(numeric - analytic[i, k]))
        largest = max(largest, abs(numeric))
      }
    }
    #expect(worst <= 1e-6 * max(1, largest), "worst difference \(worst)")
    #expect(largest > 0.1)
  }

  @Test("labels that do not pair the rows stop the step with the label at fault")
  func unpaired() {
    var x = Matrix<Double>(rows: 5, columns: 3)
    var rng = RandomSource(seed: 2)
    x.apply { _ in rng.normal() }
    var loss = VICRegLoss<Double>()
    #expect(loss.evaluate(x, labels: [0, 0, 1, 1, 1], tuples: nil).total == 0)
    #expect(loss.failure?.contains("label 1 has more than two rows") == true, "\(loss.failure ?? "")")
    _ = loss.evaluate(x, labels: [0, 0, 1, 1, 2], tuples: nil)
    #expect(loss.failure?.contains("label 2 has one row") == true, "\(loss.failure ?? "")")
    _ = loss.evaluate(x.rows([0, 1]), labels: [7, 7], tuples: nil)
    #expect(loss.failure?.contains("at least two pairs") == true, "\(loss.failure ?? "")")
    _ = loss.evaluate(x.rows([0, 1, 2, 3]), labels: [7, 8, 7, 8], tuples: nil)
    #expect(loss.failure == nil)
  }
}
