import DMLData
import DMLTesting
import Foundation
import Testing

/// A scratch folder, removed by the caller.
func scratchFolder(_ name: String) throws -> String {
  let folder = ScratchSpace.path("\(name)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  return folder
}

/// A test picture: a pattern that is not flat (so that JPEG has something to do).
func testPicture(width: Int, height: Int, channels: Int, seed: Int = 0) -> PixelImage {
  var p = [UInt8]()
  for y in 0..<height {
    for x in 0..<width {
      for c in 0..<channels { p.append(UInt8((x * 7 + y * 13 + c * 61 + seed * 29 + ((x * y) % 17) * 5) % 256)) }
    }
  }
  return PixelImage(width: width, height: height, channels: channels, pixels: p)
}

@Suite("Image files: libjpeg-turbo, libpng, libexif")
struct ImageFileTests {
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts/pil_reference.py").path

  @Test("every kind decodes as PIL decodes it: PNG exactly, JPEG within 2/255; EXIF orientation applied; CMYK refused by name")
  func againstPIL() throws {
    let folder = try scratchFolder("pil")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    // Debian's Python, with python3-pil (installed by make).
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = [Self.script, folder]
    try p.run()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0, "the PIL script failed: is python3-pil installed (make deps)?")
    let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".expected") }.sorted()
    #expect(names.count == 11, "\(names)")
    for name in names {
      let file = String(name.dropLast(".expected".count))
      let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)")))
      let newline = raw.firstIndex(of: 10)!
      let header = String(decoding: raw[..<newline], as: UTF8.self).split(separator: " ").map { Int($0)! }
      let want = Array(raw[(newline + 1)...])
      let got = try ImageFile.read("\(folder)/\(file)")
      #expect([got.width, got.height, got.channels] == header, "\(file): \(got.width)x\(got.height)x\(got.channels), PIL \(header)")
      guard got.pixels.count == want.count else { continue }
      let worst = zip(got.pixels, want).map { abs(Int($0) - Int($1)) }.max() ?? 0
      if file.hasSuffix(".png") {
        #expect(worst == 0, "\(file): differs from PIL by \(worst)")
      } else {
        #expect(worst <= 2, "\(file): differs from PIL by \(worst)/255")
      }
    }
    #expect(throws: ImageError.self) { try ImageFile.read("\(folder)/cmyk.jpg") }
    do { _ = try ImageFile.read("\(folder)/cmyk.jpg") } catch { #expect("\(error)".contains("cmyk.jpg: a CMYK JPEG"), "\(error)") }
  }

  @Test("broken files: each named with its path and reason")
  func brokenFiles() throws {
    let folder = try scratchFolder("broken")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let jpeg = try ImageFile.jpeg(testPicture(width: 64, height: 48, channels: 3), quality: 90)
    let png = try ImageFile.png(testPicture(width: 64, height: 48, channels: 3))
    let cases: [(String, [UInt8]?, String)] = [
      ("empty.jpg", [], "an empty file (0 bytes)"),
      ("text.png", Array("not an image at all".utf8), "not a JPEG or PNG image"),
      ("truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)), "a broken JPEG"),
      ("truncated.png", Array(png.prefix(png.count / 2)), "a broken PNG"),
      ("header-only.jpg", Array(jpeg.prefix(4)), "JPEG"),
      ("missing.jpg", nil, "no such file"),
    ]
    for (name, bytes, reason) in cases {
      let path = "\(folder)/\(name)"
      if let bytes { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
      do {
        _ = try ImageFile.read(path)
        Issue.record("\(name) was read")
      } catch {
        #expect("\(error)".hasPrefix(path) && "\(error)".contains(reason), "\(name): \(error)")
      }
    }
    try FileManager.default.createDirectory(atPath: "\(folder)/a-folder.jpg", withIntermediateDirectories: true)
    #expect(throws: ImageError("\(folder)/a-folder.jpg: a folder, not an image file")) { try ImageFile.read("\(folder)/a-folder.jpg") }
  }

  @Test("PNG round trips exactly, grey and colour; JPEG at quality 95 within a few levels")
  func roundTrips() throws {
    for c in [1, 3] {
      let image = testPicture(width: 33, height: 21, channels: c, seed: c)
      #expect(try ImageFile.decode(ImageFile.png(image), name: "x") == image)
      // JPEG is for smooth pictures: a gradient.
      var smooth = image
      for y in 0..<21 {
        for x in 0..<33 { for k in 0..<c { smooth.pixels[(y * 33 + x) * c + k] = UInt8(x * 3 + y * 2 + k * 30) } }
      }
      let back = try ImageFile.decode(ImageFile.jpeg(smooth, quality: 95), name: "x")
      #expect(back.channels == c && back.width == 33 && back.height == 21)
      let mean = zip(back.pixels, smooth.pixels).map { Double(abs(Int($0) - Int($1))) }.reduce(0, +) / Double(image.pixels.count)
      #expect(mean < 2, "mean difference \(mean)")
    }
  }
}

@Suite("Image transforms")
struct ImageTransformTests {
  @Test("parsing: steps, defaults, and errors that name the step or value")
  func parsing() throws {
    let t = try ImageTransforms(parsing: "resize:size=72,center-crop:size=64,flip,normalize")
    #expect(t.steps == [.resize(size: 72), .centerCrop(size: 64), .flip(p: 0.5)])
    #expect(t.mean == [0.485, 0.456, 0.406] && t.std == [0.229, 0.224, 0.225])
    #expect(try ImageTransforms(parsing: "random-resized-crop:size=32,scale=0.5/1,ratio=1/1").steps == [
      .randomResizedCrop(size: 32, scale: 0.5...1, ratio: 1...1)
    ])
    for (text, message) in [
      ("resize", "resize needs size="), ("resize:size=0", "size=0 is out of range"), ("blur:size=3", "unknown step 'blur'"),
      ("flip:p=2", "p=2 is out of range"), ("center-crop:width=3", "center-crop has no width="),
      ("random-resized-crop:size=8,scale=0.5/2", "scale must lie in (0, 1]"), ("normalize:std=0", "std must be positive"),
      ("resize:size=8,,flip", "an empty step"), ("size=8", "belongs to no step"),
    ] {
      #expect(throws: DataError.self) { try ImageTransforms(parsing: text) }
      do { _ = try ImageTransforms(parsing: text) } catch { #expect("\(error)".contains(message), "\(text): \(error)") }
    }
  }

  @Test("resize keeps the aspect with the shorter side at the size; center crop; flip mirrors; grey and rgb")
  func geometry() throws {
    var rng = RandomSource(seed: 1)
    let image = testPicture(width: 80, height: 40, channels: 3)
    let r = try ImageTransforms(parsing: "resize:size=20").apply(image, rng: &rng)
    #expect(r.width == 40 && r.height == 20)
    let c = try ImageTransforms(parsing: "center-crop:size=20").apply(image, rng: &rng)
    #expect(c == image.cropped(x: 30, y: 10, width: 20, height: 20))
    let f = try ImageTransforms(parsing: "flip:p=1").apply(image, rng: &rng)
    #expect(f.pixels[0..<3] == image.pixels[(79 * 3)..<(80 * 3)])
    #expect(try ImageTransforms(parsing: "grey").apply(image, rng: &rng).channels == 1)
    #expect(try ImageTransforms(parsing: "grey,rgb").apply(image, rng: &rng).channels == 3)
  }

  @Test("resampling keeps a flat colour and keeps grey pictures grey, shrinking and enlarging")
  func resampling() throws {
    var colour: [UInt8] = []
    for _ in 0..<1200 { colour += [200, 30, 90] }
    let flat = PixelImage(width: 40, height: 30, channels: 3, pixels: colour)
    for (w, h) in [(13, 7), (97, 61)] {
      let r = try flat.resized(width: w, height: h)
      var same = r.width == w && r.height == h
      for i in stride(from: 0, to: r.pixels.count, by: 3) where r.pixels[i] != 200 || r.pixels[i + 1] != 30 || r.pixels[i + 2] != 90 { same = false }
      #expect(same, "\(w)x\(h)")
    }
    let grey = try testPicture(width: 50, height: 40, channels: 1).converted(toChannels: 3).resized(width: 21, height: 17)
    var spread = 0
    for i in stride(from: 0, to: grey.pixels.count, by: 3) {
      let v = [Int(grey.pixels[i]), Int(grey.pixels[i + 1]), Int(grey.pixels[i + 2])]
      spread = Swift.max(spread, v.max()! - v.min()!)
    }
    #expect(spread <= 1, "a grey picture gained colour: \(spread)")
  }

  @Test("random steps depend on the generator alone; colour jitter keeps the shape and changes the colours")
  func randomSteps() throws {
    let t = try ImageTransforms(parsing: "random-resized-crop:size=24,flip,color-jitter:brightness=0.4,contrast=0.4,saturation=0.4,hue=0.1")
    let image = testPicture(width: 50, height: 40, channels: 3)
    var a = RandomSource(seed: 9), b = RandomSource(seed: 9), c = RandomSource(seed: 10)
    let x = try t.apply(image, rng: &a), y = try t.apply(image, rng: &b), z = try t.apply(image, rng: &c)
    #expect(x == y && x != z && x.width == 24 && x.height == 24)
  }

  @Test("floats: (x/255 − mean)/std per channel")
  func floats() throws {
    let t = try ImageTransforms(parsing: "normalize:mean=0.5/0.25/0,std=0.5/0.25/1")
    let image = PixelImage(width: 1, height: 1, channels: 3, pixels: [255, 0, 51])
    var out = [Float](repeating: 0, count: 3)
    out.withUnsafeMutableBufferPointer { t.floats(image, into: $0) }
    #expect(out == [1, -1, 0.2])
  }
}

@Suite("Image folders and the loader")
struct ImageLoaderTests {
  /// Class folders `a`, `b`, `c` of small tinted pictures, as JPEG and PNG; one broken file in `b`.
  static func folder() throws -> String {
    let root = try scratchFolder("images")
    for (k, name) in ["c", "a", "b"].enumerated() {
      try FileManager.default.createDirectory(atPath: "\(root)/\(name)/sub", withIntermediateDirectories: true)
      for i in 0..<4 {
        let picture = testPicture(width: 30 + i, height: 20 + k, channels: 3, seed: 10 * k + i)
        let bytes = i % 2 == 0 ? try ImageFile.jpeg(picture) : try ImageFile.png(picture)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(root)/\(name)/\(i == 3 ? "sub/" : "")img\(i).\(i % 2 == 0 ? "jpg" : "png")"))
      }
    }
    try Data("notes".utf8).write(to: URL(fileURLWithPath: "\(root)/a/readme.txt"))
    try Data(Array("broken".utf8)).write(to: URL(fileURLWithPath: "\(root)/b/broken.JPG"))
    return root
  }

  @Test("folder: classes sorted by name, images found in subfolders, other files skipped")
  func folderLayout() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    #expect(list.classNames == ["a", "b", "c"])
    #expect(list.paths.count == 13 && list.labels.filter { $0 == 1 }.count == 5)
    #expect(list.paths.allSatisfy { ImageFile.isImagePath($0) } && list.paths.contains { $0.hasSuffix("a/sub/img3.png") })
    #expect(throws: DataError.self) { try ImageList.folder("\(root)/a/sub") }
  }

  @Test("list: a CSV of path and label, paths relative to the file; errors name the line")
  func csvList() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    try Data("path,label\na/img0.jpg,cat\nb/img1.png,dog\n/abs/x.png,cat\n".utf8).write(to: URL(fileURLWithPath: "\(root)/list.csv"))
    let list = try ImageList.csv("\(root)/list.csv")
    #expect(list.paths == ["\(root)/a/img0.jpg", "\(root)/b/img1.png", "/abs/x.png"] && list.labels == [0, 1, 0] && list.classNames == ["cat", "dog"])
    try Data("path,label\na/img0.jpg\n".utf8).write(to: URL(fileURLWithPath: "\(root)/bad.csv"))
    do { _ = try ImageList.csv("\(root)/bad.csv"); Issue.record("read") } catch { #expect("\(error)".contains("line 2 has 1 fields"), "\(error)") }
  }

  @Test("the loader gives the same rows whatever the number of workers; a bad image stops it or is skipped and named")
  func deterministic() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    let t = try ImageTransforms(parsing: "random-resized-crop:size=16,flip,normalize")
    let good = list.paths.indices.filter { !list.paths[$0].hasSuffix("broken.JPG") }
    let one = try ImageLoader(list: list, transforms: t, height: 16, width: 16, channels: 3, workers: 1, seed: 3).load(good, stream: 7)
    let four = try ImageLoader(list: list, transforms: t, height: 16, width: 16, channels: 3, workers: 4, seed: 3).load(good, stream: 7)
    #expect(one.rows == four.rows && one.rows.rows == 12)
    let other = try ImageLoader(list: list, transforms: t, height: 16, width: 16, channels: 3, workers: 2, seed: 3).load(good, stream: 8)
    #expect(other.rows != one.rows)
    let loader = try ImageLoader(list: list, transforms: t, height: 16, width: 16, channels: 3, workers: 2, seed: 3)
    do { _ = try loader.load(Array(list.paths.indices)); Issue.record("loaded a broken file") } catch {
      #expect("\(error)".contains("broken.JPG: not a JPEG or PNG image"), "\(error)")
    }
    let skipped = try loader.load(Array(list.paths.indices), onBadImage: .skip)
    #expect(skipped.rows.rows == 12 && skipped.failures.count == 1 && skipped.kept.count == 12)
    // A grey network input from colour files.
    let grey = try ImageLoader(list: list, transforms: try ImageTransforms(parsing: "resize:size=8,center-crop:size=8"), height: 8, width: 8, channels: 1)
      .load(good)
    #expect(grey.rows.columns == 64)
  }

  @Test("the prefetching loader returns the batches in order, at most its depth ahead")
  func prefetch() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    let good = list.paths.indices.filter { !list.paths[$0].hasSuffix("broken.JPG") }
    let t = try ImageTransforms(parsing: "resize:size=8,center-crop:size=8")
    let loader = try ImageLoader(list: list, transforms: t, height: 8, width: 8, channels: 3)
    let batches = stride(from: 0, to: good.count, by: 3).map { Array(good[$0..<Swift.min(good.count, $0 + 3)]) }
    let prefetching = PrefetchingLoader(loader: loader, batches: batches, depth: 2)
    Thread.sleep(forTimeInterval: 0.3)
    #expect(prefetching.waiting <= 2)
    for b in batches {
      let got = try #require(try prefetching.next())
      #expect(got.rows == (try loader.load(b, stream: UInt64(batches.firstIndex(of: b)!))).rows)
    }
    #expect(try prefetching.next() == nil)
  }

  @Test("the DocC article's snippet: a loader of a folder")
  func article() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.removeItem(atPath: "\(root)/b/broken.JPG")
    let list = try ImageList.folder(root)
    let loader = try ImageLoader(
      list: list, transforms: try ImageTransforms(parsing: "random-resized-crop:size=64,flip,normalize"),
      height: 64, width: 64, channels: 3, workers: 2, seed: 1)
    let rows = try loader.load(Array(0..<32).filter { $0 < list.paths.count }, stream: 0).rows
    #expect(rows.rows == 12 && rows.columns == 64 * 64 * 3)
  }

  @Test("a dataset of images: rows, labels, paths and class names; skipped files listed")
  func dataset() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    let (d, skipped) = try Dataset.images(
      list, transforms: try ImageTransforms(parsing: "resize:size=12,center-crop:size=12"), height: 12, width: 12, channels: 3,
      onBadImage: .skip)
    #expect(d.features.rows == 12 && d.paths?.count == 12 && d.classNames == ["a", "b", "c"] && skipped.count == 1)
    #expect(d.imageShape! == (12, 12, 3))
    let sub = d.subset([3, 0])
    #expect(sub.paths == [d.paths![3], d.paths![0]])
  }
}

/// `jpeg` with an EXIF APP1 segment whose IFD 0 holds `orientation`, right after the SOI marker.
func withOrientation(_ jpeg: [UInt8], _ orientation: UInt16) -> [UInt8] {
  // "Exif\0\0", a little-endian TIFF header, IFD 0 with one SHORT entry (tag 0x0112), no next IFD.
  var tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00]
  tiff += [0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, UInt8(orientation & 0xFF), UInt8(orientation >> 8), 0x00, 0x00]
  tiff += [0x00, 0x00, 0x00, 0x00]
  let body = Array("Exif".utf8) + [0, 0] + tiff
  let length = body.count + 2
  return [0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + body + Array(jpeg.dropFirst(2))
}

@Suite("Images: orientation, set-up mistakes, lists, cancelling")
struct ImageEdgeTests {
  /// Red rises left to right, green top to bottom: any wrong turn or window shows.
  static func ramp(width: Int, height: Int) -> PixelImage {
    var p: [UInt8] = []
    for y in 0..<height {
      for x in 0..<width { p += [UInt8(x * 255 / (width - 1)), UInt8(y * 255 / (height - 1)), 60] }
    }
    return PixelImage(width: width, height: height, channels: 3, pixels: p)
  }

  /// What EXIF orientation 6 displays for `image` (as libexif and PIL's exif_transpose turn it).
  static func turned6(_ image: PixelImage) -> PixelImage {
    let w = image.width, h = image.height
    var p = [UInt8](repeating: 0, count: image.pixels.count)
    for y in 0..<w {
      for x in 0..<h {
        let sx = y, sy = h - 1 - x
        for k in 0..<3 { p[(y * h + x) * 3 + k] = image.pixels[(sy * w + sx) * 3 + k] }
      }
    }
    return PixelImage(width: h, height: w, channels: 3, pixels: p)
  }

  @Test("a JPEG turned by its EXIF orientation: the header size is the displayed one, and the scaled fast path crops the displayed image")
  func orientedFastPath() throws {
    let folder = try scratchFolder("oriented")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let stored = Self.ramp(width: 320, height: 200)
    let jpeg = withOrientation(try ImageFile.jpeg(stored, quality: 95), 6)
    #expect(ImageFile.jpegSize(jpeg)! == (200, 320))
    let full = try ImageFile.decode(jpeg, name: "x")
    #expect(full.width == 200 && full.height == 320)
    // Decoded at a reduced DCT scale, still turned: at least the asked size as displayed.
    let small = try ImageFile.decode(jpeg, name: "x", minWidth: 40, minHeight: 80)
    #expect(small.width == 50 && small.height == 80, "\(small.width)x\(small.height)")
    try Data(jpeg).write(to: URL(fileURLWithPath: "\(folder)/turned.jpg"))
    try Data(try ImageFile.png(Self.turned6(stored))).write(to: URL(fileURLWithPath: "\(folder)/displayed.png"))
    let list = ImageList(paths: ["\(folder)/turned.jpg", "\(folder)/displayed.png"], labels: [0, 0], classNames: ["a"])
    for text in ["random-resized-crop:size=32,scale=0.05/0.1,ratio=0.5/2", "resize:size=40,center-crop:size=32"] {
      let loader = try ImageLoader(list: list, transforms: try ImageTransforms(parsing: text), height: 32, width: 32, channels: 3, seed: 5)
      // The same stream for both files: the same window on the same displayed picture (measured
      // 0.003 and 0.001; a window drawn on the stored sides gave 0.025).
      let a = try loader.load([0], stream: 1).rows, b = try loader.load([1], stream: 1).rows
      let meanDifference = zip(a.row(0), b.row(0)).map { Double(abs($0 - $1)) }.reduce(0, +) / Double(a.columns)
      #expect(meanDifference < 0.01, "\(text): mean difference \(meanDifference)")
    }
  }

  @Test("transforms that give another size stop with the set-up named, even when bad files are skipped")
  func setUpMistakes() throws {
    let root = try ImageLoaderTests.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    #expect(throws: ImageError("the transforms 'center-crop:size=12' end with a 12x12 crop, and the images must be 16x16")) {
      try ImageLoader(list: list, transforms: try ImageTransforms(parsing: "center-crop:size=12"), height: 16, width: 16, channels: 3)
    }
    // A resize alone leaves the aspect: these pictures are not square.
    let loader = try ImageLoader(list: list, transforms: try ImageTransforms(parsing: "resize:size=16"), height: 16, width: 16, channels: 3)
    do {
      _ = try loader.load(Array(list.paths.indices), onBadImage: .skip)
      Issue.record("loaded images of the wrong size")
    } catch {
      #expect("\(error)".contains("give") && "\(error)".contains("end them with center-crop:size=16"), "\(error)")
    }
    // A resize to more pixels than any decoder makes is an error, not a crash.
    var rng = RandomSource(seed: 0)
    let thin = PixelImage(width: 4000, height: 1, channels: 1, pixels: [UInt8](repeating: 9, count: 4000))
    #expect(throws: ImageError.self) { try ImageTransforms(parsing: "resize:size=8192").apply(thin, rng: &rng) }
    #expect(throws: ImageError.self) { try thin.resized(width: 0, height: 3) }
  }

  @Test("folders: hidden folders and folders named like images are skipped")
  func hiddenAndFolders() throws {
    let root = try ImageLoaderTests.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let before = try ImageList.folder(root).paths.count
    try FileManager.default.createDirectory(atPath: "\(root)/a/.thumbnails", withIntermediateDirectories: true)
    try Data(try ImageFile.png(testPicture(width: 4, height: 4, channels: 1))).write(to: URL(fileURLWithPath: "\(root)/a/.thumbnails/t.png"))
    try FileManager.default.createDirectory(atPath: "\(root)/a/album.jpg", withIntermediateDirectories: true)
    let after = try ImageList.folder(root)
    #expect(after.paths.count == before && !after.paths.contains { $0.contains(".thumbnails") || $0.hasSuffix("album.jpg") })
  }

  @Test("lists: quoted paths with commas, a byte-order mark, CRLF lines; numeric labels in numeric order; errors name the line")
  func csvDetails() throws {
    let root = try scratchFolder("csvlist")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let text = "\u{FEFF}path,label\r\n\"x, y.jpg\",10\r\nb.png,9\r\n\"say \"\"hi\"\".png\",2\r\n"
    try Data(text.utf8).write(to: URL(fileURLWithPath: "\(root)/list.csv"))
    let list = try ImageList.csv("\(root)/list.csv")
    #expect(list.paths == ["\(root)/x, y.jpg", "\(root)/b.png", "\(root)/say \"hi\".png"], "\(list.paths)")
    #expect(list.classNames == ["2", "9", "10"] && list.labels == [2, 1, 0])
    // The paths file `dml embed` writes reads back as a list.
    try Data("row,path,label,class\n0,\"a,b.jpg\",1,shirt\n1,c.jpg,0,coat\n".utf8).write(to: URL(fileURLWithPath: "\(root)/paths.csv"))
    #expect(try ImageList.csv("\(root)/paths.csv").paths == ["\(root)/a,b.jpg", "\(root)/c.jpg"])
    try Data("path,label\n\"multi\nline.jpg\",a\nshort\n".utf8).write(to: URL(fileURLWithPath: "\(root)/bad.csv"))
    do { _ = try ImageList.csv("\(root)/bad.csv"); Issue.record("read") } catch { #expect("\(error)".contains("line 4 has 1 fields"), "\(error)") }
  }

  @Test("separate image sets compare classes by name")
  func relabel() throws {
    var d = Dataset(features: Matrix(rows: 3, columns: 0), labels: [0, 1, 2])
    d.classNames = ["cat", "dog", "owl"]
    let r = d.relabeled(toClassNames: ["ant", "dog", "cat"])
    #expect(r.labels == [2, 1, 3] && r.classNames == ["ant", "dog", "cat", "owl"])
  }

  @Test("the prefetching loader: next() after cancel returns what was ready, then nil, without waiting for ever")
  func cancelled() throws {
    let root = try ImageLoaderTests.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let list = try ImageList.folder(root)
    let good = list.paths.indices.filter { !list.paths[$0].hasSuffix("broken.JPG") }
    let loader = try ImageLoader(list: list, transforms: try ImageTransforms(parsing: "resize:size=8,center-crop:size=8"), height: 8, width: 8, channels: 3)
    let prefetching = PrefetchingLoader(loader: loader, batches: Array(repeating: good, count: 50), depth: 1)
    prefetching.cancel()
    var taken = 0
    while try prefetching.next() != nil { taken += 1 }
    #expect(taken <= 2)
  }
}
