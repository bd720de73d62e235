import ArgumentParser
import Foundation
import MetricLearning

/// `dml export-images`: writes a data set's images as an image folder (one subfolder per class),
/// for trying the image pipeline on known data, or handing images to other tools.
struct ExportImages: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export-images",
    abstract: "Write image data (such as fashion-mnist) as a folder of JPEG or PNG files, one subfolder per class.")

  @Option(help: "Image data: fashion-mnist (its training split), or an image CSV/NPY file with --height/--width.") var data = "fashion-mnist"
  @Option(help: "Classes to write, e.g. 0-4 (default: all).") var classes: String?
  @Option(help: "Images per class (default: all).") var perClass: Int?
  @Option(help: "jpg or png.") var format = "jpg"
  @Option(help: "JPEG quality, 1-100.") var quality = 92
  @Option(help: "Upscale each image to this side (default: as stored).") var size: Int?
  @Flag(help: "Colour each class with its own tint (grey data becomes colour, so that colour matters).") var tint = false
  @Option(help: "The folder to write (must not exist unless --force).") var output: String
  @Flag(help: "Replace --output if it exists.") var force = false

  func validate() throws {
    guard format == "jpg" || format == "png" else { throw ValidationError("--format \(format) must be jpg or png") }
    guard (1...100).contains(quality) else { throw ValidationError("--quality \(quality) must lie in 1...100") }
    if let perClass, perClass < 1 { throw ValidationError("--per-class \(perClass) must be at least 1") }
    if let size, !(1...4096).contains(size) { throw ValidationError("--size \(size) must lie in 1...4096") }
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
    for i in 0..<d.labels.count {
      let y = d.labels[i]
      if let perClass, written[y, default: 0] >= perClass { continue }
      let name = "\(y)-" + FashionMNIST.classNames[y].lowercased().replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: " ", with: "-")
      let folder = "\(temporary)/\(name)"
      if written[y] == nil { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) }
      // Fashion-MNIST's stored pixels: standardised floats back to 0...255.
      let grey = d.features.row(i).map { UInt8(Swift.max(0, Swift.min(255, ($0 * FashionMNIST.std + FashionMNIST.mean) * 255)).rounded()) }
      var image = PixelImage(width: shape.width, height: shape.height, channels: 1, pixels: grey)
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
