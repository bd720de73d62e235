// The loss modules are imported (and re-exported) by the file the LossRegistrations build-tool
// plugin generates from this module's dependencies: Package.swift's `lossModules` list.
import DMLCore

extension LossRegistry {
  /// Every loss of this package: the registry a program builds at startup. A researcher's package
  /// appends its own entries with `register(_:)`.
  ///
  /// The list is generated at build time from the loss modules named in Package.swift's
  /// `lossModules`: adding a module there (as `swift package new-loss NAME` does) registers its
  /// losses, with no registry to edit.
  public static var standard: LossRegistry {
    var registry = LossRegistry()
    for list in moduleRegistrations {
      for factory in list { registry.register(factory) }
    }
    return registry
  }
}
