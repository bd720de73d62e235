/// The shape of one image in a batch row: height, width and channels, stored NHWC.
public struct ImageShape: Sendable, Equatable, Codable, CustomStringConvertible {
  /// Rows of pixels.
  public var height: Int
  /// Columns of pixels.
  public var width: Int
  /// Values per pixel, the innermost (fastest-varying) axis.
  public var channels: Int

  /// A shape of `height × width` pixels with `channels` values each; all three must be positive.
  public init(height: Int, width: Int, channels: Int) {
    precondition(height > 0 && width > 0 && channels > 0, "Image shape must be positive")
    self.height = height
    self.width = width
    self.channels = channels
  }

  /// Scalars in one image.
  public var features: Int { height * width * channels }

  /// The shape as `HxWxC`, for example `28x28x1`.
  public var description: String { "\(height)x\(width)x\(channels)" }
}
