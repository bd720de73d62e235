import Foundation

/// On-the-fly image augmentation for training batches: random crop with padding, horizontal
/// flip, small affine shifts and rotations, and random erasing (Zhong et al. 2020).
///
/// Rows of a batch are images in NHWC order (`height × width × channels` values). Pixels that an
/// operation brings in from outside the image take the image's minimum, its background for
/// Fashion-MNIST-like data whatever the normalisation. Every random choice comes from the
/// `RandomSource` passed in, so a step's augmentation is reproducible from the seed and the step
/// number alone; after the first batch nothing is allocated.
///
/// The textual form, as `dml train --augment` takes it, lists operations separated by commas, an
/// operation's own settings following it: `crop:pad=2,flip,affine:shift=2,rotate=10,erase:p=0.5`.
public struct ImageAugmentation: Sendable, Equatable, CustomStringConvertible {
  /// One augmentation, applied to each image of a batch.
  public enum Operation: Sendable, Equatable {
    /// Pads by `pad` pixels on each side, then crops a random window of the original size.
    case crop(pad: Int)
    /// Mirrors left-right with probability `p`.
    case flip(p: Double)
    /// Shifts by up to `shift` pixels on each axis and rotates by up to `rotate` degrees
    /// (uniform), resampling bilinearly.
    case affine(shift: Double, rotate: Double)
    /// With probability `p`, replaces a random rectangle covering `minArea...maxArea` of the image
    /// (aspect ratio 0.3–3.3) with uniform noise over the image's range.
    case erase(p: Double, minArea: Double, maxArea: Double)
    /// Raises the image, rescaled to 0...1 over its own range, to a power drawn log-uniformly
    /// from `1/range...range`: darker or lighter mid-tones with the same silhouette.
    case gamma(range: Double)
    /// An operation registered from outside the library (see `AugmentationRegistry`).
    case custom(CustomImageOperation)
  }

  /// The operations, applied in this order to every image.
  public var operations: [Operation]

  /// An augmentation applying `operations` in order (none: images are left as they are).
  public init(_ operations: [Operation]) { self.operations = operations }

  /// Parses `crop:pad=2,flip,...`: operations separated by commas, each followed by its own
  /// `key=value` settings, looked up in `registry` and checked against their declared settings;
  /// "none" or "" gives no operation.
  public init(parsing text: String, registry: AugmentationRegistry = .standard) throws {
    var items: [(name: String, settings: [String])] = []
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed.isEmpty || trimmed == "none" {
      self.init([])
      return
    }
    for token in trimmed.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard !token.isEmpty else { throw DataError("augmentation '\(text)': empty item") }
      if let colon = token.firstIndex(of: ":") {
        let rest = String(token[token.index(after: colon)...])
        guard rest.contains("=") else { throw DataError("augmentation '\(text)': '\(rest)' is not key=value") }
        items.append((String(token[..<colon]), [rest]))
      } else if token.contains("=") {
        guard !items.isEmpty else { throw DataError("augmentation '\(text)': '\(token)' comes before any operation") }
        items[items.count - 1].settings.append(token)
      } else {
        items.append((token, []))
      }
    }
    var operations: [Operation] = []
    for item in items {
      let spec = item.settings.isEmpty ? item.name : item.name + ":" + item.settings.joined(separator: ",")
      do { operations.append(try registry.make(spec, context: AugmentationContext())) } catch let e as SpecificationError {
        throw DataError("augmentation \(e.description)")
      }
    }
    self.init(operations)
  }

  /// The textual form, which `init(parsing:)` reads back; `none` for no operation.
  public var description: String {
    if operations.isEmpty { return "none" }
    return operations.map { op -> String in
      switch op {
      case .crop(let pad): return "crop:pad=\(pad)"
      case .flip(let p): return "flip:p=\(p)"
      case .affine(let shift, let rotate): return "affine:shift=\(shift),rotate=\(rotate)"
      case .erase(let p, let lo, let hi): return "erase:p=\(p),min_area=\(lo),max_area=\(hi)"
      case .gamma(let range): return "gamma:range=\(range)"
      case .custom(let op): return op.description
      }
    }.joined(separator: ",")
  }
}

/// Applies an ``ImageAugmentation`` to batches in place, with its scratch image kept between
/// batches.
public struct ImageAugmenter: Sendable {
  /// The operations applied.
  public let augmentation: ImageAugmentation
  /// The shape of each image (a row of `height × width × channels` values, NHWC).
  public let height: Int, width: Int, channels: Int
  private var scratch: [Float]

  /// An augmenter for images of `height × width × channels` values.
  public init(_ augmentation: ImageAugmentation, height: Int, width: Int, channels: Int) {
    self.augmentation = augmentation
    self.height = height
    self.width = width
    self.channels = channels
    scratch = [Float](repeating: 0, count: height * width * channels)
  }

  /// Augments every row of `batch` (each an image), drawing from `rng`.
  public mutating func apply(to batch: inout Matrix<Float>, rng: inout RandomSource) {
    apply(to: &batch) { _, body in body(&rng) }
  }

  /// Augments every row of `batch`, row `r` drawing from `rowSource(r)`: a stream of its own, so
  /// that a row is augmented the same way whichever process holds it.
  public mutating func apply(to batch: inout Matrix<Float>, rowSource: (Int) -> RandomSource) {
    apply(to: &batch) { r, body in
      var rng = rowSource(r)
      body(&rng)
    }
  }

  private mutating func apply(to batch: inout Matrix<Float>, withSource: (Int, (inout RandomSource) -> Void) -> Void) {
    let size = height * width * channels
    precondition(batch.columns == size, "augmentation: rows of \(batch.columns) values, images of \(height)x\(width)x\(channels)")
    guard !augmentation.operations.isEmpty else { return }
    let rows = batch.rows
    var scratch = self.scratch
    self.scratch = []  // held locally while the batch is worked on, then put back
    batch.withUnsafeMutableBufferPointer { all in
      scratch.withUnsafeMutableBufferPointer { tmp in
        for r in 0..<rows {
          let image = UnsafeMutableBufferPointer(rebasing: all[(r * size)..<((r + 1) * size)])
          withSource(r) { rng in for op in augmentation.operations { apply(op, image, tmp, &rng) } }
        }
      }
    }
    self.scratch = scratch
  }

  private func apply(_ op: ImageAugmentation.Operation, _ image: UnsafeMutableBufferPointer<Float>, _ tmp: UnsafeMutableBufferPointer<Float>, _ rng: inout RandomSource) {
    let (h, w, c) = (height, width, channels)
    var background = Float.infinity
    for v in image { background = Swift.min(background, v) }
    switch op {
    case .crop(let pad):
      guard pad > 0 else { return }
      // Window offset in the padded image: (dy, dx) in 0...2pad; source pixel = target + offset − pad.
      let dy = rng.index(below: 2 * pad + 1) - pad, dx = rng.index(below: 2 * pad + 1) - pad
      guard dy != 0 || dx != 0 else { return }
      _ = tmp.update(fromContentsOf: image)
      for y in 0..<h {
        for x in 0..<w {
          let sy = y + dy, sx = x + dx
          for k in 0..<c {
            image[(y * w + x) * c + k] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? tmp[(sy * w + sx) * c + k] : background
          }
        }
      }
    case .flip(let p):
      guard rng.uniform(Double.self) < p else { return }
      for y in 0..<h {
        for x in 0..<(w / 2) {
          for k in 0..<c { image.swapAt((y * w + x) * c + k, (y * w + (w - 1 - x)) * c + k) }
        }
      }
    case .affine(let shift, let rotate):
      let tx = (2 * rng.uniform(Double.self) - 1) * shift, ty = (2 * rng.uniform(Double.self) - 1) * shift
      let angle = (2 * rng.uniform(Double.self) - 1) * rotate * Double.pi / 180
      guard tx != 0 || ty != 0 || angle != 0 else { return }
      _ = tmp.update(fromContentsOf: image)
      // Inverse map: each target pixel samples the source at R(−angle)(p − centre − t) + centre.
      let (cosA, sinA) = (cos(angle), sin(angle))
      let cy = Double(h - 1) / 2, cx = Double(w - 1) / 2
      for y in 0..<h {
        for x in 0..<w {
          let px = Double(x) - cx - tx, py = Double(y) - cy - ty
          let sx = cosA * px + sinA * py + cx, sy = -sinA * px + cosA * py + cy
          let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
          let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
          for k in 0..<c {
            func at(_ yy: Int, _ xx: Int) -> Float {
              (yy >= 0 && yy < h && xx >= 0 && xx < w) ? tmp[(yy * w + xx) * c + k] : background
            }
            let top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
            let bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
            image[(y * w + x) * c + k] = top * (1 - fy) + bottom * fy
          }
        }
      }
    case .gamma(let range):
      let g = Float(exp((2 * rng.uniform(Double.self) - 1) * log(range)))
      var high = -Float.infinity
      for v in image { high = Swift.max(high, v) }
      guard high > background else { return }
      let span = high - background
      for i in image.indices { image[i] = background + span * pow((image[i] - background) / span, g) }
    case .custom(let op):
      op.apply(image, tmp, (h, w, c), background, &rng)
    case .erase(let p, let minArea, let maxArea):
      guard rng.uniform(Double.self) < p else { return }
      var high = -Float.infinity
      for v in image { high = Swift.max(high, v) }
      let area = (minArea + (maxArea - minArea) * rng.uniform(Double.self)) * Double(h * w)
      let aspect = exp(log(0.3) + (log(3.3) - log(0.3)) * rng.uniform(Double.self))
      let eh = Swift.min(h, Swift.max(1, Int((area * aspect).squareRoot().rounded())))
      let ew = Swift.min(w, Swift.max(1, Int((area / aspect).squareRoot().rounded())))
      let y0 = rng.index(below: h - eh + 1), x0 = rng.index(below: w - ew + 1)
      for y in y0..<(y0 + eh) {
        for x in x0..<(x0 + ew) {
          for k in 0..<c { image[(y * w + x) * c + k] = background + (high - background) * rng.uniform(Float.self) }
        }
      }
    }
  }
}
