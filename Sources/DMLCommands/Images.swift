import ArgumentParser
import Foundation
import MetricLearning

/// `dml export-images`: writes a data set's images as an image folder (one subfolder per class),
/// for trying the image pipeline on known data, or handing images to other tools.
struct ExportImages: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export-images",
    abstract: "Write image data (such as fashion-mnist) as a folder of JPEG or PNG files, one subfolder per class.")

  @Option(help: "Image data: fashion-mnist (its training split).") var data = "fashion-mnist"
  @Option(help: "Classes to write, e.g. 0-4 (default: all).") var classes: String?
  @Option(help: "Images per class (default: all).") var perClass: Int?
  @Option(help: "jpg or png.") var format = "jpg"
  @Option(help: "JPEG quality, 1-100.") var quality = 92
  @Option(help: "Upscale each image to this side (default: as stored).") var size: Int?
  @Flag(help: "Colour each class with its own tint (grey data becomes colour, so that colour matters).") var tint = false
  @Option(help: "Instead of one image per item: this many scenes of --size (default 128), each 2 to 4 tinted items of --classes pasted at random sizes and places on a colour gradient, filed under the class of the largest; no two alike, for near-duplicate tests.")
  var scenes: Int?
  @Option(help: "The seed of the scenes.") var seed: UInt64 = 0
  @Option(help: "The folder to write (must not exist unless --force).") var output: String
  @Flag(help: "Replace --output if it exists.") var force = false

  func validate() throws {
    guard format == "jpg" || format == "png" else { throw ValidationError("--format \(format) must be jpg or png") }
    guard (1...100).contains(quality) else { throw ValidationError("--quality \(quality) must lie in 1...100") }
    if let perClass, perClass < 1 { throw ValidationError("--per-class \(perClass) must be at least 1") }
    if let size, !(1...4096).contains(size) { throw ValidationError("--size \(size) must lie in 1...4096") }
    if let scenes {
      guard (1...1_000_000).contains(scenes) else { throw ValidationError("--scenes \(scenes) must lie in 1...1000000") }
      guard perClass == nil else { throw ValidationError("--per-class is for items; --scenes \(scenes) gives the number of scenes") }
      if let size, size < 16 { throw ValidationError("--size \(size): scenes need at least 16 pixels a side") }
    }
  }

  /// The folder name of class `y`.
  static func className(_ y: Int) -> String {
    "\(y)-" + FashionMNIST.classNames[y].lowercased().replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: " ", with: "-")
  }

  /// Item `i` of `d` as an 8-bit grey image (Fashion-MNIST's standardised floats back to 0...255).
  static func grey(_ d: Dataset, _ i: Int, _ shape: (height: Int, width: Int, channels: Int)) -> PixelImage {
    let grey = d.features.row(i).map { UInt8(Swift.max(0, Swift.min(255, ($0 * FashionMNIST.std + FashionMNIST.mean) * 255)).rounded()) }
    return PixelImage(width: shape.width, height: shape.height, channels: 1, pixels: grey)
  }

  /// A scene of `side` pixels: a gradient between two random colours, and 2 to 4 items of `d`
  /// pasted where their ink is, tinted by class and shaded by their grey level, the largest first.
  static func scene(_ d: Dataset, side: Int, rng: inout RandomSource) throws -> (image: PixelImage, label: Int) {
    let shape = d.imageShape!
    let a = (0..<3).map { _ in Float(rng.index(below: 256)) }, b = (0..<3).map { _ in Float(rng.index(below: 256)) }
    let angle = Double(rng.uniform(Float.self)) * 2 * Double.pi
    let (cx, cy) = (Float(cos(angle)), Float(sin(angle)))
    let lo = Swift.min(0, cx) + Swift.min(0, cy), hi = Swift.max(0, cx) + Swift.max(0, cy)
    var p = [Float](repeating: 0, count: side * side * 3)
    for y in 0..<side {
      for x in 0..<side {
        let t = ((cx * Float(x) + cy * Float(y)) / Float(side - 1) - lo) / Swift.max(1e-6, hi - lo)
        for k in 0..<3 { p[(y * side + x) * 3 + k] = a[k] * (1 - t) + b[k] * t }
      }
    }
    let count = 2 + rng.index(below: 3)
    let sizes = (0..<count).map { _ in side / 4 + rng.index(below: side / 4 + 1) }.sorted(by: >)
    var label = 0
    for (n, s) in sizes.enumerated() {
      let item = rng.index(below: d.labels.count)
      if n == 0 { label = d.labels[item] }
      let c = Palette.color(d.labels[item])
      let ink = try grey(d, item, shape).resized(width: s, height: s)
      let x0 = rng.index(below: side - s + 1), y0 = rng.index(below: side - s + 1)
      for y in 0..<s {
        for x in 0..<s {
          let v = Float(ink.pixels[y * s + x]) / 255
          guard v > 0.08 else { continue }
          let o = ((y0 + y) * side + x0 + x) * 3
          let shade = 0.55 + 0.45 * v
          for (k, tint) in [Float(c.red), Float(c.green), Float(c.blue)].enumerated() { p[o + k] = p[o + k] * (1 - v) + tint * shade * v }
        }
      }
    }
    return (PixelImage(width: side, height: side, channels: 3, pixels: p.map { UInt8(Swift.max(0, Swift.min(255, $0.rounded()))) }), label)
  }

  func run() throws {
    guard data == "fashion-mnist" else { throw ValidationError("--data \(data): export-images reads fashion-mnist") }
    var d = try FashionMNIST.load(train: true, directory: FashionMNIST.defaultDirectory)
    if let classes { d = d.restricted(to: try ClassSplit.parse(classes)) }
    let fm = FileManager.default
    if fm.fileExists(atPath: output) {
      guard force else { throw ValidationError("--output \(output) exists: pass --force to replace it") }
      try fm.removeItem(atPath: output)
    }
    let temporary = output + ".partial-\(getpid())"
    try? fm.removeItem(atPath: temporary)
    try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
    guard let shape = d.imageShape else { throw ValidationError("--data \(data) holds no images") }
    var written: [Int: Int] = [:]
    if let scenes {
      var rng = RandomSource(seed: seed)
      for i in 0..<scenes {
        let (image, y) = try Self.scene(d, side: size ?? 128, rng: &rng)
        let folder = "\(temporary)/\(Self.className(y))"
        if written[y] == nil { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let bytes = format == "jpg" ? try ImageFile.jpeg(image, quality: quality) : try ImageFile.png(image)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/scene-\(String(format: "%06d", i)).\(format)"))
        written[y, default: 0] += 1
      }
      try fm.moveItem(atPath: temporary, toPath: output)
      print("wrote \(scenes) scenes in \(written.count) class folders to \(output)")
      return
    }
    for i in 0..<d.labels.count {
      let y = d.labels[i]
      if let perClass, written[y, default: 0] >= perClass { continue }
      let folder = "\(temporary)/\(Self.className(y))"
      if written[y] == nil { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) }
      var image = Self.grey(d, i, shape)
      if tint {
        let c = Palette.color(y)
        let rgb = image.converted(toChannels: 3)
        var p = rgb.pixels
        for k in 0..<(shape.width * shape.height) {
          // Ink takes the class colour over a white background.
          let ink = Float(p[3 * k]) / 255
          p[3 * k] = UInt8((255 - ink * Float(255 - Int(c.red))).rounded())
          p[3 * k + 1] = UInt8((255 - ink * Float(255 - Int(c.green))).rounded())
          p[3 * k + 2] = UInt8((255 - ink * Float(255 - Int(c.blue))).rounded())
        }
        image = PixelImage(width: shape.width, height: shape.height, channels: 3, pixels: p)
      }
      if let size { image = try image.resized(width: size, height: size) }
      let bytes = format == "jpg" ? try ImageFile.jpeg(image, quality: quality) : try ImageFile.png(image)
      try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/\(String(format: "%05d", i)).\(format)"))
      written[y, default: 0] += 1
    }
    try fm.moveItem(atPath: temporary, toPath: output)
    print("wrote \(written.values.reduce(0, +)) images in \(written.count) class folders to \(output)")
  }
}
