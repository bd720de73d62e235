import DMLData
import Foundation
import Testing

/// A batch of `n` distinct 6×5 single-channel images with a dark background (−1) and a bright
/// asymmetric blob.
private func images(_ n: Int) -> Matrix<Float> {
  var x = Matrix<Float>(rows: n, columns: 30, repeating: -1)
  for i in 0..<n {
    for (y, xx) in [(1, 1), (1, 2), (2, 1), (3, 3), (2, 2)] { x[i, y * 5 + xx] = Float(i + 1) }
  }
  return x
}

@Suite("Image augmentation")
struct AugmentationTests {
  @Test("The textual form parses operations and their settings, and rejects bad ones by name")
  func parsing() throws {
    let a = try ImageAugmentation(parsing: "crop:pad=2,flip,affine:shift=1,rotate=15,erase:p=0.25")
    #expect(a.operations == [.crop(pad: 2), .flip(p: 0.5), .affine(shift: 1, rotate: 15), .erase(p: 0.25, minArea: 0.02, maxArea: 0.2)])
    #expect(try ImageAugmentation(parsing: a.description) == a)
    #expect(try ImageAugmentation(parsing: "none").operations.isEmpty)
    for (text, message) in [
      ("blur", "unknown augmentation 'blur'; known: crop, flip, affine, erase, gamma"), ("crop:size=3", "crop: unknown hyperparameter 'size'"),
      ("flip:p=2", "flip: p=2 must be in [0, 1]"), ("crop:pad=1.5", "crop: pad=1.5 is not an integer"), ("pad=2,crop", "comes before any operation"),
      ("erase:min_area=0.5,max_area=0.1", "exceeds max_area"), ("flip,,crop", "empty item"),
    ] {
      #expect(throws: DataError.self) { try ImageAugmentation(parsing: text) }
      do { _ = try ImageAugmentation(parsing: text) } catch { #expect("\(error)".contains(message), "\(text): \(error)") }
    }
  }

  @Test("Flip with p=1 mirrors each row; twice restores the batch")
  func flip() {
    var aug = ImageAugmenter(ImageAugmentation([.flip(p: 1)]), height: 6, width: 5, channels: 1)
    let original = images(3)
    var x = original
    var rng = RandomSource(seed: 1)
    aug.apply(to: &x, rng: &rng)
    #expect(x[0, 1 * 5 + 3] == original[0, 1 * 5 + 1] && x[2, 3 * 5 + 1] == original[2, 3 * 5 + 3])
    aug.apply(to: &x, rng: &rng)
    #expect(x == original)
  }

  @Test("Crop shifts the content by at most pad pixels, filling with the background")
  func crop() {
    var aug = ImageAugmenter(ImageAugmentation([.crop(pad: 1)]), height: 6, width: 5, channels: 1)
    let original = images(50)
    var x = original
    var rng = RandomSource(seed: 2)
    aug.apply(to: &x, rng: &rng)
    var moved = 0
    for i in 0..<50 {
      // The result equals the original shifted by some (dy, dx) in -1...1.
      let row = x.row(i), src = original.row(i)
      let found = (-1...1).contains { dy in
        (-1...1).contains { dx in
          (0..<6).allSatisfy { y in
            (0..<5).allSatisfy { xx in
              let sy = y + dy, sx = xx + dx
              return row[y * 5 + xx] == ((0..<6).contains(sy) && (0..<5).contains(sx) ? src[sy * 5 + sx] : -1)
            }
          }
        }
      }
      #expect(found, "image \(i) is not a shifted copy")
      if row != src { moved += 1 }
    }
    #expect(moved > 30)  // 8 of 9 offsets move the image
  }

  @Test("Affine with zero ranges is the identity; a rotation keeps values within the image's range")
  func affine() {
    let original = images(4)
    var x = original
    var rng = RandomSource(seed: 3)
    var identity = ImageAugmenter(ImageAugmentation([.affine(shift: 0, rotate: 0)]), height: 6, width: 5, channels: 1)
    identity.apply(to: &x, rng: &rng)
    #expect(x == original)
    var rotate = ImageAugmenter(ImageAugmentation([.affine(shift: 1, rotate: 30)]), height: 6, width: 5, channels: 1)
    rotate.apply(to: &x, rng: &rng)
    #expect(x != original)
    for i in 0..<4 { for v in x.row(i) { #expect(v >= -1 - 1e-6 && v <= Float(i + 1) + 1e-5) } }
  }

  @Test("Erase with p=1 replaces one rectangle with values in the image's range")
  func erase() {
    var aug = ImageAugmenter(ImageAugmentation([.erase(p: 1, minArea: 0.2, maxArea: 0.2)]), height: 6, width: 5, channels: 1)
    let original = images(1)
    var x = original
    var rng = RandomSource(seed: 4)
    aug.apply(to: &x, rng: &rng)
    let changed = (0..<30).filter { x[0, $0] != original[0, $0] }
    #expect(!changed.isEmpty && changed.count <= 8)
    let ys = changed.map { $0 / 5 }, xs = changed.map { $0 % 5 }
    #expect((ys.max()! - ys.min()! + 1) * (xs.max()! - xs.min()! + 1) <= 8)
    for v in x.row(0) { #expect(v >= -1 && v <= 1) }
  }

  @Test("Gamma keeps each image's minimum, maximum and pixel order")
  func gamma() {
    var aug = ImageAugmenter(ImageAugmentation([.gamma(range: 3)]), height: 6, width: 5, channels: 1)
    var x = images(6)
    for i in 0..<6 { x[i, 7] = Float(i) * 0.3 - 0.5 }  // a mid-tone pixel
    let original = x
    var rng = RandomSource(seed: 5)
    aug.apply(to: &x, rng: &rng)
    #expect(x != original)
    for i in 0..<6 {
      let a = x.row(i), b = original.row(i)
      #expect(a.min() == b.min() && abs(a.max()! - b.max()!) < 1e-5)
      for j in 0..<30 { for k in 0..<30 where b[j] < b[k] { #expect(a[j] <= a[k]) } }
    }
  }

  @Test("An operation registered from outside is parsed, listed, applied in order and round-trips")
  func registeredOperation() throws {
    var registry = AugmentationRegistry.standard
    registry.register(ComponentFactory("brighten", summary: "adds a constant", hyperparameters: [
      HyperparameterSpec("by", .real, default: "0.25", "the constant", range: .closed(-1, 1))
    ]) { v, _ in
      let by = Float(try v.real("by"))
      return .custom(try CustomImageOperation(values: v) { image, _, _, _, _ in
        for i in image.indices { image[i] += by }
      })
    })
    #expect(throws: DataError.self) { try ImageAugmentation(parsing: "brighten") }  // not in the standard registry
    let spec = try ImageAugmentation(parsing: "flip:p=1,brighten:by=0.5", registry: registry)
    #expect(spec.description == "flip:p=1.0,brighten:by=0.5")
    #expect(try ImageAugmentation(parsing: spec.description, registry: registry) == spec)
    #expect(throws: DataError.self) { try ImageAugmentation(parsing: "brighten:by=3", registry: registry) }
    var augmented = images(2), flipped = augmented
    var a = ImageAugmenter(spec, height: 6, width: 5, channels: 1), f = ImageAugmenter(ImageAugmentation([.flip(p: 1)]), height: 6, width: 5, channels: 1)
    var r1 = RandomSource(seed: 1), r2 = RandomSource(seed: 1)
    a.apply(to: &augmented, rng: &r1)
    f.apply(to: &flipped, rng: &r2)
    flipped.apply { $0 + 0.5 }
    #expect(augmented == flipped)
  }

  @Test("The same seed gives the same batch; another seed another")
  func determinism() throws {
    let spec = try ImageAugmentation(parsing: "crop:pad=2,flip,affine,erase,gamma")
    var a = ImageAugmenter(spec, height: 6, width: 5, channels: 1), b = a
    var x = images(8), y = images(8), z = images(8)
    var r1 = RandomSource(seed: 7), r2 = RandomSource(seed: 7), r3 = RandomSource(seed: 8)
    a.apply(to: &x, rng: &r1)
    b.apply(to: &y, rng: &r2)
    b.apply(to: &z, rng: &r3)
    #expect(x == y && x != z)
  }
}
