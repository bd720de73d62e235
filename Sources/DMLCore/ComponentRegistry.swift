/// A component a registry builds by name: its declared hyperparameters, with defaults and docs,
/// and how to make it from validated values and a context (what the component must know of the
/// run: the data's width, the number of classes, the seed, …).
public struct ComponentFactory<Product, Context>: Sendable {
  /// The name a specification selects it by (`name:key=value,…`), as `dml list` shows it.
  public let name: String
  /// A one-line description.
  public let summary: String
  /// The hyperparameters it accepts; values are validated against them before `make` runs.
  public let hyperparameters: [HyperparameterSpec]
  /// Makes the component from validated values and the context.
  public let make: @Sendable (HyperparameterValues, Context) throws -> Product

  /// A factory named `name`; see the properties for each argument.
  public init(
    _ name: String, summary: String, hyperparameters: [HyperparameterSpec] = [],
    make: @escaping @Sendable (HyperparameterValues, Context) throws -> Product
  ) {
    self.name = name
    self.summary = summary
    self.hyperparameters = hyperparameters
    self.make = make
  }
}

/// The components of one kind (networks, miners, batch samplers, optimizers, schedules), by
/// name, in the order they were registered. Every kind is built the same way: a specification
/// `name:key=value,…` is parsed, its keys and values are checked against the declared
/// hyperparameters (an error names the key), and the factory makes the component.
///
/// An outside package adds its own with `register(_:)`, for example to `CommandRegistry`'s
/// registries before it calls `DML.main()`.
public struct ComponentRegistry<Product, Context>: Sendable {
  /// What the components are, for messages ("network", "miner", …).
  public let kind: String
  /// The factories, in registration order.
  public private(set) var factories: [ComponentFactory<Product, Context>]

  /// A registry of `kind` holding `factories`.
  public init(kind: String, _ factories: [ComponentFactory<Product, Context>] = []) {
    self.kind = kind
    self.factories = []
    for f in factories { register(f) }
  }

  /// Adds `factory`, replacing a factory of the same name.
  public mutating func register(_ factory: ComponentFactory<Product, Context>) {
    if let i = factories.firstIndex(where: { $0.name == factory.name }) { factories[i] = factory } else { factories.append(factory) }
  }

  /// The names, in registration order.
  public var names: [String] { factories.map(\.name) }

  /// The factory named `name`.
  public func factory(named name: String) -> ComponentFactory<Product, Context>? { factories.first { $0.name == name } }

  /// The factory that `text` names and its values, validated against the declared
  /// hyperparameters.
  public func values(_ text: String) throws -> (factory: ComponentFactory<Product, Context>, values: HyperparameterValues) {
    var v = try HyperparameterValues(parsing: text)
    guard let f = factory(named: v.component) else {
      throw SpecificationError("unknown \(kind) '\(v.component)'; known: " + names.joined(separator: ", "))
    }
    try v.validate(against: f.hyperparameters)
    return (f, v)
  }

  /// The component that `text` specifies, made in `context`.
  public func make(_ text: String, context: Context) throws -> Product {
    let (f, v) = try values(text)
    return try f.make(v, context)
  }
}
