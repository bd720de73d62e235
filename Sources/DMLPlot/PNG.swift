import DMLData
import Foundation

/// PNG files of pictures, through libpng (Debian's libpng-dev), by way of `ImageFile`.
public enum PNG {
  /// An error reading a PNG file, naming what is wrong.
  public struct Error: Swift.Error, CustomStringConvertible, Equatable {
    /// The message naming what is wrong.
    public let description: String
    init(_ description: String) { self.description = description }
  }

  /// The PNG encoding of `image` (8-bit RGB), by libpng.
  public static func encode(_ image: RGBImage) -> [UInt8] {
    // libpng fails only for sizes an RGBImage cannot have.
    do { return try ImageFile.png(PixelImage(width: image.width, height: image.height, channels: 3, pixels: image.pixels)) } catch {
      preconditionFailure("PNG encoding of a \(image.width)x\(image.height) picture: \(error)")
    }
  }

  /// Writes `image` to `path` as PNG, atomically.
  public static func write(_ image: RGBImage, to path: String) throws {
    try atomicWrite(Data(encode(image)), to: path)
  }

  /// Decodes a PNG file's bytes by libpng (grey images become RGB); an error says what is wrong.
  public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
    guard bytes.count >= 8, bytes[0] == 0x89, bytes[1] == 0x50 else { throw Error("not a PNG file (bad signature)") }
    let decoded: PixelImage
    do { decoded = try ImageFile.decode(bytes, name: "PNG").converted(toChannels: 3) } catch { throw Error("\(error)") }
    var image = RGBImage(width: decoded.width, height: decoded.height)
    image.pixels = decoded.pixels
    return image
  }

  /// Reads and decodes a PNG file.
  public static func read(_ path: String) throws -> RGBImage {
    guard let data = FileManager.default.contents(atPath: path) else { throw Error("\(path): cannot read") }
    do { return try decode([UInt8](data)) } catch let e as Error { throw Error("\(path): \(e.description)") }
  }
}
