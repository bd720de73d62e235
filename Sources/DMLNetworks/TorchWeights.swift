/// Parameters in PyTorch's layout and names (a `state_dict`), in and out of the library's.
///
/// The names are the same: the library's networks that mirror a torchvision model (ResNet) name
/// their parameters as its modules do. The layouts differ for convolutions only: PyTorch stores a
/// kernel `out × in × kh × kw`, the library `out × kh × kw × in` (channels innermost, as its
/// NHWC images). Linear weights (`out × in`) and vectors are the same in both. PyTorch's BatchNorm
/// also keeps `num_batches_tracked`, a counter that the library does not use: it is ignored on
/// import and written (as the given step count) on export.
public enum TorchWeights {
  /// What an import did.
  public struct Report: Sendable, Equatable {
    /// Parameters set from the file.
    public var loaded: [String] = []
    /// Parameters left as initialised: absent from the file, or there with another shape (see
    /// `replaced`), and allowed to be new (the embedding head).
    public var new: [String] = []
    /// The new parameters that the file holds with another shape (an ImageNet classifier where
    /// the network has its embedding head).
    public var replaced: [String] = []
    /// Tensors of the file not used (allowed extras, and `num_batches_tracked`).
    public var ignored: [String] = []
  }

  /// A PyTorch tensor's values in the library's layout, for a parameter of library shape
  /// `shape`: 4-D kernels `[o, i, kh, kw]` become `[o, kh, kw, i]`.
  public static func fromTorch<T: DMLScalar>(_ values: [T], torchShape: [Int]) -> [T] {
    guard torchShape.count == 4 else { return values }
    let (o, i, kh, kw) = (torchShape[0], torchShape[1], torchShape[2], torchShape[3])
    var out = [T](repeating: 0, count: values.count)
    for a in 0..<o {
      for c in 0..<i {
        for y in 0..<kh {
          for x in 0..<kw { out[((a * kh + y) * kw + x) * i + c] = values[((a * i + c) * kh + y) * kw + x] }
        }
      }
    }
    return out
  }

  /// A parameter of library shape `shape` in PyTorch's layout and shape.
  public static func toTorch<T: DMLScalar>(_ values: [T], shape: [Int]) -> (values: [T], shape: [Int]) {
    guard shape.count == 4 else { return (values, shape) }
    let (o, kh, kw, i) = (shape[0], shape[1], shape[2], shape[3])
    var out = [T](repeating: 0, count: values.count)
    for a in 0..<o {
      for c in 0..<i {
        for y in 0..<kh {
          for x in 0..<kw { out[((a * i + c) * kh + y) * kw + x] = values[((a * kh + y) * kw + x) * i + c] }
        }
      }
    }
    return (out, [o, i, kh, kw])
  }

  /// The library shape of a PyTorch shape (4-D kernels move their input channels last).
  public static func libraryShape(ofTorch shape: [Int]) -> [Int] {
    shape.count == 4 ? [shape[0], shape[2], shape[3], shape[1]] : shape
  }

  /// Sets `container`'s parameters from `tensors` (PyTorch names, layouts and shapes). Every
  /// parameter must be in the file with its shape, and every tensor of the file must be a
  /// parameter, except: parameters whose names start with one of `newPrefixes` (the head) may be
  /// absent or of another shape (they are then left as initialised, and reported as new), and
  /// with `allowMissing` or `allowExtra` any parameter may be absent, any tensor unused.
  /// `num_batches_tracked` is always ignored. Nothing changes when an error is thrown.
  public static func load<C: ParameterContainer>(
    _ tensors: [String: (shape: [Int], values: [Float])], into container: inout C, newPrefixes: [String] = [],
    allowMissing: Bool = false, allowExtra: Bool = false, source: String = "the file"
  ) throws -> Report {
    var report = Report()
    var errors: [String] = []
    var used = Set<String>()
    var updates: [String: [C.Scalar]] = [:]
    for (name, parameter) in container.namedParameters() {
      let isNew = newPrefixes.contains { name.hasPrefix($0) }
      guard let t = tensors[name] else {
        if isNew || allowMissing { report.new.append(name) } else { errors.append("\(name) is missing") }
        continue
      }
      used.insert(name)
      let shape = libraryShape(ofTorch: t.shape)
      guard shape == parameter.shape, t.values.count == parameter.value.count else {
        if isNew {
          report.new.append(name)
          report.replaced.append(name)
        } else {
          errors.append("\(name) has shape \(t.shape) in \(source), the network's is \(toTorchShape(parameter.shape))")
        }
        continue
      }
      guard t.values.allSatisfy(\.isFinite) else {
        errors.append("\(name) holds NaN or infinite values")
        continue
      }
      updates[name] = fromTorch(t.values.map { C.Scalar($0) }, torchShape: t.shape)
      report.loaded.append(name)
    }
    for name in tensors.keys.sorted() where !used.contains(name) {
      if name.hasSuffix("num_batches_tracked") || allowExtra || newPrefixes.contains(where: { name.hasPrefix($0) }) {
        report.ignored.append(name)
      } else {
        errors.append("\(name) is not a parameter of the network")
      }
    }
    guard errors.isEmpty else {
      throw WeightImportError("\(source): \(errors.count) tensor\(errors.count == 1 ? "" : "s") do not fit: " + errors.prefix(8).joined(separator: "; ")
        + (errors.count > 8 ? "; … (\(errors.count - 8) more)" : ""))
    }
    container.forEachParameter { name, parameter in
      if let values = updates[name] { parameter.value = Matrix(rows: parameter.value.rows, columns: parameter.value.columns, elements: values) }
    }
    report.ignored = Array(Set(report.ignored)).sorted()
    return report
  }

  /// `shape` in PyTorch's order.
  static func toTorchShape(_ shape: [Int]) -> [Int] { shape.count == 4 ? [shape[0], shape[3], shape[1], shape[2]] : shape }

  /// `container`'s parameters in PyTorch's names, layouts and shapes (Float), and, for every
  /// BatchNorm (a `running_var`), its `num_batches_tracked` set to `steps`: what
  /// `load_state_dict(strict=True)` of the mirrored torchvision model expects.
  public static func export<C: ParameterContainer>(_ container: C, steps: Int = 0)
    -> (tensors: [(name: String, shape: [Int], values: [Float])], integers: [(name: String, shape: [Int], values: [Int])])
  {
    var tensors: [(name: String, shape: [Int], values: [Float])] = []
    var integers: [(name: String, shape: [Int], values: [Int])] = []
    for (name, parameter) in container.namedParameters() {
      let (values, shape) = toTorch(parameter.value.elements.map { Float($0) }, shape: parameter.shape)
      tensors.append((name, shape, values))
      if name.hasSuffix("running_var") {
        integers.append((String(name.dropLast("running_var".count)) + "num_batches_tracked", [], [steps]))
      }
    }
    return (tensors, integers)
  }
}

/// A weights file that does not fit the network: the tensors at fault, by name.
public struct WeightImportError: Error, CustomStringConvertible {
  /// The message.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}
