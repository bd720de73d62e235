@_exported import CenterLosses
@_exported import ClassificationLosses
@_exported import ContrastiveLosses
@_exported import ProxyLosses
@_exported import TripletLosses

extension LossRegistry {
  /// Every loss of this package: the registry a program builds at startup. A researcher's package
  /// appends its own entries with `register(_:)`.
  public static var standard: LossRegistry {
    LossRegistry(
      ContrastiveLosses.registrations, TripletLosses.registrations, CenterLosses.registrations,
      ProxyLosses.registrations, ClassificationLosses.registrations,
      // `swift package new-loss NAME` adds its module's registrations above this line.
      [])
  }
}
