/// An image operation registered from outside the library: its textual form (which
/// `ImageAugmentation(parsing:)` reads back) and what it does to one image.
///
/// `apply` receives the image (`height × width × channels` values, NHWC), a scratch buffer of the
/// same size, the shape, the image's background (its minimum, the value for pixels brought in from
/// outside) and the random source. It must draw every random choice from that source, so that a
/// step's augmentation follows from the seed and the step alone.
public struct CustomImageOperation: Sendable, Equatable, CustomStringConvertible {
  /// The textual form, `name:key=value,…`.
  public let description: String
  /// Transforms one image in place.
  public let apply:
    @Sendable (
      _ image: UnsafeMutableBufferPointer<Float>, _ scratch: UnsafeMutableBufferPointer<Float>,
      _ shape: (height: Int, width: Int, channels: Int), _ background: Float, _ rng: inout RandomSource
    ) -> Void

  /// An operation whose textual form is made from `values`: its name and every declared setting.
  public init(
    values: HyperparameterValues,
    apply: @escaping @Sendable (
      UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, (height: Int, width: Int, channels: Int), Float,
      inout RandomSource
    ) -> Void
  ) throws {
    let settings = try values.specs.map { "\($0.name)=\(try values.string($0.name))" }
    description = settings.isEmpty ? values.component : values.component + ":" + settings.joined(separator: ",")
    self.apply = apply
  }

  /// Operations are equal when their textual forms are.
  public static func == (a: CustomImageOperation, b: CustomImageOperation) -> Bool { a.description == b.description }
}

/// What an augmentation factory knows (nothing yet: an operation is made from its settings).
public struct AugmentationContext: Sendable {
  /// The empty context.
  public init() {}
}

/// Image augmentation operations by name (`--augment name:key=value,…`).
public typealias AugmentationRegistry = ComponentRegistry<ImageAugmentation.Operation, AugmentationContext>

extension ComponentRegistry where Product == ImageAugmentation.Operation, Context == AugmentationContext {
  /// The built-in operations: `crop`, `flip`, `affine`, `erase` and `gamma`.
  public static var standard: AugmentationRegistry {
    AugmentationRegistry(kind: "augmentation", [
      ComponentFactory("crop", summary: "random crop after zero padding", hyperparameters: [
        HyperparameterSpec("pad", .integer, default: "2", "pixels of padding before the random crop", range: .closed(0, 64))
      ]) { v, _ in .crop(pad: try v.integer("pad")) },
      ComponentFactory("flip", summary: "random left-right mirror", hyperparameters: [
        HyperparameterSpec("p", .real, default: "0.5", "probability of a left-right mirror", range: .closed(0, 1))
      ]) { v, _ in .flip(p: try v.real("p")) },
      ComponentFactory("affine", summary: "random shift and rotation, resampled bilinearly", hyperparameters: [
        HyperparameterSpec("shift", .real, default: "2", "largest shift in pixels", range: .closed(0, 64)),
        HyperparameterSpec("rotate", .real, default: "10", "largest rotation in degrees", range: .closed(0, 180)),
      ]) { v, _ in .affine(shift: try v.real("shift"), rotate: try v.real("rotate")) },
      ComponentFactory("erase", summary: "random erasing of a rectangle (Zhong et al. 2020)", hyperparameters: [
        HyperparameterSpec("p", .real, default: "0.5", "probability of erasing", range: .closed(0, 1)),
        HyperparameterSpec("min_area", .real, default: "0.02", "smallest erased fraction", range: .closed(0, 1)),
        HyperparameterSpec("max_area", .real, default: "0.2", "largest erased fraction", range: .closed(0, 1)),
      ]) { v, _ in
        let minArea = try v.real("min_area"), maxArea = try v.real("max_area")
        guard minArea <= maxArea else { throw SpecificationError("erase: min_area \(minArea) exceeds max_area \(maxArea)") }
        return .erase(p: try v.real("p"), minArea: minArea, maxArea: maxArea)
      },
      ComponentFactory("gamma", summary: "random gamma of the intensities", hyperparameters: [
        HyperparameterSpec("range", .real, default: "2", "largest gamma (and 1/range the smallest)", range: .closed(1, 10))
      ]) { v, _ in .gamma(range: try v.real("range")) },
    ])
  }
}
