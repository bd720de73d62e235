/// The shape of one image in a batch row: height, width and channels, stored NHWC.
public struct ImageShape: Sendable, Equatable, Codable, CustomStringConvertible {
  public var height: Int
  public var width: Int
  public var channels: Int

  public init(height: Int, width: Int, channels: Int) {
    precondition(height > 0 && width > 0 && channels > 0, "Image shape must be positive")
    self.height = height
    self.width = width
    self.channels = channels
  }

  /// Scalars in one image.
  public var features: Int { height * width * channels }

  public var description: String { "\(height)x\(width)x\(channels)" }
}
