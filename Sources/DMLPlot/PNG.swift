import CZlib
import DMLData
import Foundation

/// PNG files (ISO/IEC 15948): 8-bit RGB, no interlacing, compressed with zlib.
///
/// The chunk framing is written here; zlib (Debian's zlib1g) does the deflate stream and the
/// CRC-32s. Each row uses the filter the PNG specification's heuristic picks (the one with the
/// least sum of absolute residuals), which keeps plots with flat areas small.
public enum PNG {
  /// An error reading a PNG file, naming what is wrong.
  public struct Error: Swift.Error, CustomStringConvertible, Equatable {
    /// The message naming what is wrong.
    public let description: String
    init(_ description: String) { self.description = description }
  }

  static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

  /// The PNG encoding of `image`.
  public static func encode(_ image: RGBImage) -> [UInt8] {
    let stride = image.width * 3
    var raw = [UInt8]()
    raw.reserveCapacity((stride + 1) * image.height)
    var candidate = [UInt8](repeating: 0, count: stride)
    var best = [UInt8](repeating: 0, count: stride)
    image.pixels.withUnsafeBufferPointer { p in
      for y in 0..<image.height {
        let row = y * stride
        var bestFilter: UInt8 = 0
        var bestCost = Int.max
        for filter: UInt8 in 0...4 {
          var cost = 0
          for i in 0..<stride {
            let x = p[row + i]
            let a = i >= 3 ? p[row + i - 3] : 0
            let b = y > 0 ? p[row - stride + i] : 0
            let c = (i >= 3 && y > 0) ? p[row - stride + i - 3] : 0
            let v = x &- predict(filter, a, b, c)
            candidate[i] = v
            cost += v < 128 ? Int(v) : 256 - Int(v)
          }
          if cost < bestCost {
            bestCost = cost
            bestFilter = filter
            swap(&best, &candidate)
          }
        }
        raw.append(bestFilter)
        raw.append(contentsOf: best)
      }
    }
    var out = signature
    var header = [UInt8]()
    header += bigEndian(UInt32(image.width)) + bigEndian(UInt32(image.height))
    header += [8, 2, 0, 0, 0]  // depth 8, colour type 2 (RGB), deflate, adaptive filters, no interlace
    appendChunk("IHDR", header, to: &out)
    appendChunk("IDAT", deflate(raw), to: &out)
    appendChunk("IEND", [], to: &out)
    return out
  }

  /// Writes `image` to `path` as PNG, atomically.
  public static func write(_ image: RGBImage, to path: String) throws {
    try atomicWrite(Data(encode(image)), to: path)
  }

  /// Decodes a PNG written by ``encode(_:)`` (8-bit RGB, not interlaced), checking the signature,
  /// every chunk's CRC, the header and the size of the pixel data. Tests use it to check the
  /// structure of the files the plots write.
  public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
    guard bytes.count >= 8, Array(bytes[0..<8]) == signature else { throw Error("not a PNG file (bad signature)") }
    var offset = 8
    var width = 0, height = 0
    var idat = [UInt8]()
    var sawEnd = false
    while offset < bytes.count {
      guard offset + 12 <= bytes.count else { throw Error("truncated chunk at byte \(offset)") }
      let length = Int(readBigEndian(bytes, offset))
      guard length <= bytes.count - offset - 12 else { throw Error("chunk at byte \(offset) runs past the end") }
      let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
      let data = Array(bytes[(offset + 8)..<(offset + 8 + length)])
      let stored = readBigEndian(bytes, offset + 8 + length)
      guard stored == crc(Array(bytes[(offset + 4)..<(offset + 8 + length)])) else { throw Error("\(type) chunk: CRC mismatch") }
      switch type {
      case "IHDR":
        guard length == 13 else { throw Error("IHDR has \(length) bytes, not 13") }
        width = Int(readBigEndian(data, 0))
        height = Int(readBigEndian(data, 4))
        guard data[8] == 8, data[9] == 2, data[12] == 0 else {
          throw Error("only 8-bit RGB without interlacing is read (depth \(data[8]), colour type \(data[9]))")
        }
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else { throw Error("size \(width)x\(height) out of range") }
      case "IDAT": idat += data
      case "IEND": sawEnd = true
      default: break
      }
      offset += length + 12
      if sawEnd { break }
    }
    guard width > 0 else { throw Error("no IHDR chunk") }
    guard sawEnd else { throw Error("no IEND chunk") }
    let stride = width * 3
    let raw = try inflate(idat, expected: (stride + 1) * height)
    var image = RGBImage(width: width, height: height)
    for y in 0..<height {
      let filter = raw[y * (stride + 1)]
      guard filter <= 4 else { throw Error("row \(y): unknown filter \(filter)") }
      for i in 0..<stride {
        let v = raw[y * (stride + 1) + 1 + i]
        let a = i >= 3 ? image.pixels[y * stride + i - 3] : 0
        let b = y > 0 ? image.pixels[(y - 1) * stride + i] : 0
        let c = (i >= 3 && y > 0) ? image.pixels[(y - 1) * stride + i - 3] : 0
        image.pixels[y * stride + i] = v &+ predict(filter, a, b, c)
      }
    }
    return image
  }

  /// Reads and decodes a PNG file.
  public static func read(_ path: String) throws -> RGBImage {
    guard let data = FileManager.default.contents(atPath: path) else { throw Error("\(path): cannot read") }
    do { return try decode([UInt8](data)) } catch let e as Error { throw Error("\(path): \(e.description)") }
  }

  /// The value PNG filter `filter` predicts from the left (`a`), upper (`b`) and upper-left (`c`)
  /// bytes: none, sub, up, average or Paeth.
  @inline(__always)
  static func predict(_ filter: UInt8, _ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
    switch filter {
    case 0: return 0
    case 1: return a
    case 2: return b
    case 3: return UInt8((Int(a) + Int(b)) / 2)
    default: return paeth(a, b, c)
    }
  }

  static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
    let p = Int(a) + Int(b) - Int(c)
    let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
    if pa <= pb && pa <= pc { return a }
    return pb <= pc ? b : c
  }

  static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

  static func readBigEndian(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
  }

  static func crc(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
  }

  static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
    let typed = Array(type.utf8) + data
    out += bigEndian(UInt32(data.count))
    out += typed
    out += bigEndian(crc(typed))
  }

  static func deflate(_ raw: [UInt8]) -> [UInt8] {
    var size = compressBound(uLong(raw.count))
    var out = [UInt8](repeating: 0, count: Int(size))
    let status = raw.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in compress2(dst.baseAddress, &size, src.baseAddress, uLong(src.count), 9) }
    }
    precondition(status == Z_OK, "zlib compress2 failed with status \(status)")
    out.removeSubrange(Int(size)...)
    return out
  }

  static func inflate(_ compressed: [UInt8], expected: Int) throws -> [UInt8] {
    var size = uLong(expected)
    var out = [UInt8](repeating: 0, count: expected)
    let status = compressed.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in uncompress(dst.baseAddress, &size, src.baseAddress, uLong(src.count)) }
    }
    guard status == Z_OK else { throw Error("corrupt or oversized pixel data (zlib status \(status))") }
    guard Int(size) == expected else { throw Error("pixel data has \(size) bytes, the header implies \(expected)") }
    return out
  }
}
