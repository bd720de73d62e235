// dml-new-loss PACKAGE_DIRECTORY NAME: scaffolds a loss module for swift-metric-learning.
//
// Writes Sources/NAMELoss/NAMELoss.swift (a working pair loss to rewrite: its formula, its
// derivative with respect to each score, its hyperparameters), Tests/NAMELossTests (the
// conformance suite and a registry check), and adds the module's name to Package.swift's
// `lossModules`: one line, from which its targets and its entry in `LossRegistry.standard` (by the
// LossRegistrations build-tool plugin) follow. Every check runs before anything is written, so a
// refused request leaves the package as it was.
import Foundation

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("error: new-loss: \(message)\n".utf8))
  exit(1)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 2 else { fail("usage: swift package --allow-writing-to-package-directory new-loss NAME (for example Foo or AngularMargin)") }
let root = arguments[0], name = arguments[1]
guard let first = name.unicodeScalars.first, CharacterSet.uppercaseLetters.contains(first),
  name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII })
else { fail("'\(name)' must be an UpperCamelCase Swift name of ASCII letters and digits, such as Foo or AngularMargin") }
let module = name.hasSuffix("Loss") ? name : name + "Loss"
// The command-line name: AngularMargin → angular-margin.
var registryName = ""
for (i, c) in module.dropLast(4).enumerated() {
  if c.isUppercase && i > 0 { registryName += "-" }
  registryName += c.lowercased()
}
let fm = FileManager.default
let sourceDir = "\(root)/Sources/\(module)", testDir = "\(root)/Tests/\(module)Tests"
let manifestPath = "\(root)/Package.swift"
guard !fm.fileExists(atPath: sourceDir), !fm.fileExists(atPath: testDir) else { fail("\(sourceDir) or \(testDir) already exists") }
guard var manifest = try? String(contentsOfFile: manifestPath, encoding: .utf8)
else { fail("cannot read \(manifestPath): run this in swift-metric-learning's package directory") }

// The manifest: the module's name in `lossModules`, one line. Everything else follows from it.
guard let markerRange = manifest.range(of: "  // `swift package new-loss NAME` adds a loss module's name above this line")
else {
  fail(
    "\(manifestPath) has no `lossModules` list with the new-loss marker: new-loss scaffolds a loss module inside "
      + "swift-metric-learning's own package only. In another package, write the loss as one file of your own target "
      + "(a RegisteredLoss) and test it with DMLTesting's LossConformance, as Examples/ResearchRecipe does.")
}
guard !manifest.contains("\"\(module)\"") else { fail("\(manifestPath) already names a module \(module)") }
manifest.insert(contentsOf: "  \"\(module)\",\n", at: markerRange.lowerBound)

let source = """
  @_exported import DMLCore

  /// \(module): a squared-hinge pair loss, the starting point to rewrite into your own.
  ///
  /// For each pair `(i, j)` of a row's anchor with a column, in the distance's closeness `c`
  /// (`c = s` for a similarity, `c = −s` for a distance):
  /// ```
  /// positive pair: [m_pos − c]₊²      negative pair: [c − m_neg]₊²
  /// loss = mean over every pair used
  /// ```
  /// where `m_pos` and `m_neg` are in the distance's own units (`pos_margin`, `neg_margin`).
  ///
  /// - Default distance: Euclidean between L2-normalised rows. Reduction: the mean over pairs.
  /// - Terms: `pos_loss`, `neg_loss`, one per positive and negative pair.
  /// - Reads `n × m` score matrices: columns `j < n` are the rows themselves, the rest a
  ///   cross-batch memory (`labels` has one label per column).
  ///
  /// To make it yours: change the two terms in `compute` and their derivatives (`∂/∂s`), the
  /// hyperparameters and the summary; `swift test --filter \(module)Tests` then checks the
  /// gradient against finite differences in Double, and more.
  ///
  /// It holds no learned state (`ParameterFree`). A loss with proxies or class weights drops
  /// `ParameterFree` and visits them in `visitParameters`, as `ProxyAnchorLoss` does.
  public struct \(module)<Scalar: DMLScalar>: RegisteredLoss, ParameterFree {
    public var positiveMargin: Scalar
    public var negativeMargin: Scalar
    public var distance: Distance
    var mask = PairMask()

    public init(positiveMargin: Scalar = 0, negativeMargin: Scalar = 1, distance: Distance = .euclidean) {
      self.positiveMargin = positiveMargin
      self.negativeMargin = negativeMargin
      self.distance = distance
    }

    public static var registryName: String { "\(registryName)" }
    public static var summary: String { "Squared-hinge pair loss (scaffolded by new-loss)" }
    public static var usesTuples: Bool { true }
    public static var supportsCrossBatchMemory: Bool { true }
    public static var hyperparameters: [HyperparameterSpec] {
      [
        HyperparameterSpec("pos_margin", .real, default: "0", "positives closer than this add nothing"),
        HyperparameterSpec("neg_margin", .real, default: "1", "negatives farther than this add nothing"),
        .distance(default: "euclidean"),
      ]
    }

    public init(_ v: HyperparameterValues, context: LossContext) throws {
      self.init(
        positiveMargin: Scalar(try v.real("pos_margin")), negativeMargin: Scalar(try v.real("neg_margin")),
        distance: try v.distance())
    }

    public mutating func compute(
      scores: Matrix<Scalar>, labels: [Int], tuples: Tuples?, scoreGradient: inout Matrix<Scalar>
    ) -> LossValue<Scalar> {
      let n = scores.rows, columns = scores.columns
      mask.build(rows: n, labels: labels, tuples: tuples)
      scoreGradient.resize(rows: n, columns: columns, zeroed: true)
      let sign = Scalar(distance.closeness)  // +1 similarity, −1 distance
      // In closeness c = sign·s: a positive's violation is m − c, a negative's c − m.
      let (mPos, mNeg) = (sign * positiveMargin, sign * negativeMargin)
      var pos = TermAccumulator<Scalar>(), neg = TermAccumulator<Scalar>()
      for i in 0..<n {
        for j in 0..<columns {
          let kind = mask.values[i * columns + j]
          if kind == PairMask.positive {
            pos.add(Swift.max(0, mPos - sign * scores[i, j]).squared)
          } else if kind == PairMask.negative {
            neg.add(Swift.max(0, sign * scores[i, j] - mNeg).squared)
          }
        }
      }
      let count = pos.count + neg.count
      guard count > 0 else {
        return LossValue(LossTerm(name: "pos_loss", value: 0, count: 0, nonZero: 0), LossTerm(name: "neg_loss", value: 0, count: 0, nonZero: 0))
      }
      let inverse = 1 / Scalar(count)
      // ∂/∂s of [m − c]₊² is −2 [m − c]₊ · sign; of [c − m]₊², 2 [c − m]₊ · sign.
      for i in 0..<n {
        for j in 0..<columns {
          let kind = mask.values[i * columns + j]
          if kind == PairMask.positive {
            scoreGradient[i, j] = -2 * Swift.max(0, mPos - sign * scores[i, j]) * sign * inverse
          } else if kind == PairMask.negative {
            scoreGradient[i, j] = 2 * Swift.max(0, sign * scores[i, j] - mNeg) * sign * inverse
          }
        }
      }
      return LossValue(
        LossTerm(name: "pos_loss", value: pos.sum * inverse, count: pos.count, nonZero: pos.nonZero),
        LossTerm(name: "neg_loss", value: neg.sum * inverse, count: neg.count, nonZero: neg.nonZero))
    }
  }

  extension DMLScalar {
    fileprivate var squared: Self { self * self }
  }

  /// The losses this module registers at startup. The LossRegistrations build-tool plugin finds
  /// this type and lists it in `LossRegistry.standard`.
  public enum \(module)Registration {
    public static var registrations: [LossFactory] { [LossFactory(\(module)<Float>.self)] }
  }

  """

let test = """
  import DMLLosses
  import DMLTesting
  import Testing
  import \(module)

  @Suite("\(module)")
  struct \(module)Tests {
    @Test("passes the conformance suite")
    func conformance() {
      let failures = LossConformance.failures(\(module)<Double>(), \(module)<Float>(), usesTuples: true)
      #expect(failures.isEmpty, "\\(failures)")
    }

    @Test("is registered as '\(registryName)'")
    func registered() throws {
      #expect(LossRegistry.standard.names.contains("\(registryName)"))
    }
  }

  """

do {
  try fm.createDirectory(atPath: sourceDir, withIntermediateDirectories: true)
  try fm.createDirectory(atPath: testDir, withIntermediateDirectories: true)
  try source.write(toFile: "\(sourceDir)/\(module).swift", atomically: true, encoding: .utf8)
  try test.write(toFile: "\(testDir)/\(module)Tests.swift", atomically: true, encoding: .utf8)
  try manifest.write(toFile: manifestPath, atomically: true, encoding: .utf8)
} catch {
  fail("writing the scaffold failed: \(error)")
}
print("""
  new-loss: wrote Sources/\(module)/\(module).swift and Tests/\(module)Tests/\(module)Tests.swift,
  and added "\(module)" to Package.swift's `lossModules` (its only registration: the LossRegistrations
  plugin lists it in LossRegistry.standard as '\(registryName)' at the next build).
  Left for you:
    - rewrite the terms and their derivatives in \(module).compute (the doc comment gives the formula);
    - run `swift test --filter \(module)Tests` (the conformance suite checks the gradient);
    - train with it: swift run dml train --loss \(registryName) --miner multi-similarity
  """)
