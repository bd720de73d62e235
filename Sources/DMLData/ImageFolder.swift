import Foundation
import SwiftCSV

/// Image files with labels: what `--data folder:PATH` and `--data list:FILE.csv` name.
public struct ImageList: Sendable, Equatable {
  /// Each image's path.
  public var paths: [String]
  /// Each image's label: an index into `classNames`.
  public var labels: [Int]
  /// The class names, label by label.
  public var classNames: [String]

  /// A list of `paths` with `labels` (indices into `classNames`).
  public init(paths: [String], labels: [Int], classNames: [String]) {
    precondition(paths.count == labels.count, "ImageList: \(paths.count) paths, \(labels.count) labels")
    self.paths = paths
    self.labels = labels
    self.classNames = classNames
  }

  /// torchvision's ImageFolder layout: one subfolder per class (sorted by name, labels 0, 1, …),
  /// holding JPEG and PNG files (by extension, case-insensitive; sorted; subfolders within a class
  /// folder are searched too). Hidden files and folders, folders named like images, and other
  /// files are skipped. `progress` is called with the number of files found so far, every 1,000.
  public static func folder(_ path: String, progress: ((Int) -> Void)? = nil) throws -> ImageList {
    let fm = FileManager.default
    var isFolder: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
      throw DataError("folder:\(path): no such folder")
    }
    guard let entries = try? fm.contentsOfDirectory(atPath: path) else { throw DataError("folder:\(path): cannot be read") }
    let classes = entries.filter { !$0.hasPrefix(".") }.filter {
      var d: ObjCBool = false
      return fm.fileExists(atPath: "\(path)/\($0)", isDirectory: &d) && d.boolValue
    }.sorted()
    guard !classes.isEmpty else { throw DataError("folder:\(path): no class subfolders (the layout is PATH/CLASS/IMAGE.jpg)") }
    var list = ImageList(paths: [], labels: [], classNames: classes)
    for (label, name) in classes.enumerated() {
      guard let walker = fm.enumerator(atPath: "\(path)/\(name)") else { throw DataError("folder:\(path)/\(name): cannot be read") }
      var files: [String] = []
      while let f = walker.nextObject() as? String {
        let last = (f as NSString).lastPathComponent
        var d: ObjCBool = false
        let exists = fm.fileExists(atPath: "\(path)/\(name)/\(f)", isDirectory: &d)
        if last.hasPrefix(".") {
          if d.boolValue { walker.skipDescendants() }
          continue
        }
        if exists && !d.boolValue && ImageFile.isImagePath(f) { files.append("\(path)/\(name)/\(f)") }
      }
      for f in files.sorted() {
        list.paths.append(f)
        list.labels.append(label)
        if list.paths.count % 1000 == 0 { progress?(list.paths.count) }
      }
    }
    guard !list.paths.isEmpty else { throw DataError("folder:\(path): no .jpg, .jpeg or .png files in its class folders") }
    progress?(list.paths.count)
    return list
  }

  /// A CSV file (RFC 4180: quoted fields may hold commas, quotes and line breaks; a UTF-8
  /// byte-order mark is skipped) with a header naming a `path` column and a `label` column (a
  /// class name or number, any text); paths are relative to the CSV file's folder unless
  /// absolute. Classes are numbered in increasing order of their labels: numerically when every
  /// label is an integer, else by name. An error names the file and line.
  public static func csv(_ file: String) throws -> ImageList {
    guard let data = FileManager.default.contents(atPath: file) else { throw DataError("list:\(file): no such file, or unreadable") }
    var text = String(decoding: data, as: UTF8.self)
    if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
    let table: EnumeratedCSV
    do { table = try EnumeratedCSV(string: text, delimiter: .comma, loadColumns: false) } catch {
      throw DataError("list:\(file): not a readable CSV file (\(error))")
    }
    let header = table.header.map { $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }
    guard let pathColumn = header.firstIndex(of: "path"), let labelColumn = header.firstIndex(of: "label") else {
      throw DataError("list:\(file): line 1 must be a header naming the columns path and label")
    }
    let base = (file as NSString).deletingLastPathComponent
    var records: [[String]] = []
    do { try table.enumerateAsArray(startAt: 1, rowLimit: nil) { records.append($0) } } catch {
      throw DataError("list:\(file): not a readable CSV file (\(error))")
    }
    var rows: [(String, String)] = []
    // The line each record starts on: the header's line breaks, then each record's.
    var line = 2 + table.header.reduce(0) { $0 + $1.filter(\.isNewline).count }
    for fields in records {
      defer { line += 1 + fields.reduce(0) { $0 + $1.filter(\.isNewline).count } }
      if fields.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) { continue }
      guard fields.count == header.count else {
        throw DataError("list:\(file): line \(line) has \(fields.count) fields, the header \(header.count)")
      }
      let p = fields[pathColumn].trimmingCharacters(in: .whitespaces), l = fields[labelColumn].trimmingCharacters(in: .whitespaces)
      guard !p.isEmpty, !l.isEmpty else { throw DataError("list:\(file): line \(line): an empty path or label") }
      rows.append((p.hasPrefix("/") ? p : (base.isEmpty ? p : "\(base)/\(p)"), l))
    }
    guard !rows.isEmpty else { throw DataError("list:\(file): no rows after the header") }
    let distinct = Set(rows.map(\.1))
    let numbers = distinct.compactMap { Int($0) }
    // Numbers in their order ("1" and "01" apart by text), else names.
    let names = numbers.count == distinct.count
      ? distinct.sorted { (Int($0)!, $0) < (Int($1)!, $1) }
      : distinct.sorted()
    let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    return ImageList(paths: rows.map(\.0), labels: rows.map { index[$0.1]! }, classNames: names)
  }

  /// The entries at `indices`, in that order (class names kept).
  public func subset(_ indices: [Int]) -> ImageList {
    ImageList(paths: indices.map { paths[$0] }, labels: indices.map { labels[$0] }, classNames: classNames)
  }
}

/// What to do with an image that cannot be read.
public enum BadImagePolicy: String, Sendable, CaseIterable {
  /// Stop with the path and the reason.
  case stop
  /// Leave it out and count it.
  case skip
}

/// Decodes and transforms images on worker threads, deterministically: sample `i` of a call is
/// transformed with a generator drawn from the seed, the call's `stream` and `i` alone, so the
/// result does not depend on the number of workers or their timing. Memory: the output, plus one
/// decoded image per worker (and the cache, when asked for).
public final class ImageLoader: @unchecked Sendable {
  /// The images.
  public let list: ImageList
  /// The transforms of every image.
  public let transforms: ImageTransforms
  /// The output image shape every transformed image must have.
  public let height: Int, width: Int, channels: Int
  /// Worker threads.
  public let workers: Int
  /// The seed of the random transforms.
  public let seed: UInt64
  /// Whether decoded images stay in memory.
  public let caches: Bool
  let cacheLock = NSLock()
  var cache: [Int: PixelImage] = [:]

  /// A loader of `list` to `height × width × channels` images (grey images become RGB and the
  /// reverse when `channels` says so). With `cacheDecoded`, decoded images stay in memory at full
  /// size (for small sets that are read every epoch; JPEGs then decode at full size, where the
  /// loader otherwise decodes them at a reduced DCT scale, so the pixels differ slightly). An
  /// error when the transforms end in a crop of another size than `height × width`.
  public init(
    list: ImageList, transforms: ImageTransforms, height: Int, width: Int, channels: Int, workers: Int = 2, seed: UInt64 = 0,
    cacheDecoded: Bool = false
  ) throws {
    guard height > 0 && width > 0 && (channels == 1 || channels == 3) else {
      throw ImageError("images of \(width)x\(height)x\(channels): the sides must be positive and the channels 1 or 3")
    }
    guard workers >= 1 else { throw ImageError("\(workers) workers: at least 1 is needed") }
    if let s = transforms.fixedSize, s != height || s != width {
      throw ImageError("the transforms '\(transforms.text)' end with a \(s)x\(s) crop, and the images must be \(width)x\(height)")
    }
    self.list = list
    self.transforms = transforms
    self.height = height
    self.width = width
    self.channels = channels
    self.workers = workers
    self.seed = seed
    caches = cacheDecoded
  }

  /// The float rows (`height × width × channels` each) of images `indices`, transformed with
  /// stream `stream`: row `r` draws from the stream's generator `firstRow + r` (its place in a
  /// whole batch of which `indices` may be a share). A bad image stops with its path and reason,
  /// or with `.skip` is left out: `kept` lists the positions in `indices` that were loaded,
  /// `failures` the others' errors. Transforms that give another size than the loader's always
  /// stop: that is a mistake of the set-up, not of one file.
  public func load(_ indices: [Int], stream: UInt64 = 0, firstRow: Int = 0, onBadImage: BadImagePolicy = .stop) throws
    -> (rows: Matrix<Float>, kept: [Int], failures: [String])
  {
    let size = height * width * channels
    var out = Matrix<Float>(rows: indices.count, columns: size)
    let errors = ErrorSlots(indices.count)
    let base = RandomSource(seed: seed).derived(stream: 0x1A6E_0000 &+ stream)
    out.withUnsafeMutableBufferPointer { all in
      let pointer = UnsafeMutableBufferPointerBox(all)
      let chunk = (indices.count + workers - 1) / Swift.max(1, workers)
      DispatchQueue.concurrentPerform(iterations: Swift.min(workers, Swift.max(1, indices.count))) { w in
        let start = w * chunk, end = Swift.min(indices.count, start + chunk)
        guard start < end else { return }
        for r in start..<end {
          do {
            var rng = base.derived(stream: UInt64(firstRow + r))
            let image = try transformed(indices[r], rng: &rng).converted(toChannels: channels)
            guard image.width == width && image.height == height else {
              errors.set(r, "\(list.paths[indices[r]]): the transforms '\(transforms.text)' give \(image.width)x\(image.height), and the images must be \(width)x\(height): end them with center-crop:size=\(width)", setUp: true)
              continue
            }
            transforms.floats(image, into: UnsafeMutableBufferPointer(rebasing: pointer.value[(r * size)..<((r + 1) * size)]))
          } catch {
            errors.set(r, "\(error)")
          }
        }
      }
    }
    if let setUp = errors.setUp { throw ImageError(setUp) }
    let failures = errors.values.compactMap { $0 }
    if let first = failures.first, onBadImage == .stop { throw ImageError(first) }
    let kept = indices.indices.filter { errors.values[$0] == nil }
    if kept.count < indices.count { out = out.rows(kept) }
    return (out, kept, failures)
  }

  /// Image `i` decoded and transformed. When the first step resizes or crops-and-resizes a JPEG,
  /// its window is drawn from the header's size first and the file is decoded at the smallest
  /// DCT scale that still covers it (PIL's `draft` mode, done for every image): a window drawn
  /// from the same distribution, at the same place up to the scale's rounding, for far less
  /// decoding work. With a cache of decoded images, every image decodes at full size.
  func transformed(_ i: Int, rng: inout RandomSource) throws -> PixelImage {
    guard !caches, !transforms.steps.isEmpty else { return try transforms.apply(try decoded(i), rng: &rng) }
    return try transformed(bytes: try ImageFile.bytes(list.paths[i]), path: list.paths[i], rng: &rng)
  }

  /// The rows of image files held in memory (`files`, named by `names` in errors), transformed
  /// as this loader transforms its list's images, with stream `stream`; any bad file stops.
  public func load(files: [[UInt8]], names: [String], stream: UInt64 = 0) throws -> Matrix<Float> {
    precondition(files.count == names.count, "ImageLoader.load(files:): one name per file")
    let size = height * width * channels
    var out = Matrix<Float>(rows: files.count, columns: size)
    let base = RandomSource(seed: seed).derived(stream: 0x1A6E_0000 &+ stream)
    for (r, bytes) in files.enumerated() {
      var rng = base.derived(stream: UInt64(r))
      let image = try transformed(bytes: bytes, path: names[r], rng: &rng).converted(toChannels: channels)
      guard image.width == width && image.height == height else {
        throw ImageError("\(names[r]): the transforms '\(transforms.text)' give \(image.width)x\(image.height), and the images must be \(width)x\(height)")
      }
      out.withUnsafeMutableBufferPointer { transforms.floats(image, into: UnsafeMutableBufferPointer(rebasing: $0[(r * size)..<((r + 1) * size)])) }
    }
    return out
  }

  func transformed(bytes: [UInt8], path: String, rng: inout RandomSource) throws -> PixelImage {
    guard let first = transforms.steps.first else { return try transforms.apply(try ImageFile.decode(bytes, name: path), rng: &rng) }
    guard let (w, h) = ImageFile.jpegSize(bytes) else { return try transforms.apply(try ImageFile.decode(bytes, name: path), rng: &rng) }
    var rest = transforms
    rest.steps.removeFirst()
    switch first {
    case .randomResizedCrop(let s, let scale, let ratio):
      let (x, y, cw, ch) = ImageTransforms.randomWindow(width: w, height: h, scale: scale, ratio: ratio, rng: &rng)
      let image = try ImageFile.decode(bytes, name: path, minWidth: (w * s + cw - 1) / cw, minHeight: (h * s + ch - 1) / ch)
      if image.width == w && image.height == h {
        return try rest.apply(try image.cropped(x: x, y: y, width: cw, height: ch).resized(width: s, height: s), rng: &rng)
      }
      // The window in the scaled image's pixels.
      let fx = Double(image.width) / Double(w), fy = Double(image.height) / Double(h)
      let sx = Swift.min(image.width - 1, Int(Double(x) * fx)), sy = Swift.min(image.height - 1, Int(Double(y) * fy))
      let sw = Swift.max(1, Swift.min(image.width - sx, Int((Double(cw) * fx).rounded())))
      let sh = Swift.max(1, Swift.min(image.height - sy, Int((Double(ch) * fy).rounded())))
      return try rest.apply(try image.cropped(x: sx, y: sy, width: sw, height: sh).resized(width: s, height: s), rng: &rng)
    case .resize(let s):
      let short = Swift.min(w, h)
      let image = try ImageFile.decode(bytes, name: path, minWidth: (w * s + short - 1) / short, minHeight: (h * s + short - 1) / short)
      return try transforms.apply(image, rng: &rng)
    default:
      return try transforms.apply(try ImageFile.decode(bytes, name: path), rng: &rng)
    }
  }

  func decoded(_ i: Int) throws -> PixelImage {
    if caches, let hit = cacheLock.withLock({ cache[i] }) { return hit }
    let image = try ImageFile.read(list.paths[i])
    if caches { cacheLock.withLock { cache[i] = image } }
    return image
  }

  final class ErrorSlots: @unchecked Sendable {
    let lock = NSLock()
    var values: [String?]
    /// The first mistake of the set-up (not of a file), which stops whatever the policy.
    var setUp: String?
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: String, setUp: Bool = false) {
      lock.withLock {
        values[i] = v
        if setUp && self.setUp == nil { self.setUp = v }
      }
    }
  }

  struct UnsafeMutableBufferPointerBox: @unchecked Sendable {
    let value: UnsafeMutableBufferPointer<Float>
    init(_ value: UnsafeMutableBufferPointer<Float>) { self.value = value }
  }
}

/// Batches prepared ahead on a thread of their own, at most `depth` waiting: while the trainer
/// works on one batch the next ones decode. `next()` returns them in order.
public final class PrefetchingLoader: @unchecked Sendable {
  let condition = NSCondition()
  var ready: [Int: Result<(rows: Matrix<Float>, kept: [Int], failures: [String]), any Error>] = [:]
  var consumed = 0
  var cancelled = false
  var finished = false
  let depth: Int
  let batches: [[Int]]
  /// Seconds `next()` waited for a batch that was not ready.
  public private(set) var waitSeconds = 0.0

  /// Starts preparing `batches` (index lists) with `loader`, batch `b` with stream `firstStream + b`
  /// and its rows numbered from `firstRows[b]` (0 by default), keeping at most `depth` ready
  /// batches.
  public init(
    loader: ImageLoader, batches: [[Int]], firstStream: UInt64 = 0, firstRows: [Int]? = nil, depth: Int = 2,
    onBadImage: BadImagePolicy = .stop
  ) {
    precondition(depth >= 1, "PrefetchingLoader: depth \(depth)")
    precondition(firstRows == nil || firstRows!.count == batches.count, "PrefetchingLoader: one first row per batch")
    self.depth = depth
    self.batches = batches
    let thread = Thread { [self] in
      defer {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
      }
      for (b, indices) in batches.enumerated() {
        condition.lock()
        while b - consumed >= depth && !cancelled { condition.wait() }
        let stop = cancelled
        condition.unlock()
        if stop { return }
        let result = Result { try loader.load(indices, stream: firstStream &+ UInt64(b), firstRow: firstRows?[b] ?? 0, onBadImage: onBadImage) }
        condition.lock()
        ready[b] = result
        condition.broadcast()
        condition.unlock()
      }
    }
    thread.name = "dml-prefetch"
    thread.start()
  }

  /// The next batch, in order; `nil` after the last, and after `cancel()` once the batches
  /// prepared before it are taken.
  public func next() throws -> (rows: Matrix<Float>, kept: [Int], failures: [String])? {
    condition.lock()
    defer { condition.unlock() }
    guard consumed < batches.count else { return nil }
    let start = Date()
    while ready[consumed] == nil && !finished { condition.wait() }
    waitSeconds += Date().timeIntervalSince(start)
    guard let result = ready.removeValue(forKey: consumed) else { return nil }
    consumed += 1
    condition.broadcast()
    return try result.get()
  }

  /// Stops preparing batches (the batch being prepared finishes first).
  public func cancel() {
    condition.lock()
    cancelled = true
    condition.broadcast()
    condition.unlock()
  }

  /// Batches ready and waiting now (at most `depth`).
  public var waiting: Int {
    condition.lock()
    defer { condition.unlock() }
    return ready.count
  }
}

extension Dataset {
  /// The images of `list`, decoded and transformed (with `transforms`, stream 0) into rows of
  /// `height × width × channels` floats on `workers` threads, with their labels, paths and class
  /// names. With `.skip`, images that cannot be read are left out and listed in `skipped`.
  public static func images(
    _ list: ImageList, transforms: ImageTransforms, height: Int, width: Int, channels: Int, workers: Int = 2,
    onBadImage: BadImagePolicy = .stop
  ) throws -> (dataset: Dataset, skipped: [String]) {
    let loader = try ImageLoader(list: list, transforms: transforms, height: height, width: width, channels: channels, workers: workers)
    let (rows, kept, failures) = try loader.load(Array(list.paths.indices), onBadImage: onBadImage)
    guard !kept.isEmpty else { throw DataError("no image of the \(list.paths.count) could be read: \(failures.first ?? "")") }
    var d = Dataset(features: rows, labels: kept.map { list.labels[$0] }, imageShape: (height, width, channels))
    d.paths = kept.map { list.paths[$0] }
    d.classNames = list.classNames
    d.ids = kept
    return (d, failures)
  }
}

extension Dataset {
  /// This data set with its labels renumbered by class name onto `names`: a class named in
  /// `names` takes its index there, the others the numbers after `names.count` (in the order of
  /// their own labels), so that two image sets whose folders hold the same classes in another
  /// order, or other classes, compare labels by name. Without class names it is unchanged.
  public func relabeled(toClassNames names: [String]) -> Dataset {
    guard let own = classNames else { return self }
    var merged = names
    var index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    var map: [Int: Int] = [:]
    for label in Set(labels).sorted() {
      let name = label < own.count ? own[label] : "\(label)"
      if index[name] == nil {
        index[name] = merged.count
        merged.append(name)
      }
      map[label] = index[name]!
    }
    var out = self
    out.labels = labels.map { map[$0]! }
    out.classNames = merged
    return out
  }
}

