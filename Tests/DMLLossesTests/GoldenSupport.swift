import DMLLosses
import Foundation
import Testing

/// A case of the golden files (copies of shared/reference/*.json, produced by
/// pytorch-metric-learning 2.9.0 in float64; Golden/README.md explains them).
struct GoldenCase: CustomStringConvertible, @unchecked Sendable {
  let name: String
  let inputs: [String: Any]
  let outputs: [String: Any]
  var description: String { name }

  func matrix(_ key: String, _ dict: [String: Any]? = nil) -> Matrix<Double> {
    let rows = ((dict ?? inputs)[key] as! [[Any]]).map { $0.map(GoldenCase.number) }
    return Matrix(rows)
  }
  func output(_ key: String) -> Matrix<Double> { matrix(key, outputs) }
  func scalar(_ key: String) -> Double { GoldenCase.number(outputs[key]!) }
  var labels: [Int] { (inputs["labels"] as! [NSNumber]).map(\.intValue) }
  var hyper: [String: Any] { inputs["hyperparameters"] as! [String: Any] }
  func hyper(_ key: String) -> Double { GoldenCase.number(hyper[key]!) }

  static func number(_ v: Any) -> Double {
    if let s = v as? String {
      switch s {
      case "NaN": return .nan
      case "Infinity": return .infinity
      default: return -.infinity
      }
    }
    return (v as! NSNumber).doubleValue
  }

  static func load(_ file: String) -> [GoldenCase] {
    let url = Bundle.module.url(forResource: "Golden/\(file)", withExtension: "json")!
    let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    return (json["cases"] as! [[String: Any]]).map {
      GoldenCase(
        name: $0["name"] as! String, inputs: $0["inputs"] as! [String: Any],
        outputs: $0["outputs"] as! [String: Any])
    }
  }

  static let losses = load("losses")
  static let distances = load("distances")

  static func loss(_ name: String) -> GoldenCase { losses.first { $0.name == name }! }
}

/// `rtol 1e-9, atol 1e-12`, the tolerance the golden files' README suggests.
func expectClose(
  _ actual: Double, _ expected: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(
    abs(actual - expected) <= 1e-12 + 1e-9 * abs(expected), "\(what): \(actual) vs \(expected)",
    sourceLocation: sourceLocation)
}

func expectClose(
  _ actual: Matrix<Double>, _ expected: Matrix<Double>, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(actual.count == expected.count, "\(what): \(actual.count) vs \(expected.count) values", sourceLocation: sourceLocation)
  var worst = 0.0, at = -1
  for (k, (a, e)) in zip(actual.elements, expected.elements).enumerated() {
    let excess = abs(a - e) - (1e-12 + 1e-9 * abs(e))
    if excess > worst || !a.isFinite {
      worst = a.isFinite ? excess : .infinity
      at = k
    }
  }
  #expect(worst <= 0, "\(what): element \(at) off by \(worst) beyond tolerance", sourceLocation: sourceLocation)
}
