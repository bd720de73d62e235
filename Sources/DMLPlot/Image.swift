import Foundation

/// An sRGB colour, 8 bits per channel.
public struct Color: Hashable, Sendable, CustomStringConvertible {
  /// The red channel, 0–255.
  public var red: UInt8
  /// The green channel, 0–255.
  public var green: UInt8
  /// The blue channel, 0–255.
  public var blue: UInt8

  /// A colour from its red, green and blue channels, 0–255 each.
  public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
    self.red = red
    self.green = green
    self.blue = blue
  }

  /// A colour from `0xRRGGBB`.
  public init(hex: UInt32) {
    self.init(UInt8((hex >> 16) & 0xFF), UInt8((hex >> 8) & 0xFF), UInt8(hex & 0xFF))
  }

  /// White, `#FFFFFF`: the default background.
  public static let white = Color(255, 255, 255)
  /// Black, `#000000`.
  public static let black = Color(0, 0, 0)
  /// Mid grey, `#808080`.
  public static let gray = Color(128, 128, 128)
  /// Light grey, `#E1E1E1`: grid lines and legend frames.
  public static let lightGray = Color(225, 225, 225)
  /// Okabe-Ito bluish green and vermillion: the match and mismatch frames of retrieval grids,
  /// distinguishable with the common colour-vision deficiencies.
  public static let match = Color(hex: 0x009E73)
  /// Okabe-Ito vermillion, `#D55E00`: the frame of a retrieved item whose label differs from the
  /// query's.
  public static let mismatch = Color(hex: 0xD55E00)

  /// The colour as `#RRGGBB` in upper-case hexadecimal.
  public var description: String { String(format: "#%02X%02X%02X", red, green, blue) }
}

/// Class colours for plots: the Okabe-Ito palette (Okabe and Ito 2008), chosen to stay distinct
/// for viewers with deuteranopia, protanopia and tritanopia, followed by four more colours from
/// Paul Tol's palettes for up to 12 classes. Beyond 12, colours repeat and the marker shape
/// (circle, square, triangle, diamond) tells the classes apart.
public enum Palette {
  /// The 12 class colours, in order: the eight Okabe-Ito colours, then four of Paul Tol's.
  public static let colors: [Color] = [
    0xE69F00, 0x56B4E9, 0x009E73, 0xF0E442, 0x0072B2, 0xD55E00, 0xCC79A7, 0x000000,
    0x882255, 0x999933, 0x888888, 0x44AA99,
  ].map { Color(hex: $0) }

  /// The colour of the `index`-th class.
  public static func color(_ index: Int) -> Color { colors[index % colors.count] }
  /// The marker of the `index`-th class.
  public static func marker(_ index: Int) -> Marker { Marker.allCases[(index / colors.count) % Marker.allCases.count] }
}

/// A marker shape for scatter plots.
public enum Marker: CaseIterable, Sendable {
  /// A filled disc.
  case circle
  /// A filled square.
  case square
  /// A filled triangle, point up.
  case triangle
  /// A filled square turned 45°.
  case diamond
}

/// An RGB raster image, 8 bits per channel, row-major from the top-left corner.
///
/// Drawing clips to the image, and shapes are anti-aliased by coverage where it matters for
/// legibility (markers, lines, text).
public struct RGBImage: Sendable, Equatable {
  /// The width in pixels.
  public let width: Int
  /// The height in pixels.
  public let height: Int
  /// `width × height × 3` bytes.
  public var pixels: [UInt8]

  /// A `width × height` image filled with `background` (white by default); both sizes must be positive.
  public init(width: Int, height: Int, background: Color = .white) {
    precondition(width > 0 && height > 0, "RGBImage: \(width)x\(height) is empty")
    self.width = width
    self.height = height
    pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      pixels[3 * i] = background.red
      pixels[3 * i + 1] = background.green
      pixels[3 * i + 2] = background.blue
    }
  }

  /// The colour at `(x, y)`.
  public subscript(x: Int, y: Int) -> Color {
    get {
      let o = 3 * (y * width + x)
      return Color(pixels[o], pixels[o + 1], pixels[o + 2])
    }
    set {
      let o = 3 * (y * width + x)
      pixels[o] = newValue.red
      pixels[o + 1] = newValue.green
      pixels[o + 2] = newValue.blue
    }
  }

  /// Mixes `color` into `(x, y)` with opacity `alpha` in 0...1; outside the image, nothing.
  @inline(__always)
  public mutating func blend(_ x: Int, _ y: Int, _ color: Color, alpha: Double) {
    guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
    let a = Swift.min(alpha, 1)
    let o = 3 * (y * width + x)
    func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) * (1 - a) + Double(new) * a).rounded()) }
    pixels[o] = mix(pixels[o], color.red)
    pixels[o + 1] = mix(pixels[o + 1], color.green)
    pixels[o + 2] = mix(pixels[o + 2], color.blue)
  }

  /// Fills the rectangle `[x, x + w) × [y, y + h)`.
  public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ color: Color) {
    let x0 = Swift.max(0, x), y0 = Swift.max(0, y)
    let x1 = Swift.min(width, x + w), y1 = Swift.min(height, y + h)
    guard x0 < x1, y0 < y1 else { return }
    for yy in y0..<y1 { for xx in x0..<x1 { self[xx, yy] = color } }
  }

  /// Draws the outline of a rectangle, `thickness` pixels inward.
  public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, thickness: Int = 1, _ color: Color) {
    fillRect(x: x, y: y, width: w, height: thickness, color)
    fillRect(x: x, y: y + h - thickness, width: w, height: thickness, color)
    fillRect(x: x, y: y, width: thickness, height: h, color)
    fillRect(x: x + w - thickness, y: y, width: thickness, height: h, color)
  }

  /// An anti-aliased line of the given width, by distance to the segment.
  public mutating func line(from a: (x: Double, y: Double), to b: (x: Double, y: Double), width lw: Double = 1.5, _ color: Color) {
    guard a.x.isFinite, a.y.isFinite, b.x.isFinite, b.y.isFinite, lw.isFinite, lw > 0 else { return }
    let r = lw / 2
    // Outside the image, or far beyond it: nothing to draw (and no out-of-range Int conversion).
    guard Swift.max(a.x, b.x) + r >= 0, Swift.min(a.x, b.x) - r < Double(width), Swift.max(a.y, b.y) + r >= 0,
      Swift.min(a.y, b.y) - r < Double(height), abs(a.x) < 1e7, abs(a.y) < 1e7, abs(b.x) < 1e7, abs(b.y) < 1e7
    else { return }
    let minX = Int((Swift.min(a.x, b.x) - r - 1).rounded(.down)), maxX = Int((Swift.max(a.x, b.x) + r + 1).rounded(.up))
    let minY = Int((Swift.min(a.y, b.y) - r - 1).rounded(.down)), maxY = Int((Swift.max(a.y, b.y) + r + 1).rounded(.up))
    let dx = b.x - a.x, dy = b.y - a.y
    let length2 = dx * dx + dy * dy
    for y in Swift.max(0, minY)...Swift.max(0, Swift.min(height - 1, maxY)) {
      for x in Swift.max(0, minX)...Swift.max(0, Swift.min(width - 1, maxX)) {
        let px = Double(x) + 0.5, py = Double(y) + 0.5
        var t = length2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / length2 : 0
        t = Swift.min(1, Swift.max(0, t))
        let cx = a.x + t * dx - px, cy = a.y + t * dy - py
        let distance = (cx * cx + cy * cy).squareRoot()
        blend(x, y, color, alpha: r + 0.5 - distance)
      }
    }
  }

  /// A filled, anti-aliased marker of radius `r` centred at `(cx, cy)`.
  public mutating func marker(_ shape: Marker, at cx: Double, _ cy: Double, radius r: Double, _ color: Color, alpha: Double = 1) {
    guard cx.isFinite, cy.isFinite, r.isFinite, r > 0, cx + r >= -1, cy + r >= -1, cx - r <= Double(width) + 1, cy - r <= Double(height) + 1
    else { return }
    let x0 = Int((cx - r - 1).rounded(.down)), x1 = Int((cx + r + 1).rounded(.up))
    let y0 = Int((cy - r - 1).rounded(.down)), y1 = Int((cy + r + 1).rounded(.up))
    for y in y0...y1 {
      for x in x0...x1 {
        let px = Double(x) + 0.5 - cx, py = Double(y) + 0.5 - cy
        // The signed distance to the shape's edge, in pixels (negative inside).
        let edge: Double
        switch shape {
        case .circle: edge = (px * px + py * py).squareRoot() - r
        case .square: edge = Swift.max(abs(px), abs(py)) - r * 0.85
        case .diamond: edge = (abs(px) + abs(py)) / 2.squareRoot() - r * 0.8
        case .triangle:
          // Upward equilateral triangle: three half-planes at the in-radius from the centre.
          let slanted = Swift.max(0.866 * px - 0.5 * py, -0.866 * px - 0.5 * py)
          edge = Swift.max(py, slanted) - r * 0.6
        }
        blend(x, y, color, alpha: alpha * Swift.min(1, Swift.max(0, 0.5 - edge)))
      }
    }
  }

  /// Draws a grayscale image (values in 0...1, row-major) scaled by an integer factor with its
  /// top-left corner at `(x, y)`; `invert` draws 1 as black (Fashion-MNIST's white-on-black as
  /// black-on-white), and `stretch` first maps the image's own range onto 0...1 (for normalised
  /// data).
  public mutating func drawGray(
    _ values: UnsafeBufferPointer<Float>, width w: Int, height h: Int, at x: Int, _ y: Int, scale: Int = 1, invert: Bool = false,
    stretch: Bool = false
  ) {
    var low: Float = 0, high: Float = 1
    if stretch {
      low = values.min() ?? 0
      high = values.max() ?? 1
    }
    for r in 0..<(h * scale) {
      for c in 0..<(w * scale) {
        let xx = x + c, yy = y + r
        guard xx >= 0, yy >= 0, xx < width, yy < height else { continue }
        let raw = values[(r / scale) * w + c / scale]
        var v = Double(stretch ? (high > low ? (raw - low) / (high - low) : 0) : raw)
        v = Swift.min(1, Swift.max(0, v))
        if invert { v = 1 - v }
        let g = UInt8((v * 255).rounded())
        self[xx, yy] = Color(g, g, g)
      }
    }
  }

  /// Draws an RGB image of `w × h` pixels (values interleaved per pixel, red, green, blue) with
  /// its top-left corner at `(x, y)`, each pixel as a `scale × scale` block. Values in 0...1 are
  /// drawn as they are; with `stretch`, the image's lowest and highest values (over all channels,
  /// so that hues keep their balance) map to 0 and 1.
  public mutating func drawRGB(
    _ values: UnsafeBufferPointer<Float>, width w: Int, height h: Int, at x: Int, _ y: Int, scale: Int = 1, stretch: Bool = false
  ) {
    var low: Float = 0, high: Float = 1
    if stretch {
      low = values.min() ?? 0
      high = values.max() ?? 1
    }
    func level(_ raw: Float) -> UInt8 {
      let v = stretch ? (high > low ? (raw - low) / (high - low) : 0) : raw
      return UInt8((Double(Swift.min(1, Swift.max(0, v))) * 255).rounded())
    }
    for r in 0..<(h * scale) {
      for c in 0..<(w * scale) {
        let xx = x + c, yy = y + r
        guard xx >= 0, yy >= 0, xx < width, yy < height else { continue }
        let o = ((r / scale) * w + c / scale) * 3
        self[xx, yy] = Color(level(values[o]), level(values[o + 1]), level(values[o + 2]))
      }
    }
  }

  /// The distinct colours in the image.
  public var distinctColors: Set<Color> {
    var s = Set<Color>()
    for i in 0..<(width * height) { s.insert(Color(pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2])) }
    return s
  }
}
