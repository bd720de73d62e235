import CImageIO
import Foundation

/// An error reading or writing an image, naming the file (when there is one) and the reason.
public struct ImageError: Error, CustomStringConvertible, Equatable {
  /// The message, naming the file and what is wrong.
  public let description: String
  /// An error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// An image of 8-bit samples: `height` rows of `width` pixels of `channels` values (1 grey,
/// 3 RGB), stored row-major with the channels innermost (the layout of the library's networks).
public struct PixelImage: Sendable, Equatable {
  /// Columns of pixels.
  public var width: Int
  /// Rows of pixels.
  public var height: Int
  /// Values per pixel: 1 (grey) or 3 (RGB).
  public var channels: Int
  /// `height × width × channels` samples.
  public var pixels: [UInt8]

  /// An image of the given size and samples; `pixels.count` must be `width × height × channels`.
  public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    precondition(width > 0 && height > 0 && (channels == 1 || channels == 3), "PixelImage: \(width)x\(height)x\(channels)")
    precondition(pixels.count == width * height * channels, "PixelImage: \(pixels.count) samples for \(width)x\(height)x\(channels)")
    self.width = width
    self.height = height
    self.channels = channels
    self.pixels = pixels
  }

  /// The largest image, in pixels, that decoding or resizing makes (2²⁸, as the decoders' limit).
  public static let maxPixels = 1 << 28

  /// This image resampled to `width × height` (FFmpeg's swscale, bilinear, averaging when
  /// shrinking, as PIL's `BILINEAR` that torchvision uses). An error when the size is not
  /// positive, exceeds ``maxPixels``, or swscale refuses it.
  public func resized(width w: Int, height h: Int) throws -> PixelImage {
    guard w > 0 && h > 0 && w <= Self.maxPixels / h else {
      throw ImageError("cannot resize a \(width)x\(height) image to \(w)x\(h) (at most \(Self.maxPixels) pixels)")
    }
    if w == width && h == height { return self }
    var out = [UInt8](repeating: 0, count: w * h * channels)
    let rc = pixels.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        dml_image_resize(src.baseAddress, Int32(width), Int32(height), Int32(channels), dst.baseAddress, Int32(w), Int32(h))
      }
    }
    guard rc == 0 else { throw ImageError("swscale cannot resize a \(width)x\(height) image to \(w)x\(h)") }
    return PixelImage(width: w, height: h, channels: channels, pixels: out)
  }

  /// The `w × h` window whose top-left pixel is `(x, y)`; the window must lie inside the image.
  public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> PixelImage {
    precondition(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= width && y + h <= height, "crop \(w)x\(h) at (\(x), \(y)) of \(width)x\(height)")
    var out = [UInt8]()
    out.reserveCapacity(w * h * channels)
    for row in y..<(y + h) {
      let start = (row * width + x) * channels
      out += pixels[start..<(start + w * channels)]
    }
    return PixelImage(width: w, height: h, channels: channels, pixels: out)
  }

  /// This image with `channels` channels: grey repeated into RGB, or RGB to grey with PIL's
  /// `convert("L")` weights (ITU-R 601-2: 299, 587, 114 per mille, rounded).
  public func converted(toChannels c: Int) -> PixelImage {
    precondition(c == 1 || c == 3, "channels \(c)")
    if c == channels { return self }
    if c == 3 { return PixelImage(width: width, height: height, channels: 3, pixels: pixels.flatMap { [$0, $0, $0] }) }
    var out = [UInt8](repeating: 0, count: width * height)
    for i in out.indices {
      let r = UInt32(pixels[3 * i]), g = UInt32(pixels[3 * i + 1]), b = UInt32(pixels[3 * i + 2])
      out[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
    }
    return PixelImage(width: width, height: height, channels: 1, pixels: out)
  }
}

/// Reading and writing JPEG and PNG files through libjpeg-turbo, libexif and libpng.
public enum ImageFile {
  /// Decodes a JPEG or PNG file's bytes: JPEG baseline or progressive, grey or colour, with its
  /// EXIF orientation applied (CMYK refused by name, a truncated file an error); PNG grey, RGB,
  /// with alpha (dropped), palette (to RGB), 1 to 16 bits (16-bit samples keep their high byte),
  /// interlaced. `name` names the file in errors.
  public static func decode(_ bytes: [UInt8], name: String) throws -> PixelImage {
    try decode(bytes, name: name, minWidth: 0, minHeight: 0)
  }

  /// `decode(_:name:)`, but a JPEG decodes at the smallest of libjpeg-turbo's DCT scales 1/8, 1/4,
  /// 1/2 and 1 at which it is still at least `minWidth × minHeight` as displayed (after its EXIF
  /// orientation): far less work when the network takes small images.
  public static func decode(_ bytes: [UInt8], name: String, minWidth: Int, minHeight: Int) throws -> PixelImage {
    var image = dml_image()
    var error = [CChar](repeating: 0, count: 512)
    let rc = bytes.withUnsafeBufferPointer { dml_image_decode_scaled($0.baseAddress, $0.count, Int32(minWidth), Int32(minHeight), &image, &error, 512) }
    guard rc == 0, let pixels = image.pixels else {
      throw ImageError("\(name): \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
    }
    defer { dml_image_free(&image) }
    let count = Int(image.width) * Int(image.height) * Int(image.channels)
    return PixelImage(
      width: Int(image.width), height: Int(image.height), channels: Int(image.channels),
      pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
  }

  /// Reads and decodes the image at `path`; the error names the path and the reason (missing,
  /// unreadable, empty, not an image, broken).
  public static func read(_ path: String) throws -> PixelImage {
    try decode(try bytes(path), name: path)
  }

  /// The bytes of the file at `path`; the error names the path and the reason.
  public static func bytes(_ path: String) throws -> [UInt8] {
    let fm = FileManager.default
    var isFolder: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isFolder) else { throw ImageError("\(path): no such file") }
    guard !isFolder.boolValue else { throw ImageError("\(path): a folder, not an image file") }
    guard fm.isReadableFile(atPath: path), let data = fm.contents(atPath: path) else { throw ImageError("\(path): cannot be read (permissions?)") }
    return [UInt8](data)
  }

  /// A JPEG's width and height as displayed (turned by its EXIF orientation) from its header
  /// alone, or `nil` for other bytes.
  public static func jpegSize(_ bytes: [UInt8]) -> (width: Int, height: Int)? {
    var w: Int32 = 0, h: Int32 = 0
    let rc = bytes.withUnsafeBufferPointer { dml_jpeg_size($0.baseAddress, $0.count, &w, &h) }
    return rc == 0 && w > 0 && h > 0 ? (Int(w), Int(h)) : nil
  }

  /// The PNG encoding of `image` (8-bit, grey or RGB).
  public static func png(_ image: PixelImage) throws -> [UInt8] {
    try encode(image) { p, w, h, c, out, size, error in dml_png_encode(p, w, h, c, out, size, error, 512) }
  }

  /// The JPEG encoding of `image` at `quality` (1...100; 4:2:0 chroma for colour).
  public static func jpeg(_ image: PixelImage, quality: Int = 90) throws -> [UInt8] {
    try encode(image) { p, w, h, c, out, size, error in dml_jpeg_encode(p, w, h, c, Int32(quality), out, size, error, 512) }
  }

  static func encode(
    _ image: PixelImage,
    _ call: (UnsafePointer<UInt8>?, Int32, Int32, Int32, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>) -> Int32
  ) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>?
    var size = 0
    var error = [CChar](repeating: 0, count: 512)
    let rc = image.pixels.withUnsafeBufferPointer { p in
      error.withUnsafeMutableBufferPointer { e in call(p.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels), &out, &size, e.baseAddress!) }
    }
    guard rc == 0, let out else { throw ImageError(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
    defer { dml_buffer_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: size))
  }

  /// Whether `path` names a JPEG or PNG file by its extension (case-insensitive).
  public static func isImagePath(_ path: String) -> Bool {
    let e = (path as NSString).pathExtension.lowercased()
    return e == "jpg" || e == "jpeg" || e == "png"
  }
}
