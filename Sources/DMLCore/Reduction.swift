/// How a loss's per-element terms become one number (PML's reducers).
public enum Reduction: String, Sendable, Codable, CaseIterable {
  /// The mean over all terms, zeros included (`MeanReducer`).
  case mean
  /// The mean over the terms that are strictly positive; 0 if none is (`AvgNonZeroReducer`).
  case nonZeroMean = "nonzero-mean"
  /// The sum of the terms.
  case sum
  /// The sum divided by a divisor that the loss supplies (`DivisorReducer`).
  case divisor
  /// The mean of the terms strictly between `low` and `high` (`ThresholdReducer`); 0 if none is.
  /// The loss's `low` and `high` hyperparameters set the window.
  case threshold
  /// Each anchor's terms averaged, then the mean over the batch's rows, anchors without a term
  /// counting 0 (`PerAnchorReducer` with its default mean): for pair losses (each sub-loss apart)
  /// and losses of one term per row, where it is the mean.
  case perAnchor = "per-anchor"
  /// The mean of the terms, each weighted by its anchor's class weight (`ClassWeightedReducer`):
  /// the loss's `class_weights` give one weight per class (a label beyond them weighs 1).
  case classWeighted = "class-weighted"
}

/// Running statistics of one named term over a pass: everything a reduction needs.
public struct TermAccumulator<Scalar: DMLScalar>: Sendable {
  /// The sum of the terms.
  public var sum: Scalar = 0
  /// How many terms there were.
  public var count = 0
  /// How many were strictly positive.
  public var nonZero = 0
  /// The window of `Reduction.threshold`: terms strictly between `low` and `high` count.
  public var low: Scalar = -.infinity, high: Scalar = .infinity
  /// The sum of the terms within the window.
  public var windowSum: Scalar = 0
  /// How many terms were within the window.
  public var windowCount = 0

  /// No term yet.
  public init() {}

  /// No term yet; `Reduction.threshold` keeps the terms strictly between `low` and `high`.
  public init(low: Scalar, high: Scalar) {
    self.low = low
    self.high = high
  }

  /// Adds one term.
  @inlinable
  public mutating func add(_ value: Scalar) {
    // Selects, not branches: terms are added in loops over pairs where whether a term is
    // positive is as good as random, and a mispredicted branch costs more than the term.
    sum += value
    count += 1
    nonZero += value > 0 ? 1 : 0
    let inside = value > low && value < high
    windowSum += inside ? value : 0
    windowCount += inside ? 1 : 0
  }
}

extension Reduction {
  /// The reduced value of the accumulated terms. `divisor` is used by `.divisor` only.
  @inlinable
  public func value<T: DMLScalar>(_ a: TermAccumulator<T>, divisor: T = 1) -> T {
    switch self {
    case .mean: return a.count > 0 ? a.sum / T(a.count) : 0
    case .nonZeroMean: return a.nonZero > 0 ? a.sum / T(a.nonZero) : 0
    case .sum: return a.sum
    case .divisor: return divisor > 0 ? a.sum / divisor : 0
    case .threshold: return a.windowCount > 0 ? a.windowSum / T(a.windowCount) : 0
    // One term per row: each anchor's mean is its term (pair losses reduce per anchor themselves).
    case .perAnchor: return a.count > 0 ? a.sum / T(a.count) : 0
    // Losses that weigh by class accumulate the weighted terms: their mean.
    case .classWeighted: return a.count > 0 ? a.sum / T(a.count) : 0
    }
  }

  /// `∂(reduced value)/∂(term)` for a term of value `term`.
  @inlinable
  public func weight<T: DMLScalar>(of term: T, _ a: TermAccumulator<T>, divisor: T = 1) -> T {
    switch self {
    case .mean: return a.count > 0 ? 1 / T(a.count) : 0
    case .nonZeroMean: return term > 0 && a.nonZero > 0 ? 1 / T(a.nonZero) : 0
    case .sum: return 1
    case .divisor: return divisor > 0 ? 1 / divisor : 0
    case .threshold: return term > a.low && term < a.high && a.windowCount > 0 ? 1 / T(a.windowCount) : 0
    case .perAnchor: return a.count > 0 ? 1 / T(a.count) : 0
    case .classWeighted: return a.count > 0 ? 1 / T(a.count) : 0
    }
  }
}

/// One named part of a loss after reduction, for example PML's `pos_loss`.
public struct LossTerm<Scalar: DMLScalar>: Sendable, CustomStringConvertible {
  /// The term's name (`"pos_loss"`, `"neg_loss"`, `"triplet"`, `"element"`).
  public let name: StaticString
  /// Its value after its reduction.
  public var value: Scalar
  /// How many unreduced terms there were (pairs, triplets, rows or proxies).
  public var count: Int
  /// How many of them were strictly positive.
  public var nonZero: Int

  /// A term named `name`: its reduced `value`, its `count` unreduced terms and how many of them,
  /// `nonZero`, were strictly positive.
  public init(name: StaticString, value: Scalar, count: Int, nonZero: Int) {
    self.name = name
    self.value = value
    self.count = count
    self.nonZero = nonZero
  }

  /// `name=value (nonZero/count > 0)`, for logs.
  public var description: String { "\(name)=\(value) (\(nonZero)/\(count) > 0)" }
}

/// A loss's value: the total and up to two named terms, held inline so that no step allocates.
public struct LossValue<Scalar: DMLScalar>: Sendable, CustomStringConvertible {
  /// The loss, the sum of its terms.
  public var total: Scalar
  /// The first term.
  public var first: LossTerm<Scalar>
  /// The second term, for losses that have two (positive and negative parts).
  public var second: LossTerm<Scalar>?

  /// A value of one or two terms; `total` is the sum of their values.
  public init(_ first: LossTerm<Scalar>, _ second: LossTerm<Scalar>? = nil) {
    self.first = first
    self.second = second
    total = first.value + (second?.value ?? 0)
  }

  /// A zero loss with no term counted.
  public static var zero: LossValue { LossValue(LossTerm(name: "loss", value: 0, count: 0, nonZero: 0)) }

  /// The terms as a list.
  public var terms: [LossTerm<Scalar>] { [first] + (second.map { [$0] } ?? []) }

  /// The term with this name, if any.
  public func term(_ name: String) -> LossTerm<Scalar>? {
    terms.first { "\($0.name)" == name }
  }

  /// This value scaled by `weight` (for weighted sums of losses).
  public func scaled(by weight: Scalar) -> LossValue {
    var v = self
    v.total *= weight
    v.first.value *= weight
    v.second?.value *= weight
    return v
  }

  /// The total, then the terms in brackets: `total [name=value (nonZero/count > 0), ...]`.
  public var description: String {
    "\(total) [" + terms.map(\.description).joined(separator: ", ") + "]"
  }
}
