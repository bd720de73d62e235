import Foundation

/// The edits that make a near-copy of a photo, as a duplicate finder must still catch them: the
/// same picture saved again at a low JPEG quality, scaled down, cropped a little, or brightened.
/// `dml dedup --plant` plants them in an image folder's test split and scores the groups found.
public enum NearCopy: String, CaseIterable, Sendable {
  /// Saved again as a JPEG at quality 50.
  case reencoded
  /// Scaled to 75% of each side (bilinear), saved as a JPEG at quality 90.
  case resized
  /// A window of 95% of each side at a random place, saved as a JPEG at quality 90.
  case cropped
  /// Every sample multiplied by 1.2 (clipped at 255, as torchvision's `adjust_brightness`), saved
  /// as a JPEG at quality 90.
  case brightened

  /// The file bytes of this edit of `image`; `rng` places the crop.
  public func file(of image: PixelImage, rng: inout RandomSource) throws -> [UInt8] {
    switch self {
    case .reencoded:
      return try ImageFile.jpeg(image, quality: 50)
    case .resized:
      let w = Swift.max(1, Int((Double(image.width) * 0.75).rounded())), h = Swift.max(1, Int((Double(image.height) * 0.75).rounded()))
      return try ImageFile.jpeg(try image.resized(width: w, height: h), quality: 90)
    case .cropped:
      let w = Swift.max(1, Int((Double(image.width) * 0.95).rounded())), h = Swift.max(1, Int((Double(image.height) * 0.95).rounded()))
      let x = rng.index(below: image.width - w + 1), y = rng.index(below: image.height - h + 1)
      return try ImageFile.jpeg(image.cropped(x: x, y: y, width: w, height: h), quality: 90)
    case .brightened:
      var out = image
      for i in out.pixels.indices { out.pixels[i] = UInt8(Swift.min(255, (Double(image.pixels[i]) * 1.2).rounded())) }
      return try ImageFile.jpeg(out, quality: 90)
    }
  }
}
