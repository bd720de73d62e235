import Foundation

/// What happens to a decoded image before a network sees it, as torchvision's transforms: a list
/// of steps declared as `name:key=value,...`, applied in order, then the conversion to floats,
/// `(x / 255 − mean) / std` per channel.
///
/// Steps: `resize:size=S` (the shorter side to `S`, the aspect kept), `center-crop:size=S`,
/// `random-resized-crop:size=S,scale=0.08/1,ratio=0.75/1.333` (torchvision's: ten tries at an area
/// share and aspect ratio drawn log-uniformly, then the centre), `flip:p=0.5` (horizontal),
/// `color-jitter:brightness=B,contrast=C,saturation=S,hue=H` (factors drawn in `[1−B, 1+B]`, the
/// shift of hue in `[−H, H]`, applied in a random order), `grey` (to one channel), `rgb` (to three),
/// and `normalize:mean=M1/M2/M3,std=S1/S2/S3` (`normalize` alone: ImageNet's).
///
/// Random steps draw from the generator they are given: the loader gives each sample a stream of
/// the seed, the step and its place, so that a sample is transformed the same way whichever
/// worker decodes it.
public struct ImageTransforms: Sendable, Equatable, CustomStringConvertible {
  /// One step.
  public enum Step: Sendable, Equatable {
    /// The shorter side to `size`.
    case resize(size: Int)
    /// The central `size × size` window (after padding with black if the image is smaller).
    case centerCrop(size: Int)
    /// torchvision's RandomResizedCrop to `size × size`.
    case randomResizedCrop(size: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>)
    /// A horizontal mirror with probability `p`.
    case flip(p: Double)
    /// torchvision's ColorJitter.
    case colorJitter(brightness: Double, contrast: Double, saturation: Double, hue: Double)
    /// To one channel (PIL's `convert("L")`).
    case grey
    /// To three channels.
    case rgb
  }
  /// The steps, in order.
  public var steps: [Step]
  /// Per-channel mean and standard deviation of the float conversion (one value, or one per
  /// channel); `[0]` and `[1]` give `x / 255`.
  public var mean: [Float], std: [Float]
  /// The text the transforms were parsed from.
  public let text: String

  /// Parses `text`; an error names the step or the value at fault.
  public init(parsing text: String) throws {
    self.text = text
    steps = []
    mean = [0]
    std = [1]
    var groups: [(String, [String: String])] = []
    for raw in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard !raw.isEmpty else { throw DataError("transforms '\(text)': an empty step") }
      if let colon = raw.firstIndex(of: ":") {
        let name = String(raw[..<colon]), rest = String(raw[raw.index(after: colon)...])
        groups.append((name, [:]))
        try Self.add(rest, to: &groups, text)
      } else if raw.contains("=") {
        guard !groups.isEmpty else { throw DataError("transforms '\(text)': '\(raw)' belongs to no step") }
        try Self.add(raw, to: &groups, text)
      } else {
        groups.append((raw, [:]))
      }
    }
    for (name, values) in groups {
      func number(_ key: String, _ fallback: Double?, _ valid: (Double) -> Bool = { $0.isFinite }) throws -> Double {
        guard let t = values[key] else {
          guard let fallback else { throw DataError("transforms '\(text)': \(name) needs \(key)=") }
          return fallback
        }
        guard let v = Double(t), valid(v) else { throw DataError("transforms '\(text)': \(name) \(key)=\(t) is out of range") }
        return v
      }
      func size() throws -> Int { Int(try number("size", nil) { $0 >= 1 && $0 <= 8192 && $0 == $0.rounded() }) }
      func pair(_ key: String, _ fallback: ClosedRange<Double>) throws -> ClosedRange<Double> {
        guard let t = values[key] else { return fallback }
        let parts = t.split(separator: "/").compactMap { Double($0) }
        guard parts.count == 2, parts[0] > 0, parts[0] <= parts[1], parts[1].isFinite else {
          throw DataError("transforms '\(text)': \(name) \(key)=\(t) must be LOW/HIGH with 0 < LOW ≤ HIGH")
        }
        return parts[0]...parts[1]
      }
      let allowed: [String: Set<String>] = [
        "resize": ["size"], "center-crop": ["size"], "random-resized-crop": ["size", "scale", "ratio"], "flip": ["p"],
        "color-jitter": ["brightness", "contrast", "saturation", "hue"], "grey": [], "rgb": [], "normalize": ["mean", "std"],
      ]
      guard let keys = allowed[name] else {
        throw DataError("transforms '\(text)': unknown step '\(name)'; the steps: \(allowed.keys.sorted().joined(separator: ", "))")
      }
      if let bad = values.keys.sorted().first(where: { !keys.contains($0) }) {
        throw DataError("transforms '\(text)': \(name) has no \(bad)= (it takes \(keys.sorted().joined(separator: ", ")))")
      }
      switch name {
      case "resize": steps.append(.resize(size: try size()))
      case "center-crop": steps.append(.centerCrop(size: try size()))
      case "random-resized-crop":
        let scale = try pair("scale", 0.08...1)
        guard scale.upperBound <= 1 else { throw DataError("transforms '\(text)': random-resized-crop scale must lie in (0, 1]") }
        steps.append(.randomResizedCrop(size: try size(), scale: scale, ratio: try pair("ratio", 0.75...(4.0 / 3))))
      case "flip": steps.append(.flip(p: try number("p", 0.5) { $0 >= 0 && $0 <= 1 }))
      case "color-jitter":
        steps.append(.colorJitter(
          brightness: try number("brightness", 0) { $0 >= 0 && $0 <= 1 }, contrast: try number("contrast", 0) { $0 >= 0 && $0 <= 1 },
          saturation: try number("saturation", 0) { $0 >= 0 && $0 <= 1 }, hue: try number("hue", 0) { $0 >= 0 && $0 <= 0.5 }))
      case "grey": steps.append(.grey)
      case "rgb": steps.append(.rgb)
      default:  // normalize
        func list(_ key: String, _ fallback: [Float]) throws -> [Float] {
          guard let t = values[key] else { return fallback }
          let v = t.split(separator: "/").compactMap { Float($0) }
          guard (v.count == 1 || v.count == 3), v.count == t.split(separator: "/").count, v.allSatisfy(\.isFinite) else {
            throw DataError("transforms '\(text)': normalize \(key)=\(t) must be one value or three separated by /")
          }
          return v
        }
        mean = try list("mean", [0.485, 0.456, 0.406])
        std = try list("std", [0.229, 0.224, 0.225])
        guard std.allSatisfy({ $0 > 0 }) else { throw DataError("transforms '\(text)': normalize std must be positive") }
      }
    }
  }

  static func add(_ text: String, to groups: inout [(String, [String: String])], _ whole: String) throws {
    guard !text.isEmpty else { return }
    let kv = text.split(separator: "=", maxSplits: 1).map(String.init)
    guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else { throw DataError("transforms '\(whole)': '\(text)' is not key=value") }
    guard groups[groups.count - 1].1[kv[0]] == nil else { throw DataError("transforms '\(whole)': \(kv[0]) given twice") }
    groups[groups.count - 1].1[kv[0]] = kv[1]
  }

  public var description: String { text }

  /// Whether any step draws random numbers.
  public var isRandom: Bool {
    steps.contains {
      switch $0 {
      case .randomResizedCrop, .flip, .colorJitter: true
      default: false
      }
    }
  }

  /// Applies the steps to `image`, drawing from `rng`; an error when a resize would exceed
  /// ``PixelImage/maxPixels`` (a very long, thin image resized by its shorter side).
  public func apply(_ image: PixelImage, rng: inout RandomSource) throws -> PixelImage {
    var x = image
    for step in steps {
      switch step {
      case .resize(let s):
        let (w, h) = x.width <= x.height
          ? (s, Swift.max(1, Int((Double(s) * Double(x.height) / Double(x.width)).rounded(.down))))
          : (Swift.max(1, Int((Double(s) * Double(x.width) / Double(x.height)).rounded(.down))), s)
        x = try x.resized(width: w, height: h)
      case .centerCrop(let s):
        if x.width < s || x.height < s { x = Self.padded(x, to: s) }
        // torchvision's offsets: Python's round, halves to even.
        x = x.cropped(
          x: Int((Double(x.width - s) / 2).rounded(.toNearestOrEven)), y: Int((Double(x.height - s) / 2).rounded(.toNearestOrEven)),
          width: s, height: s)
      case .randomResizedCrop(let s, let scale, let ratio):
        let (cx, cy, cw, ch) = Self.randomWindow(width: x.width, height: x.height, scale: scale, ratio: ratio, rng: &rng)
        x = try x.cropped(x: cx, y: cy, width: cw, height: ch).resized(width: s, height: s)
      case .flip(let p):
        if Double(rng.uniform(Float.self)) < p { x = Self.mirrored(x) }
      case .colorJitter(let b, let c, let s, let h):
        x = Self.jitter(x, brightness: b, contrast: c, saturation: s, hue: h, rng: &rng)
      case .grey: x = x.converted(toChannels: 1)
      case .rgb: x = x.converted(toChannels: 3)
      }
    }
    return x
  }

  /// Writes `image` as floats, `(x / 255 − mean[c]) / std[c]`, into `out` (width × height ×
  /// channels values).
  public func floats(_ image: PixelImage, into out: UnsafeMutableBufferPointer<Float>) {
    let c = image.channels
    precondition(out.count == image.pixels.count, "floats: \(out.count) values for \(image.pixels.count) samples")
    let m = (0..<c).map { mean.count == 1 ? mean[0] : mean[Swift.min($0, mean.count - 1)] }
    let s = (0..<c).map { 1 / (std.count == 1 ? std[0] : std[Swift.min($0, std.count - 1)]) }
    for i in 0..<image.pixels.count {
      let k = i % c
      out[i] = (Float(image.pixels[i]) / 255 - m[k]) * s[k]
    }
  }

  /// torchvision's RandomResizedCrop.get_params: ten tries, then the whole image cropped to the
  /// ratio's bounds.
  static func randomWindow(width: Int, height: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>, rng: inout RandomSource)
    -> (Int, Int, Int, Int)
  {
    let area = Double(width * height)
    let logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
    for _ in 0..<10 {
      let target = area * (scale.lowerBound + Double(rng.uniform(Float.self)) * (scale.upperBound - scale.lowerBound))
      let aspect = exp(logRatio.0 + Double(rng.uniform(Float.self)) * (logRatio.1 - logRatio.0))
      let w = Int((target * aspect).squareRoot().rounded()), h = Int((target / aspect).squareRoot().rounded())
      if w > 0 && h > 0 && w <= width && h <= height {
        return (rng.index(below: width - w + 1), rng.index(below: height - h + 1), w, h)
      }
    }
    let inRatio = Double(width) / Double(height)
    var w = width, h = height
    if inRatio < ratio.lowerBound {
      h = Swift.max(1, Int((Double(w) / ratio.lowerBound).rounded()))
    } else if inRatio > ratio.upperBound {
      w = Swift.max(1, Int((Double(h) * ratio.upperBound).rounded()))
    }
    return ((width - w) / 2, (height - h) / 2, w, h)
  }

  static func padded(_ x: PixelImage, to s: Int) -> PixelImage {
    let w = Swift.max(x.width, s), h = Swift.max(x.height, s)
    var out = [UInt8](repeating: 0, count: w * h * x.channels)
    let ox = (w - x.width) / 2, oy = (h - x.height) / 2
    for row in 0..<x.height {
      let src = row * x.width * x.channels, dst = ((row + oy) * w + ox) * x.channels
      out.replaceSubrange(dst..<(dst + x.width * x.channels), with: x.pixels[src..<(src + x.width * x.channels)])
    }
    return PixelImage(width: w, height: h, channels: x.channels, pixels: out)
  }

  static func mirrored(_ x: PixelImage) -> PixelImage {
    var out = x.pixels
    let c = x.channels
    for row in 0..<x.height {
      for col in 0..<x.width {
        let dst = (row * x.width + col) * c, src = (row * x.width + x.width - 1 - col) * c
        for k in 0..<c { out[dst + k] = x.pixels[src + k] }
      }
    }
    return PixelImage(width: x.width, height: x.height, channels: c, pixels: out)
  }

  /// torchvision's ColorJitter on 8-bit images: brightness blends with black, contrast with the
  /// mean grey level, saturation with the grey image, hue rotates in HSV; in a random order.
  static func jitter(_ x: PixelImage, brightness: Double, contrast: Double, saturation: Double, hue: Double, rng: inout RandomSource) -> PixelImage {
    func factor(_ amount: Double) -> Float { Float(1 - amount + 2 * amount * Double(rng.uniform(Float.self))) }
    var order = [0, 1, 2, 3]
    rng.shuffle(&order)
    var v = x.pixels.map(Float.init)
    let c = x.channels
    func clamp(_ f: Float) -> Float { Swift.min(255, Swift.max(0, f)).rounded() }
    func greyOf(_ i: Int) -> Float {
      c == 1 ? v[i] : (v[3 * i] * 0.299 + v[3 * i + 1] * 0.587 + v[3 * i + 2] * 0.114)
    }
    for step in order {
      switch step {
      case 0 where brightness > 0:
        let f = factor(brightness)
        for i in v.indices { v[i] = clamp(v[i] * f) }
      case 1 where contrast > 0:
        let f = factor(contrast)
        let n = x.width * x.height
        var mean: Float = 0
        for i in 0..<n { mean += greyOf(i) }
        mean = (mean / Float(n)).rounded()
        for i in v.indices { v[i] = clamp(mean + f * (v[i] - mean)) }
      case 2 where saturation > 0 && c == 3:
        let f = factor(saturation)
        for i in 0..<(x.width * x.height) {
          let g = greyOf(i)
          for k in 0..<3 { v[3 * i + k] = clamp(g + f * (v[3 * i + k] - g)) }
        }
      case 3 where hue > 0 && c == 3:
        let shift = Float(-hue + 2 * hue * Double(rng.uniform(Float.self)))
        for i in 0..<(x.width * x.height) {
          let r = v[3 * i] / 255, g = v[3 * i + 1] / 255, b = v[3 * i + 2] / 255
          let maxV = Swift.max(r, g, b), minV = Swift.min(r, g, b), d = maxV - minV
          var h: Float = 0
          if d > 0 {
            if maxV == r { h = ((g - b) / d).truncatingRemainder(dividingBy: 6) } else if maxV == g { h = (b - r) / d + 2 } else { h = (r - g) / d + 4 }
            h /= 6
          }
          h = (h + shift + 2).truncatingRemainder(dividingBy: 1)
          let s = maxV == 0 ? 0 : d / maxV
          let sector = h * 6, k = Int(sector) % 6, fr = sector - Float(Int(sector))
          let p = maxV * (1 - s), q = maxV * (1 - s * fr), t = maxV * (1 - s * (1 - fr))
          let (rr, gg, bb): (Float, Float, Float) = [(maxV, t, p), (q, maxV, p), (p, maxV, t), (p, q, maxV), (t, p, maxV), (maxV, p, q)][k]
          v[3 * i] = clamp(rr * 255)
          v[3 * i + 1] = clamp(gg * 255)
          v[3 * i + 2] = clamp(bb * 255)
        }
      default: break
      }
    }
    return PixelImage(width: x.width, height: x.height, channels: c, pixels: v.map { UInt8($0) })
  }

  /// The output size of `steps` for a `width × height` image (the last resize or crop decides).
  public func outputSize(width: Int, height: Int) -> (width: Int, height: Int) {
    var (w, h) = (width, height)
    for step in steps {
      switch step {
      case .resize(let s): (w, h) = w <= h ? (s, Swift.max(1, s * h / w)) : (Swift.max(1, s * w / h), s)
      case .centerCrop(let s), .randomResizedCrop(let s, _, _): (w, h) = (s, s)
      default: break
      }
    }
    return (w, h)
  }

  /// The side of the square the steps always end with, when the last resize or crop is a crop
  /// (`center-crop` or `random-resized-crop`); `nil` when the output size depends on the image.
  public var fixedSize: Int? {
    var size: Int?
    for step in steps {
      switch step {
      case .resize: size = nil
      case .centerCrop(let s), .randomResizedCrop(let s, _, _): size = s
      default: break
      }
    }
    return size
  }

  /// The channels after the steps, for `channels` decoded ones (`grey` and `rgb` decide).
  public func outputChannels(_ channels: Int) -> Int {
    var c = channels
    for step in steps {
      if step == .grey { c = 1 }
      if step == .rgb { c = 3 }
    }
    return c
  }
}
