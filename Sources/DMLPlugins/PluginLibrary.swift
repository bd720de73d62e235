import DMLCore
import DMLPluginABI
import DMLRun
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An error in loading a plugin or in one of its declarations. The message names the library and
/// the symbol, component or field at fault.
public struct PluginError: Error, CustomStringConvertible, Equatable {
  /// The message.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// What kind of component a plugin declares.
public enum PluginComponentKind: String, Sendable, Equatable {
  /// A loss (`dml_loss_descriptor`).
  case loss
  /// A miner (`dml_miner_descriptor`).
  case miner
}

/// One component a plugin declares, checked at load: its name, help, hyperparameters and how the
/// host builds it.
public struct PluginComponent: Sendable {
  /// Loss or miner.
  public let kind: PluginComponentKind
  /// The name in `name:key=value` specifications.
  public let name: String
  /// The one-line description, followed by the library's file name in listings.
  public let summary: String
  /// The declared hyperparameters, as the registries validate them.
  public let hyperparameters: [HyperparameterSpec]
  /// Whether a loss reads the tuples a miner found.
  public let usesTuples: Bool
  /// Whether the component reads scores against a cross-batch memory.
  public let acceptsMemory: Bool
  /// The library that declared it.
  public let library: String
  let descriptor: DescriptorReference
}

/// A descriptor pointer into a loaded library, which stays loaded for the life of the process.
struct DescriptorReference: @unchecked Sendable {
  let loss: UnsafePointer<dml_loss_descriptor>?
  let miner: UnsafePointer<dml_miner_descriptor>?
}

/// A plugin: a shared library that adds losses and miners through the C interface of
/// `dml_plugin.h`, loaded at start-up.
///
/// ```swift
/// let plugin = try PluginLibrary.load("squared_hinge.so")
/// var losses = LossRegistry.standard, miners = MinerRegistry.standard
/// try plugin.register(losses: &losses, miners: &miners)
/// let (loss, _) = try losses.make("squared-hinge:alpha=0.2", context: context)
/// ```
///
/// Loading calls the library's one entry point, `dml_plugin_init`, which hands the host a
/// descriptor per component. Every descriptor is checked before any component is used: its ABI
/// version first, then its name, functions and hyperparameters (type, default, bounds, choices).
/// A library is never unloaded: the components it made may live until the process ends.
public struct PluginLibrary: Sendable {
  /// The path it was loaded from.
  public let path: String
  /// Its components, in the order it declared them.
  public let components: [PluginComponent]

  /// The library's file name, for messages.
  public var fileName: String { (path as NSString).lastPathComponent }

  nonisolated(unsafe) static var loaded: [String: PluginLibrary] = [:]
  static let loadLock = NSLock()

  /// Loads the library at `path`, calls its entry point and checks every declaration. The entry
  /// point runs once per process: loading the same file again (by any path that resolves to it)
  /// returns the components of the first load.
  public static func load(_ path: String) throws -> PluginLibrary {
    let key = ((path as NSString).resolvingSymlinksInPath as NSString).standardizingPath
    return try loadLock.withLock {
      if let library = loaded[key] { return library }
      let library = try loadOnce(path)
      loaded[key] = library
      return library
    }
  }

  static func loadOnce(_ path: String) throws -> PluginLibrary {
    let label = (path as NSString).lastPathComponent
    guard FileManager.default.fileExists(atPath: path) else { throw PluginError("plugin \(path): no such file") }
    // RTLD_LOCAL: two plugins may use the same internal symbol names without clashing.
    guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
      throw PluginError("plugin \(path): cannot load it as a shared library: \(dlerror().map { String(cString: $0) } ?? "unknown error")")
    }
    guard let symbol = dlsym(handle, DML_PLUGIN_ENTRY_POINT) else {
      throw PluginError(
        "plugin \(label): no entry point '\(DML_PLUGIN_ENTRY_POINT)' (every plugin exports it; see dml_plugin.h)")
    }
    let entry = unsafeBitCast(symbol, to: dml_plugin_init_fn.self)
    let collector = Collector()
    let host = Unmanaged.passRetained(collector)
    defer { host.release() }
    var registrar = dml_registrar(
      abi_version: dml_plugin_host_abi_version(), host: host.toOpaque(),
      register_loss: { host, descriptor in
        guard let host else { return }
        Unmanaged<Collector>.fromOpaque(host).takeUnretainedValue().entries.append(.loss(descriptor))
      },
      register_miner: { host, descriptor in
        guard let host else { return }
        Unmanaged<Collector>.fromOpaque(host).takeUnretainedValue().entries.append(.miner(descriptor))
      })
    let status = entry(&registrar)
    guard status == DML_PLUGIN_OK else {
      throw PluginError("plugin \(label): \(DML_PLUGIN_ENTRY_POINT) returned \(status), not DML_PLUGIN_OK")
    }
    guard !collector.entries.isEmpty else { throw PluginError("plugin \(label): \(DML_PLUGIN_ENTRY_POINT) registered no component") }
    var components: [PluginComponent] = []
    for (index, entry) in collector.entries.enumerated() {
      let component = try check(entry, index: index, library: label)
      if let previous = components.firstIndex(where: { $0.name == component.name && $0.kind == component.kind }) {
        throw PluginError("plugin \(label): two \(component.kind == .loss ? "losses" : "miners") are named '\(component.name)' (field name of descriptors #\(previous) and #\(index))")
      }
      components.append(component)
    }
    return PluginLibrary(path: path, components: components)
  }

  /// The plugin's losses, as registry entries in `Float`.
  public var lossFactories: [LossFactory] {
    components.filter { $0.kind == .loss }.map { c in
      LossFactory(
        name: c.name, summary: c.summary, hyperparameters: c.hyperparameters, usesTuples: c.usesTuples,
        acceptsMemory: c.acceptsMemory
      ) { values, context in
        AnyEmbeddingLoss(LossEvaluator(try PluginLoss<Float>(c, values: values, context: context)))
      }
    }
  }

  /// The plugin's miners, as registry entries in `Float`.
  public var minerFactories: [ComponentFactory<AnyTupleSampler<Float>, MinerContext>] {
    components.filter { $0.kind == .miner }.map { c in
      ComponentFactory(c.name, summary: c.summary, hyperparameters: c.hyperparameters) { values, context in
        AnyTupleSampler(try PluginMiner<Float>(c, values: values, context: context))
      }
    }
  }

  /// Adds the plugin's losses to `losses` and its miners to `miners`. A name that either registry
  /// already holds (a built-in component, or another plugin's) is refused, and nothing is added.
  public func register(losses: inout LossRegistry, miners: inout MinerRegistry) throws {
    for c in components {
      let taken = c.kind == .loss ? losses.factories[c.name] != nil : miners.factory(named: c.name) != nil
      if taken {
        throw PluginError("plugin \(fileName): a \(c.kind) named '\(c.name)' is already registered (field name); rename the plugin's")
      }
    }
    for f in lossFactories { losses.register(f) }
    for f in minerFactories { miners.register(f) }
  }

  // MARK: - Checking declarations

  final class Collector {
    enum Entry {
      case loss(UnsafePointer<dml_loss_descriptor>?)
      case miner(UnsafePointer<dml_miner_descriptor>?)
    }
    var entries: [Entry] = []
  }

  static func check(_ entry: Collector.Entry, index: Int, library: String) throws -> PluginComponent {
    switch entry {
    case .loss(let pointer):
      let d = try versioned(pointer, "loss", index: index, library: library)
      let (name, specs) = try fields(
        "loss", d.name, functions: [("create", d.create != nil), ("destroy", d.destroy != nil), ("compute", d.compute != nil)],
        d.hyperparameters, d.hyperparameter_count, flags: d.flags, known: DML_LOSS_USES_TUPLES | DML_ACCEPTS_MEMORY,
        reserved: Set(LossRegistry.sharedKeys.map(\.name)), index: index, library: library)
      return PluginComponent(
        kind: .loss, name: name, summary: summary(d.doc, library), hyperparameters: specs,
        usesTuples: d.flags & DML_LOSS_USES_TUPLES != 0, acceptsMemory: d.flags & DML_ACCEPTS_MEMORY != 0, library: library,
        descriptor: DescriptorReference(loss: pointer, miner: nil))
    case .miner(let pointer):
      let d = try versioned(pointer, "miner", index: index, library: library)
      let (name, specs) = try fields(
        "miner", d.name, functions: [("create", d.create != nil), ("destroy", d.destroy != nil), ("mine", d.mine != nil)],
        d.hyperparameters, d.hyperparameter_count, flags: d.flags, known: DML_ACCEPTS_MEMORY, reserved: [], index: index, library: library)
      return PluginComponent(
        kind: .miner, name: name, summary: summary(d.doc, library), hyperparameters: specs, usesTuples: false,
        acceptsMemory: d.flags & DML_ACCEPTS_MEMORY != 0, library: library, descriptor: DescriptorReference(loss: nil, miner: pointer))
    }
  }

  /// The descriptor behind `pointer`, after its first field, the ABI version, has been read alone
  /// and found to be the host's.
  static func versioned<D>(_ pointer: UnsafePointer<D>?, _ kind: String, index: Int, library: String) throws -> D {
    guard let pointer else { throw PluginError("plugin \(library): register_\(kind) was given a NULL descriptor (#\(index))") }
    let version = UnsafeRawPointer(pointer).load(as: UInt32.self), host = dml_plugin_host_abi_version()
    guard version == host else {
      throw PluginError(
        "plugin \(library): \(kind) descriptor #\(index) has abi_version \(version); this dml reads version \(host) (rebuild the plugin against its dml_plugin.h)")
    }
    return pointer.pointee
  }

  /// The fields every descriptor shares, checked: its name, its functions, its hyperparameters and
  /// its flags.
  static func fields(
    _ kind: String, _ namePointer: UnsafePointer<CChar>?, functions: [(String, Bool)], _ hyperparameterPointer: UnsafePointer<dml_hyperparameter>?,
    _ count: Int32, flags: Int32, known: Int32, reserved: Set<String>, index: Int, library: String
  ) throws -> (name: String, specs: [HyperparameterSpec]) {
    let name = try componentName(namePointer, kind: kind, index: index, library: library)
    let where_ = "plugin \(library): \(kind) '\(name)'"
    for (field, present) in functions where !present { throw PluginError("\(where_): field \(field) is NULL") }
    let specs = try hyperparameters(hyperparameterPointer, count: count, where_, reserved: reserved)
    guard flags & ~known == 0 else { throw PluginError("\(where_): field flags has unknown bits \(flags & ~known)") }
    return (name, specs)
  }

  static func summary(_ doc: UnsafePointer<CChar>?, _ library: String) -> String {
    let text = doc.map { String(cString: $0) } ?? ""
    return (text.isEmpty ? "" : text + " ") + "(plugin \(library))"
  }

  /// A component name: lowercase letters, digits and '-', starting with a letter.
  static func componentName(_ pointer: UnsafePointer<CChar>?, kind: String, index: Int, library: String) throws -> String {
    guard let pointer else { throw PluginError("plugin \(library): \(kind) descriptor #\(index): field name is NULL") }
    let name = String(cString: pointer)
    guard isIdentifier(name, extra: "-"), name.first!.isLetter, name == name.lowercased() else {
      throw PluginError(
        "plugin \(library): \(kind) descriptor #\(index): name '\(name)' must be lowercase letters, digits and '-', starting with a letter")
    }
    return name
  }

  static func isIdentifier(_ text: String, extra: Character) -> Bool {
    !text.isEmpty && text.count <= 64 && text.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == extra }
  }

  /// The declared hyperparameters as specifications, each checked: a known type, a name, a
  /// default that parses and satisfies the declared bounds or choices.
  static func hyperparameters(
    _ pointer: UnsafePointer<dml_hyperparameter>?, count: Int32, _ where_: String, reserved: Set<String>
  ) throws -> [HyperparameterSpec] {
    guard count >= 0, count <= 256 else { throw PluginError("\(where_): field hyperparameter_count is \(count)") }
    guard count == 0 || pointer != nil else { throw PluginError("\(where_): field hyperparameters is NULL for \(count) hyperparameters") }
    var specs: [HyperparameterSpec] = []
    for k in 0..<Int(count) {
      let h = pointer![k]
      guard let namePointer = h.name else { throw PluginError("\(where_): hyperparameter #\(k): field name is NULL") }
      let name = String(cString: namePointer)
      guard isIdentifier(name, extra: "_") else {
        throw PluginError("\(where_): hyperparameter #\(k): name '\(name)' must be letters, digits and '_'")
      }
      let at = "\(where_): hyperparameter '\(name)'"
      guard !reserved.contains(name) else { throw PluginError("\(at): the name is reserved by the host") }
      guard !specs.contains(where: { $0.name == name }) else { throw PluginError("\(at) is declared twice") }
      guard let defaultPointer = h.default_value else { throw PluginError("\(at): field default_value is NULL") }
      let defaultValue = String(cString: defaultPointer)
      let doc = h.doc.map { String(cString: $0) } ?? ""
      let kind: HyperparameterSpec.Kind
      switch h.type {
      case DML_HYPERPARAMETER_REAL: kind = .real
      case DML_HYPERPARAMETER_INTEGER: kind = .integer
      case DML_HYPERPARAMETER_BOOLEAN: kind = .boolean
      case DML_HYPERPARAMETER_CHOICE:
        guard let choices = h.choices else { throw PluginError("\(at): field choices is NULL for a choice") }
        let options = String(cString: choices).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard !options.isEmpty, options.allSatisfy({ !$0.isEmpty && !$0.contains(",") && !$0.contains("=") }) else {
          throw PluginError("\(at): field choices '\(String(cString: choices))' must be non-empty names separated by '|'")
        }
        kind = .choice(options)
      default:
        throw PluginError("\(at): field type is \(h.type), an unknown hyperparameter type (1 real, 2 integer, 3 boolean, 4 choice)")
      }
      let knownBounds = DML_BOUND_LOWER | DML_BOUND_LOWER_OPEN | DML_BOUND_UPPER | DML_BOUND_UPPER_OPEN
      guard h.bounds & ~knownBounds == 0 else { throw PluginError("\(at): field bounds has unknown bits") }
      var range: ValueRange?
      if h.bounds != 0 {
        guard h.type == DML_HYPERPARAMETER_REAL || h.type == DML_HYPERPARAMETER_INTEGER else {
          throw PluginError("\(at): field bounds applies to real and integer hyperparameters only")
        }
        let lower = h.bounds & DML_BOUND_LOWER != 0 ? (value: h.lower, included: h.bounds & DML_BOUND_LOWER_OPEN == 0) : nil
        let upper = h.bounds & DML_BOUND_UPPER != 0 ? (value: h.upper, included: h.bounds & DML_BOUND_UPPER_OPEN == 0) : nil
        guard lower.map({ $0.value.isFinite }) ?? true, upper.map({ $0.value.isFinite }) ?? true else {
          throw PluginError("\(at): fields lower and upper must be finite")
        }
        range = ValueRange(lower: lower, upper: upper)
      }
      specs.append(HyperparameterSpec(name, kind, default: defaultValue, doc, range: range))
    }
    // Every default must satisfy its own declaration.
    do {
      var values = try HyperparameterValues(parsing: "plugin")
      try values.validate(against: specs)
    } catch let e as SpecificationError {
      throw PluginError("\(where_): a default value does not fit its declaration: \(e.description.replacingOccurrences(of: "plugin: ", with: ""))")
    }
    return specs
  }
}

// MARK: - Instances

/// One instance a plugin created: its state pointer, released through the plugin's `destroy`
/// when the last copy of the component that holds it goes away.
final class PluginInstance: @unchecked Sendable {
  let state: UnsafeMutableRawPointer?
  let destroy: dml_destroy_fn
  let distance: Distance
  /// The declared tensors, with their initial values in Double (exact for Float too).
  let tensors: [(name: String, rows: Int, columns: Int, initial: [Double], trainable: Bool, decays: Bool, references: Bool, group: Int)]

  init(
    state: UnsafeMutableRawPointer?, destroy: dml_destroy_fn, distance: Distance,
    tensors: [(name: String, rows: Int, columns: Int, initial: [Double], trainable: Bool, decays: Bool, references: Bool, group: Int)]
  ) {
    self.state = state
    self.destroy = destroy
    self.distance = distance
    self.tensors = tensors
  }

  deinit { if let state { destroy(state) } }

  /// Calls a component's `create` with `values` in declaration order, and checks what it returns.
  static func create<Scalar: DMLScalar>(
    _ component: PluginComponent, _ create: dml_create_fn, destroy: dml_destroy_fn, values: HyperparameterValues,
    context: dml_context, scalar: Scalar.Type, allowsTensors: Bool
  ) throws -> PluginInstance {
    let at = "plugin \(component.library): \(component.kind) '\(component.name)'"
    var strings: [UnsafeMutablePointer<CChar>] = []
    defer { strings.forEach { free($0) } }
    var arguments: [dml_value] = []
    for spec in component.hyperparameters {
      var v = dml_value()
      switch spec.kind {
      case .real:
        v.type = DML_HYPERPARAMETER_REAL
        v.real = try values.real(spec.name)
      case .integer:
        v.type = DML_HYPERPARAMETER_INTEGER
        v.integer = Int64(try values.integer(spec.name))
      case .boolean:
        v.type = DML_HYPERPARAMETER_BOOLEAN
        v.boolean = try values.boolean(spec.name) ? 1 : 0
      case .choice, .distance:
        v.type = DML_HYPERPARAMETER_CHOICE
        let s = strdup(try values.string(spec.name))!
        strings.append(s)
        v.choice = UnsafePointer(s)
      case .text:
        // The C interface declares real, integer, boolean and choice values only.
        throw SpecificationError("\(at): text hyperparameter \(spec.name) is not part of the plugin interface")
      }
      arguments.append(v)
    }
    var context = context
    var instance = dml_instance()
    var error = [CChar](repeating: 0, count: 1024)
    let status = arguments.withUnsafeBufferPointer { a in
      create(a.baseAddress, Int32(a.count), &context, Scalar.pluginScalar, &instance, &error, error.count)
    }
    guard status == DML_PLUGIN_OK else {
      let message = cMessage(error)
      throw SpecificationError("\(at): \(message.isEmpty ? "create returned \(status)" : message)")
    }
    // From here on, the plugin's state is released on every path.
    let state = instance.state
    var adopted = false
    defer { if !adopted, let state { destroy(state) } }
    let distance: Distance
    switch instance.distance {
    case DML_DISTANCE_EUCLIDEAN: distance = .euclidean
    case DML_DISTANCE_SQUARED_EUCLIDEAN: distance = .squaredEuclidean
    case DML_DISTANCE_COSINE: distance = .cosine
    case DML_DISTANCE_DOT: distance = .dotProduct
    default: throw PluginError("\(at): create set distance \(instance.distance), not one of DML_DISTANCE_*")
    }
    guard instance.tensor_count >= 0, instance.tensor_count <= 64 else { throw PluginError("\(at): create set tensor_count \(instance.tensor_count)") }
    guard allowsTensors || instance.tensor_count == 0 else { throw PluginError("\(at): a miner declares no learned tensors (tensor_count \(instance.tensor_count))") }
    guard instance.tensor_count == 0 || instance.tensors != nil else { throw PluginError("\(at): create set tensors to NULL") }
    var tensors: [(name: String, rows: Int, columns: Int, initial: [Double], trainable: Bool, decays: Bool, references: Bool, group: Int)] = []
    for k in 0..<Int(instance.tensor_count) {
      let t = instance.tensors![k]
      guard let namePointer = t.name else { throw PluginError("\(at): tensor #\(k): field name is NULL") }
      let name = String(cString: namePointer)
      guard PluginLibrary.isIdentifier(name, extra: "_") else { throw PluginError("\(at): tensor #\(k): name '\(name)' must be letters, digits and '_'") }
      guard !tensors.contains(where: { $0.name == name }) else { throw PluginError("\(at): two tensors are named '\(name)'") }
      guard t.rows >= 1, t.columns >= 1, t.rows <= 1 << 24, t.columns <= 1 << 24, t.rows * t.columns <= 1 << 28 else {
        throw PluginError("\(at): tensor '\(name)' has shape \(t.rows) x \(t.columns)")
      }
      guard let initial = t.initial else { throw PluginError("\(at): tensor '\(name)': field initial is NULL") }
      guard t.group >= 0, t.group < 64 else { throw PluginError("\(at): tensor '\(name)': field group is \(t.group)") }
      let count = Int(t.rows * t.columns)
      let values: [Double] =
        Scalar.self == Double.self
        ? Array(UnsafeBufferPointer(start: initial.assumingMemoryBound(to: Double.self), count: count))
        : UnsafeBufferPointer(start: initial.assumingMemoryBound(to: Float.self), count: count).map(Double.init)
      guard values.allSatisfy(\.isFinite) else { throw PluginError("\(at): tensor '\(name)' has a non-finite initial value") }
      let references = t.references != 0
      if references {
        guard !tensors.contains(where: \.references) else { throw PluginError("\(at): two tensors are marked references (at most one)") }
        guard Int(t.columns) == Int(context.embedding_dimension) else {
          throw PluginError("\(at): the references tensor '\(name)' has \(t.columns) columns for \(context.embedding_dimension)-dimensional embeddings")
        }
      }
      tensors.append((name, Int(t.rows), Int(t.columns), values, t.trainable != 0, t.decays != 0, references, Int(t.group)))
    }
    adopted = true
    return PluginInstance(state: state, destroy: destroy, distance: distance, tensors: tensors)
  }
}

extension DMLScalar {
  /// `DML_SCALAR_F64` for Double, `DML_SCALAR_F32` for Float.
  static var pluginScalar: Int32 { Self.self == Double.self ? DML_SCALAR_F64 : DML_SCALAR_F32 }
}

extension dml_context {
  init(_ loss: LossContext) {
    self.init(classes: Int64(loss.classes), embedding_dimension: Int64(loss.embeddingDimension), seed: loss.seed)
  }
}
