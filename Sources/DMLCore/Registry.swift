import Foundation

/// A hyperparameter a component declares: its name, type, default and one line of help. A front
/// end builds the component from text such as `triplet:margin=0.2,swap=true` with these alone.
public struct HyperparameterSpec: Sendable, Equatable {
  /// The value's type.
  public enum Kind: Sendable, Equatable {
    /// A finite real number.
    case real
    /// An integer.
    case integer
    /// A boolean: `true`, `false`, `1`, `0`, `yes` or `no`.
    case boolean
    /// One of the listed strings.
    case choice([String])
    /// Any text without `,` or `=` (a file path, for example); empty when not given.
    case text
    /// A distance by name (`Distance(parsing:)`): `euclidean`, `squared-euclidean`, `cosine`,
    /// `dot`, `snr`, or an Lp distance `l<p>` or `l<p>^<power>`.
    case distance
  }

  /// The key in `name:key=value` text, for example `"margin"`.
  public let name: String
  /// The value's type, which validation checks.
  public let kind: Kind
  /// The value used when none is given, as text.
  public let defaultValue: String
  /// One line of help, for listings.
  public let help: String
  /// The valid values of a real or integer hyperparameter (`nil`: any finite value). A value
  /// outside it is refused by name.
  public let range: ValueRange?

  /// A hyperparameter `name` of type `kind`, with its default value as text, one line of help and,
  /// for numbers, the range of valid values.
  public init(_ name: String, _ kind: Kind, default defaultValue: String, _ help: String, range: ValueRange? = nil) {
    self.name = name
    self.kind = kind
    self.defaultValue = defaultValue
    self.help = help
    self.range = range
  }

  /// The same declaration with the valid range `range`.
  public func within(_ range: ValueRange) -> HyperparameterSpec {
    HyperparameterSpec(name, kind, default: defaultValue, help, range: range)
  }

  /// The distance to use, defaulting to the paper's (and PML's).
  public static func distance(default d: String) -> HyperparameterSpec {
    HyperparameterSpec(
      "distance", .distance, default: d,
      "score between embeddings and references: euclidean, squared-euclidean, cosine, dot, snr, l<p>[^<power>] (l1: Manhattan), poincare[/<c>[/<clip>]] (hyperbolic); all but dot and poincare normalise rows")
  }

  /// How the loss's terms are reduced, from `choices` (every reduction by default).
  public static func reduction(default r: Reduction, choices: [Reduction] = Reduction.allCases) -> HyperparameterSpec {
    HyperparameterSpec(
      "reduction", .choice(choices.map(\.rawValue)), default: r.rawValue,
      "how terms become one number (threshold: the mean of the terms between low and high)")
  }

  /// The window of `reduction=threshold` (PML's `ThresholdReducer(low, high)`): terms strictly
  /// between `low` and `high` count; and the weights of `reduction=class-weighted`.
  public static var thresholds: [HyperparameterSpec] {
    [
      HyperparameterSpec("low", .real, default: "0", "reduction=threshold keeps terms above this"),
      HyperparameterSpec("high", .real, default: "1e300", "reduction=threshold keeps terms below this"),
      HyperparameterSpec("class_weights", .text, default: "", "reduction=class-weighted: one weight per class, w0/w1/…"),
    ]
  }

  /// The number of classes (for losses with one learned vector per class).
  public static let classes = HyperparameterSpec(
    "classes", .integer, default: "0", "number of training classes (0: taken from the data)", range: .atLeast(0))
}

/// The valid values of a numeric hyperparameter: an interval whose ends may be open, closed or
/// absent, written as in `dml list` (`≥ 0`, `> 0`, `in [0, 1)`).
public struct ValueRange: Sendable, Equatable, CustomStringConvertible {
  /// The lower end and whether it is included (`nil`: unbounded below).
  public var lower: (value: Double, included: Bool)?
  /// The upper end and whether it is included (`nil`: unbounded above).
  public var upper: (value: Double, included: Bool)?

  /// An interval with the given ends.
  public init(lower: (value: Double, included: Bool)?, upper: (value: Double, included: Bool)?) {
    self.lower = lower
    self.upper = upper
  }

  /// `x ≥ a`.
  public static func atLeast(_ a: Double) -> ValueRange { ValueRange(lower: (a, true), upper: nil) }
  /// `x > a`.
  public static func above(_ a: Double) -> ValueRange { ValueRange(lower: (a, false), upper: nil) }
  /// `a ≤ x ≤ b`.
  public static func closed(_ a: Double, _ b: Double) -> ValueRange { ValueRange(lower: (a, true), upper: (b, true)) }
  /// `a ≤ x < b`.
  public static func halfOpen(_ a: Double, _ b: Double) -> ValueRange { ValueRange(lower: (a, true), upper: (b, false)) }
  /// `a < x ≤ b`.
  public static func leftOpen(_ a: Double, _ b: Double) -> ValueRange { ValueRange(lower: (a, false), upper: (b, true)) }
  /// `x > 0`.
  public static let positive = above(0)
  /// `x ≥ 0`.
  public static let nonNegative = atLeast(0)

  /// Whether `x` lies in the interval.
  public func contains(_ x: Double) -> Bool {
    if let l = lower, l.included ? x < l.value : x <= l.value { return false }
    if let u = upper, u.included ? x > u.value : x >= u.value { return false }
    return true
  }

  /// `≥ 0`, `> 0`, `≤ 1`, or `in [0, 1)`.
  public var description: String {
    func f(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
    switch (lower, upper) {
    case (nil, nil): return "any number"
    case (let l?, nil): return (l.included ? "≥ " : "> ") + f(l.value)
    case (nil, let u?): return (u.included ? "≤ " : "< ") + f(u.value)
    case (let l?, let u?): return "in \(l.included ? "[" : "(")\(f(l.value)), \(f(u.value))\(u.included ? "]" : ")")"
    }
  }

  /// Whether two ranges have the same ends, each included or not alike.
  public static func == (a: ValueRange, b: ValueRange) -> Bool {
    a.lower?.value == b.lower?.value && a.lower?.included == b.lower?.included && a.upper?.value == b.upper?.value
      && a.upper?.included == b.upper?.included
  }
}

/// An error in a component specification, naming the value at fault.
public struct SpecificationError: Error, CustomStringConvertible, Equatable {
  /// The message, naming the value at fault.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// Values for a component's hyperparameters, parsed from `name:key=value,key=value`.
public struct HyperparameterValues: Sendable, Equatable {
  /// The component's name.
  public let component: String
  /// The values given, by hyperparameter name.
  public private(set) var given: [String: String]
  /// The declarations, once checked against them.
  public private(set) var specs: [HyperparameterSpec] = []

  /// Parses `name` or `name:key=value,key=value`.
  public init(parsing text: String) throws {
    let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    let name = String(parts[0]).trimmed
    guard !name.isEmpty else { throw SpecificationError("empty component name in '\(text)'") }
    component = name
    given = [:]
    if parts.count == 2 {
      for item in parts[1].split(separator: ",", omittingEmptySubsequences: true) {
        let kv = item.split(separator: "=", maxSplits: 1)
        guard kv.count == 2, !kv[0].trimmed.isEmpty else {
          throw SpecificationError("'\(item)' in '\(text)' is not key=value")
        }
        let key = String(kv[0]).trimmed
        guard given[key] == nil else { throw SpecificationError("'\(key)' given twice in '\(text)'") }
        given[key] = String(kv[1]).trimmed
      }
    }
  }

  /// Values for `component` given directly.
  public init(component: String, _ given: [String: String] = [:]) {
    self.component = component
    self.given = given
  }

  /// Checks every given key against `specs` (plus the reserved `extraKeys`) and every value
  /// against its type.
  public mutating func validate(against specs: [HyperparameterSpec], extraKeys: Set<String> = [])
    throws
  {
    self.specs = specs
    let known = Set(specs.map(\.name)).union(extraKeys)
    for key in given.keys.sorted() where !known.contains(key) {
      throw SpecificationError(
        "\(component): unknown hyperparameter '\(key)'; known: "
          + known.sorted().joined(separator: ", "))
    }
    for spec in specs { _ = try raw(spec.name) }
  }

  func raw(_ name: String) throws -> String {
    guard let spec = specs.first(where: { $0.name == name }) else {
      if let v = given[name] { return v }
      throw SpecificationError("\(component): no hyperparameter '\(name)' declared")
    }
    let text = given[name] ?? spec.defaultValue
    switch spec.kind {
    case .real:
      guard let v = Double(text), v.isFinite else {
        throw SpecificationError("\(component): \(name)=\(text) is not a finite number")
      }
      if let range = spec.range, !range.contains(v) { throw SpecificationError("\(component): \(name)=\(text) must be \(range)") }
    case .integer:
      guard let v = Int(text) else { throw SpecificationError("\(component): \(name)=\(text) is not an integer") }
      if let range = spec.range, !range.contains(Double(v)) { throw SpecificationError("\(component): \(name)=\(text) must be \(range)") }
    case .boolean:
      guard ["true", "false", "1", "0", "yes", "no"].contains(text.lowercased()) else {
        throw SpecificationError("\(component): \(name)=\(text) is not true or false")
      }
    case .choice(let options):
      guard options.contains(text) else {
        throw SpecificationError(
          "\(component): \(name)=\(text) is not one of " + options.joined(separator: ", "))
      }
    case .text:
      break
    case .distance:
      guard Distance(parsing: text) != nil else {
        throw SpecificationError(
          "\(component): \(name)=\(text) is not one of euclidean, squared-euclidean, cosine, dot, snr, l<p>[^<power>] with p ≥ 1 and power > 0, or poincare[/<c>[/<clip>]] with c > 0 and clip ≥ 0")
      }
    }
    return text
  }

  /// These values with `name` given as `value`.
  public func setting(_ name: String, _ value: String) throws -> HyperparameterValues {
    var copy = self
    copy.given[name] = value
    return copy
  }

  /// A real value.
  public func real(_ name: String) throws -> Double { Double(try raw(name))! }
  /// An integer value.
  public func integer(_ name: String) throws -> Int { Int(try raw(name))! }
  /// A boolean value.
  public func boolean(_ name: String) throws -> Bool {
    ["true", "1", "yes"].contains(try raw(name).lowercased())
  }
  /// A string value (choices and text).
  public func string(_ name: String) throws -> String { try raw(name) }

  /// A real value that must satisfy `condition`, described by `requirement` in the error.
  public func real(_ name: String, _ requirement: String, _ condition: (Double) -> Bool) throws
    -> Double
  {
    let v = try real(name)
    guard condition(v) else { throw SpecificationError("\(component): \(name)=\(v) must be \(requirement)") }
    return v
  }

  /// An integer value that must satisfy `condition`, described by `requirement` in the error
  /// (for a rule that a declared range cannot state, such as "odd").
  public func integer(_ name: String, _ requirement: String, _ condition: (Int) -> Bool) throws -> Int {
    let v = try integer(name)
    guard condition(v) else { throw SpecificationError("\(component): \(name)=\(v) must be \(requirement)") }
    return v
  }

  /// The `classes` hyperparameter (`HyperparameterSpec.classes`) resolved against the data: 0
  /// means the context's number of classes; a number below it is refused, since every training
  /// label needs its learned vector (a smaller count would index past the last one).
  public func learnedClasses(_ context: LossContext) throws -> Int {
    let classes = try integer("classes")
    guard classes == 0 || classes >= context.classes else {
      throw SpecificationError(
        "\(component): classes=\(classes) is fewer than the \(context.classes) classes of the training data (0: as many as the data has)")
    }
    guard context.classes > 0 || classes > 0 else {
      throw SpecificationError("\(component): no training classes to make learned vectors for")
    }
    let resolved = classes > 0 ? classes : context.classes
    // One vector per class, with its gradient and two Adam moments (16 bytes a scalar): a count
    // that large would end the process in the allocation instead of failing.
    let bytes = Double(resolved) * Double(max(context.embeddingDimension, 1)) * 16
    let limit = Double(ProcessInfo.processInfo.physicalMemory) / 2
    guard bytes <= limit else {
      throw SpecificationError(
        "\(component): classes=\(classes) of \(context.embeddingDimension)-dimensional vectors would need "
          + String(format: "%.1f GiB for training, over half of this machine's %.1f GiB", bytes / 1_073_741_824, 2 * limit / 1_073_741_824))
    }
    return resolved
  }

  /// The `distance` hyperparameter as a `Distance`.
  public func distance() throws -> Distance {
    let text = try string("distance")
    guard let distance = Distance(parsing: text) else { throw SpecificationError("\(component): distance=\(text) is not a distance") }
    return distance
  }

  /// The `reduction` hyperparameter.
  public func reduction() throws -> Reduction { Reduction(rawValue: try string("reduction"))! }

  /// The `class_weights` of `reduction=class-weighted`, one finite weight ≥ 0 per class (at least
  /// `classes`); empty for the other reductions.
  public func classWeights(classes: Int) throws -> [Double] {
    guard try reduction() == .classWeighted else { return [] }
    let text = try string("class_weights")
    let weights = text.split(separator: "/", omittingEmptySubsequences: false).map { Double($0) }
    guard !text.isEmpty, weights.allSatisfy({ $0 != nil && $0!.isFinite && $0! >= 0 }) else {
      throw SpecificationError("\(component): class_weights=\(text) is not a list of weights ≥ 0 separated by /, one per class")
    }
    guard weights.count >= classes else {
      throw SpecificationError("\(component): class_weights=\(text) gives \(weights.count) weights for \(classes) classes")
    }
    return weights.map { $0! }
  }
}

extension StringProtocol {
  fileprivate var trimmed: String {
    var s = Substring(self)
    while s.first?.isWhitespace == true { s.removeFirst() }
    while s.last?.isWhitespace == true { s.removeLast() }
    return String(s)
  }
}

/// What a loss is built from besides its hyperparameters: facts about the data.
public struct LossContext: Sendable, Equatable {
  /// The number of training classes (labels are `0..<classes`).
  public var classes: Int
  /// The embedding dimension.
  public var embeddingDimension: Int
  /// The seed for learned references.
  public var seed: UInt64
  /// The training samples of each class, `classes` counts (empty when unknown): the dynamic
  /// ArcFace's margins depend on them.
  public var classCounts: [Int]

  /// A context for `classes` classes and `embeddingDimension`-dimensional embeddings; `seed` (0 by
  /// default) seeds the learned references; `classCounts` gives each class's training samples.
  public init(classes: Int, embeddingDimension: Int, seed: UInt64 = 0, classCounts: [Int] = []) {
    self.classes = classes
    self.embeddingDimension = embeddingDimension
    self.seed = seed
    self.classCounts = classCounts
  }
}

/// A loss that a registry can build from text: a name, a summary, declared hyperparameters, and an
/// initialiser from their values.
public protocol RegisteredLoss: PairwiseLoss {
  /// The name on the command line (`"triplet"`).
  static var registryName: String { get }
  /// One line for listings.
  static var summary: String { get }
  /// The declared hyperparameters, with PML's defaults.
  static var hyperparameters: [HyperparameterSpec] { get }
  /// Builds the loss from validated values.
  init(_ values: HyperparameterValues, context: LossContext) throws
  /// Whether the loss reads tuples from a sampler (pair and triplet losses), or ignores them
  /// (proxy, classification and center losses).
  static var usesTuples: Bool { get }
}

/// A registry entry: how to build one loss, in `Float`, from text.
public struct LossFactory: Sendable {
  /// The loss's registry name (`RegisteredLoss.registryName`).
  public let name: String
  /// One line for listings.
  public let summary: String
  /// The declared hyperparameters, against which given values are validated.
  public let hyperparameters: [HyperparameterSpec]
  /// Whether the loss reads tuples from a sampler.
  public let usesTuples: Bool
  /// Whether the loss accepts a cross-batch memory (`PairwiseLoss.supportsCrossBatchMemory`).
  public let acceptsMemory: Bool
  /// Whether the loss can compare two views of each sample (`self_supervised=`): a loss over pairs
  /// of embeddings (no learned references), wrapped in `SelfSupervisedLoss`.
  public var supportsSelfSupervised: Bool { buildSelfSupervised != nil }
  @usableFromInline var buildSelfSupervised: (@Sendable (HyperparameterValues, LossContext, Bool) throws -> AnyEmbeddingLoss<Float>)?
  /// Whether the loss, with its default hyperparameters, may be evaluated block of anchors by block
  /// (`anchor_block=`): it compares embeddings with embeddings on rectangular score matrices and
  /// its terms add up over anchors. Other values (a reduction, `swap`) are checked when it is built.
  public var supportsAnchorBlocks: Bool { buildAnchorBlocked != nil && splitsByDefault }
  @usableFromInline var splitsByDefault = false
  @usableFromInline var buildAnchorBlocked: (@Sendable (HyperparameterValues, LossContext, Int) throws -> AnyEmbeddingLoss<Float>)?

  /// An entry built by `build`, for losses whose type is known only at run time (a plugin's);
  /// see the properties for the other arguments.
  public init(name: String, summary: String, hyperparameters: [HyperparameterSpec], usesTuples: Bool, acceptsMemory: Bool,
       build: @escaping @Sendable (HyperparameterValues, LossContext) throws -> AnyEmbeddingLoss<Float>) {
    self.name = name
    self.summary = summary
    self.hyperparameters = hyperparameters
    self.usesTuples = usesTuples
    self.acceptsMemory = acceptsMemory
    self.build = build
  }
  @usableFromInline let build: @Sendable (HyperparameterValues, LossContext) throws -> AnyEmbeddingLoss<Float>

  /// The entry for `L`. Called with a concrete `L` (as each loss module does), the loss's work is
  /// specialised there.
  @inlinable
  public init<L: RegisteredLoss & SendableMetatype>(_: L.Type) where L.Scalar == Float {
    self.init(
      name: L.registryName, summary: L.summary, hyperparameters: L.hyperparameters, usesTuples: L.usesTuples,
      acceptsMemory: L.supportsCrossBatchMemory, build: { try Self.build(L.self, $0, $1) })
    if L.supportsCrossBatchMemory {
      buildSelfSupervised = { values, context, symmetric in
        guard symmetric || L.usesTuples else {
          throw SpecificationError("\(L.registryName): self_supervised=one-way needs a loss that reads pairs; \(L.registryName) reads the whole batch (use symmetric)")
        }
        return AnyEmbeddingLoss(SelfSupervisedLoss(try L(values, context: context), symmetric: symmetric))
      }
      splitsByDefault = (try? L.make(context: LossContext(classes: 2, embeddingDimension: 2, seed: 0)))?.anchorBlockReductions != nil
      buildAnchorBlocked = { values, context, rows in
        let loss = try L(values, context: context)
        guard let blocked = AnchorBlockedLoss(loss, blockRows: rows) else {
          throw SpecificationError(
            "\(L.registryName): anchor_block needs terms that add up over anchors, reduced by a mean or a sum; "
              + "this \(L.registryName) couples the batch's rows or reduces otherwise (change its reduction, or leave out anchor_block)")
        }
        return AnyEmbeddingLoss(blocked)
      }
    }
  }

  /// Builds an `L` from its values, wrapped where its type is concrete.
  @inlinable
  static func build<L: RegisteredLoss>(_: L.Type, _ values: HyperparameterValues, _ context: LossContext) throws -> AnyEmbeddingLoss<Float>
  where L.Scalar == Float {
    AnyEmbeddingLoss(LossEvaluator(try L(values, context: context)))
  }
}

/// Names to loss factories. Modules contribute their lists (for example
/// `ContrastiveLosses.registrations`); a program builds one registry from them at startup, and a
/// researcher's package appends its own.
public struct LossRegistry: Sendable {
  /// The entries, by name.
  public private(set) var factories: [String: LossFactory] = [:]

  /// A registry of every entry of `lists`; a later entry replaces an earlier one of the same name.
  public init(_ lists: [LossFactory]...) {
    for f in lists.joined() { register(f) }
  }

  /// Adds (or replaces) an entry.
  public mutating func register(_ factory: LossFactory) { factories[factory.name] = factory }

  /// The registered names, sorted.
  public var names: [String] { factories.keys.sorted() }

  /// The keys every loss accepts besides its own hyperparameters: `weight` (its weight in a sum,
  /// 1 by default) and PML's regularizer mixins, `embedding_regularizer` and `weight_regularizer`
  /// (a `Regularizer` name) with `embedding_reg_weight` and `weight_reg_weight` (1 by default),
  /// `self_supervised` (PML's `SelfSupervisedLoss`: `symmetric` or `one-way`), and `anchor_block`
  /// (`AnchorBlockedLoss`: that many anchors at a time; 0, the default, for the whole batch).
  public static let sharedKeys: [HyperparameterSpec] = [
    HyperparameterSpec("weight", .real, default: "1", "the loss's weight in a sum of losses", range: .nonNegative),
    HyperparameterSpec(
      "embedding_regularizer", .choice(["none"] + Regularizer.names), default: "none", "a regularizer of the embeddings (PML's mixin)"),
    HyperparameterSpec("embedding_reg_weight", .real, default: "1", "its weight", range: .nonNegative),
    HyperparameterSpec(
      "weight_regularizer", .choice(["none"] + Regularizer.names), default: "none",
      "a regularizer of the class weights or proxies (losses that have them)"),
    HyperparameterSpec("weight_reg_weight", .real, default: "1", "its weight", range: .nonNegative),
    HyperparameterSpec(
      "self_supervised", .choice(["none", "symmetric", "one-way"]), default: "none",
      "compare the two views of each sample only (PML's SelfSupervisedLoss; --batch views:labels=instance)"),
    HyperparameterSpec(
      "anchor_block", .integer, default: "0",
      "evaluate the loss this many anchors at a time against the whole batch, in bounded memory (0: the whole batch at once)",
      range: .atLeast(0)),
  ]

  /// Builds the loss that `text` describes (`name:key=value,...`). The reserved key `weight`
  /// (default 1) is returned beside it, for weighted sums; the regularizer keys
  /// (`sharedKeys`) wrap the loss in a `RegularizedLoss`, `self_supervised` in a
  /// `SelfSupervisedLoss`, and `anchor_block` in an `AnchorBlockedLoss`.
  public func make(_ text: String, context: LossContext) throws -> (loss: AnyEmbeddingLoss<Float>, weight: Float) {
    var values = try HyperparameterValues(parsing: text)
    guard let factory = factories[values.component] else {
      throw SpecificationError(
        "unknown loss '\(values.component)'; known: " + names.joined(separator: ", "))
    }
    let shared = Self.sharedKeys
    try values.validate(against: factory.hyperparameters, extraKeys: Set(shared.map(\.name)))
    // The shared keys, validated against their own declarations.
    var sharedValues = try HyperparameterValues(parsing: values.component)
    for spec in shared { if let v = values.given[spec.name] { sharedValues = try sharedValues.setting(spec.name, v) } }
    try sharedValues.validate(against: shared)
    let weight = Float(try sharedValues.real("weight"))
    let selfSupervised = try sharedValues.string("self_supervised")
    let anchorBlock = try sharedValues.integer("anchor_block")
    var loss: AnyEmbeddingLoss<Float>
    if anchorBlock > 0 {
      guard selfSupervised == "none" else {
        throw SpecificationError("\(values.component): anchor_block and self_supervised cannot be combined; choose one")
      }
      guard let build = factory.buildAnchorBlocked, factory.supportsAnchorBlocks else {
        let supported = factories.values.filter(\.supportsAnchorBlocks).map(\.name).sorted()
        throw SpecificationError(
          "\(values.component): anchor_block needs a loss whose terms add up over anchors (\(supported.joined(separator: ", "))), and \(values.component) is not one")
      }
      loss = try build(values, context, anchorBlock)
    } else if selfSupervised != "none" {
      guard let build = factory.buildSelfSupervised else {
        let supported = factories.values.filter(\.supportsSelfSupervised).map(\.name).sorted()
        throw SpecificationError(
          "\(values.component): self_supervised needs a loss over pairs of embeddings (\(supported.joined(separator: ", "))), and \(values.component) is not one")
      }
      loss = try build(values, context, selfSupervised == "symmetric")
    } else {
      loss = try factory.build(values, context)
    }
    let embeddingName = try sharedValues.string("embedding_regularizer"), weightName = try sharedValues.string("weight_regularizer")
    guard embeddingName != "none" || weightName != "none" else { return (loss, weight) }
    var embedding: (regularizer: Regularizer, weight: Float)?
    if embeddingName != "none" {
      guard embeddingName != "sparse-centers" else {
        throw SpecificationError("\(values.component): embedding_regularizer=sparse-centers regularizes class centers, not embeddings")
      }
      embedding = (try Regularizer.named(embeddingName), Float(try sharedValues.real("embedding_reg_weight")))
    }
    var weights: (regularizer: Regularizer, weight: Float, parameter: String)?
    if weightName != "none" {
      let parameters = loss.namedParameters()
      guard let target = parameters.first(where: { ["class_weights", "proxies", "class_centers"].contains($0.name) }) else {
        throw SpecificationError(
          "\(values.component): weight_regularizer needs class weights, centers or proxies, and this loss has "
            + (parameters.isEmpty ? "no learned tensor" : parameters.map(\.name).joined(separator: ", ")))
      }
      let rows = target.parameter.value.rows
      let perClass = context.classes > 0 && rows % context.classes == 0 ? rows / context.classes : nil
      do {
        weights = (try Regularizer.named(weightName, centersPerClass: perClass), Float(try sharedValues.real("weight_reg_weight")), target.name)
      } catch let e as SpecificationError { throw SpecificationError("\(values.component): weight_regularizer=\(weightName): \(e.description)") }
    }
    loss = AnyEmbeddingLoss(RegularizedLoss(loss, embedding: embedding, weights: weights))
    return (loss, weight)
  }
}

extension RegisteredLoss {
  /// Builds the loss from text such as `"triplet:margin=0.2"` (the name part is optional),
  /// validating every value against the declared hyperparameters.
  public static func make(_ text: String = "", context: LossContext) throws -> Self {
    // Accept "triplet:margin=0.2", "margin=0.2" and "".
    let spec = text.isEmpty ? registryName : (text.contains("=") && !text.contains(":") ? "\(registryName):\(text)" : text)
    var values = try HyperparameterValues(parsing: spec)
    guard values.component == registryName else {
      throw SpecificationError("'\(values.component)' given to \(registryName)")
    }
    try values.validate(against: hyperparameters)
    return try Self(values, context: context)
  }
}

/// The number of elements of a shape read from a file: `nil` when a size is negative or the
/// product overflows, so that loaders refuse hostile headers before allocating.
public func checkedElementCount(_ shape: [Int], limit: Int = 1 << 40) -> Int? {
  var count = 1
  for d in shape {
    guard d >= 0 else { return nil }
    let (p, overflow) = count.multipliedReportingOverflow(by: d)
    guard !overflow, p <= limit else { return nil }
    count = p
  }
  return count
}
