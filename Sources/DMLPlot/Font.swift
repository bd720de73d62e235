import CFreeType
import Foundation

/// An error drawing a plot, naming what is wrong.
public struct PlotError: Error, CustomStringConvertible, Equatable {
  /// The message naming what is wrong.
  public let description: String
  /// Creates an error with the message `description`.
  public init(_ description: String) { self.description = description }
}

/// Anti-aliased text from a TrueType font, rendered by FreeType.
///
/// The default font is DejaVu Sans from Debian's `fonts-dejavu-core`; the environment variable
/// `DML_FONT` names another TrueType or OpenType file.
public final class Font {
  /// Where the default font is looked for, in order.
  public static let searchPaths = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
  ]

  struct Glyph {
    var width: Int, rows: Int, left: Int, top: Int, advance: Int
    var coverage: [UInt8]
  }

  private var library: FT_Library?
  private var face: FT_Face?
  private var cache: [Character: Glyph] = [:]
  /// The pixel size of the em square.
  public let size: Int

  /// Opens the font at `path` (default: `DML_FONT`, else the first of ``searchPaths`` that exists).
  public init(size: Int, path: String? = nil) throws {
    let chosen = path ?? ProcessInfo.processInfo.environment["DML_FONT"] ?? Font.searchPaths.first { FileManager.default.fileExists(atPath: $0) }
    guard let chosen else {
      throw PlotError("no font for plot text: install Debian's fonts-dejavu-core or set DML_FONT to a .ttf file")
    }
    self.size = size
    guard FT_Init_FreeType(&library) == 0 else { throw PlotError("FreeType failed to initialise") }
    guard FT_New_Face(library, chosen, 0, &face) == 0, face != nil else {
      FT_Done_FreeType(library)
      throw PlotError("\(chosen): not a font FreeType can read")
    }
    FT_Set_Pixel_Sizes(face, 0, FT_UInt(size))
  }

  deinit {
    if let face { FT_Done_Face(face) }
    if let library { FT_Done_FreeType(library) }
  }

  func glyph(_ c: Character) -> Glyph {
    if let g = cache[c] { return g }
    var g = Glyph(width: 0, rows: 0, left: 0, top: 0, advance: size / 2, coverage: [])
    if let scalar = c.unicodeScalars.first, let face, FT_Load_Char(face, FT_ULong(scalar.value), FT_Int32(FT_LOAD_RENDER)) == 0,
      let slot = face.pointee.glyph
    {
      let bitmap = slot.pointee.bitmap
      g.width = Int(bitmap.width)
      g.rows = Int(bitmap.rows)
      g.left = Int(slot.pointee.bitmap_left)
      g.top = Int(slot.pointee.bitmap_top)
      g.advance = Int(slot.pointee.advance.x) >> 6
      if let buffer = bitmap.buffer, g.width > 0 {
        let pitch = Int(bitmap.pitch)
        for r in 0..<g.rows { for col in 0..<g.width { g.coverage.append(buffer[r * pitch + col]) } }
      }
    }
    cache[c] = g
    return g
  }

  /// The advance width of `text` in pixels.
  public func width(of text: String) -> Int { text.reduce(0) { $0 + glyph($1).advance } }

  /// The distance from the baseline to the top of capitals, in pixels.
  public var ascent: Int { glyph("H").top }

  /// Horizontal placement of text relative to its anchor.
  public enum Alignment: Sendable {
    /// The text starts at the anchor.
    case left
    /// The text is centred on the anchor.
    case center
    /// The text ends at the anchor.
    case right
  }

  /// Draws `text` with its baseline at `y`, anchored at `x`.
  public func draw(_ text: String, x: Int, baseline y: Int, alignment: Alignment = .left, color: Color = .black, into image: inout RGBImage) {
    var pen = x
    switch alignment {
    case .left: break
    case .center: pen -= width(of: text) / 2
    case .right: pen -= width(of: text)
    }
    for c in text {
      let g = glyph(c)
      for r in 0..<g.rows {
        for col in 0..<g.width {
          let a = g.coverage[r * g.width + col]
          if a > 0 { image.blend(pen + g.left + col, y - g.top + r, color, alpha: Double(a) / 255) }
        }
      }
      pen += g.advance
    }
  }

  /// Draws `text` rotated a quarter turn anticlockwise (reading upwards), centred vertically on
  /// `y` with its baseline at column `x`: the label of a vertical axis.
  public func drawVertical(_ text: String, x: Int, centerY y: Int, color: Color = .black, into image: inout RGBImage) {
    var pen = y + width(of: text) / 2
    for c in text {
      let g = glyph(c)
      for r in 0..<g.rows {
        for col in 0..<g.width {
          let a = g.coverage[r * g.width + col]
          // Glyph (col, r) relative to the pen: along the text goes up, glyph-up goes left.
          if a > 0 { image.blend(x - g.top + r, pen - g.left - col, color, alpha: Double(a) / 255) }
        }
      }
      pen -= g.advance
    }
  }
}
