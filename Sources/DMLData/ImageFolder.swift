import Foundation

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
  /// folder are searched too). Hidden files and other files are skipped. `progress` is called with
  /// the number of files found so far, every 1,000.
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
        if last.hasPrefix(".") { continue }
        if ImageFile.isImagePath(f) { files.append("\(path)/\(name)/\(f)") }
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

  /// A CSV file with a header naming a `path` column and a `label` column (a class name or
  /// number, any text); paths are relative to the CSV file's folder unless absolute. Classes are
  /// numbered in sorted order of their names. An error names the file and line.
  public static func csv(_ file: String) throws -> ImageList {
    guard let data = FileManager.default.contents(atPath: file) else { throw DataError("list:\(file): no such file, or unreadable") }
    let lines = String(decoding: data, as: UTF8.self).split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
      .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }
    guard let header = lines.first?.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }),
      let pathColumn = header.firstIndex(of: "path"), let labelColumn = header.firstIndex(of: "label")
    else { throw DataError("list:\(file): line 1 must be a header naming the columns path and label") }
    let base = (file as NSString).deletingLastPathComponent
    var rows: [(String, String)] = []
    for (i, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
      let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      guard fields.count == header.count else {
        throw DataError("list:\(file): line \(i + 1) has \(fields.count) fields, the header \(header.count)")
      }
      let p = fields[pathColumn], l = fields[labelColumn]
      guard !p.isEmpty, !l.isEmpty else { throw DataError("list:\(file): line \(i + 1): an empty path or label") }
      rows.append((p.hasPrefix("/") ? p : (base.isEmpty ? p : "\(base)/\(p)"), l))
    }
    guard !rows.isEmpty else { throw DataError("list:\(file): no rows after the header") }
    let names = Set(rows.map(\.1)).sorted { a, b in
      if let x = Int(a), let y = Int(b) { return x < y }
      return a < b
    }
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
  let cacheLock = NSLock()
  var cache: [Int: PixelImage]?

  /// A loader of `list` to `height × width × channels` images (grey images become RGB and the
  /// reverse when `channels` says so). With `cacheDecoded`, decoded images stay in memory (for
  /// small sets that are read every epoch).
  public init(
    list: ImageList, transforms: ImageTransforms, height: Int, width: Int, channels: Int, workers: Int = 2, seed: UInt64 = 0,
    cacheDecoded: Bool = false
  ) {
    precondition(height > 0 && width > 0 && (channels == 1 || channels == 3) && workers >= 1, "ImageLoader: bad shape or workers")
    self.list = list
    self.transforms = transforms
    self.height = height
    self.width = width
    self.channels = channels
    self.workers = workers
    self.seed = seed
    cache = cacheDecoded ? [:] : nil
  }

  /// The float rows (`height × width × channels` each) of images `indices`, transformed with
  /// stream `stream`: row `r` draws from the stream's generator `firstRow + r` (its place in a
  /// whole batch of which `indices` may be a share). A bad image stops with its path and reason,
  /// or with `.skip` is left out: `kept` lists the positions in `indices` that were loaded,
  /// `failures` the others' errors.
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
              throw ImageError("\(list.paths[indices[r]]): the transforms give \(image.width)x\(image.height), the network takes \(width)x\(height) (add resize and center-crop steps)")
            }
            transforms.floats(image, into: UnsafeMutableBufferPointer(rebasing: pointer.value[(r * size)..<((r + 1) * size)]))
          } catch {
            errors.set(r, "\(error)")
          }
        }
      }
    }
    let failures = errors.values.compactMap { $0 }
    if let first = failures.first, onBadImage == .stop { throw ImageError(first) }
    let kept = indices.indices.filter { errors.values[$0] == nil }
    if kept.count < indices.count { out = out.rows(kept) }
    return (out, kept, failures)
  }

  /// Image `i` decoded and transformed. When the first step resizes or crops-and-resizes a JPEG,
  /// its window is drawn from the header's size first and the file is decoded at the smallest
  /// DCT scale that still covers it (PIL's `draft` mode, done for every image): the same window,
  /// far less decoding work. With a cache of decoded images, every image decodes at full size.
  func transformed(_ i: Int, rng: inout RandomSource) throws -> PixelImage {
    guard cache == nil, let first = transforms.steps.first else { return transforms.apply(try decoded(i), rng: &rng) }
    let path = list.paths[i]
    let bytes = try ImageFile.bytes(path)
    guard let (w, h) = ImageFile.jpegSize(bytes) else { return transforms.apply(try ImageFile.decode(bytes, name: path), rng: &rng) }
    var rest = transforms
    rest.steps.removeFirst()
    switch first {
    case .randomResizedCrop(let s, let scale, let ratio):
      let (x, y, cw, ch) = ImageTransforms.randomWindow(width: w, height: h, scale: scale, ratio: ratio, rng: &rng)
      let image = try ImageFile.decode(bytes, name: path, minWidth: (w * s + cw - 1) / cw, minHeight: (h * s + ch - 1) / ch)
      if image.width == w && image.height == h {
        return rest.apply(image.cropped(x: x, y: y, width: cw, height: ch).resized(width: s, height: s), rng: &rng)
      }
      // The window in the scaled image's pixels.
      let fx = Double(image.width) / Double(w), fy = Double(image.height) / Double(h)
      let sx = Swift.min(image.width - 1, Int(Double(x) * fx)), sy = Swift.min(image.height - 1, Int(Double(y) * fy))
      let sw = Swift.max(1, Swift.min(image.width - sx, Int((Double(cw) * fx).rounded())))
      let sh = Swift.max(1, Swift.min(image.height - sy, Int((Double(ch) * fy).rounded())))
      return rest.apply(image.cropped(x: sx, y: sy, width: sw, height: sh).resized(width: s, height: s), rng: &rng)
    case .resize(let s):
      let short = Swift.min(w, h)
      let image = try ImageFile.decode(bytes, name: path, minWidth: (w * s + short - 1) / short, minHeight: (h * s + short - 1) / short)
      return transforms.apply(image, rng: &rng)
    default:
      return transforms.apply(try ImageFile.decode(bytes, name: path), rng: &rng)
    }
  }

  func decoded(_ i: Int) throws -> PixelImage {
    if cache != nil, let hit = cacheLock.withLock({ cache?[i] }) { return hit }
    let image = try ImageFile.read(list.paths[i])
    if cache != nil { cacheLock.withLock { cache?[i] = image } }
    return image
  }

  final class ErrorSlots: @unchecked Sendable {
    let lock = NSLock()
    var values: [String?]
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: String) { lock.withLock { values[i] = v } }
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

  /// The next batch, in order; `nil` after the last.
  public func next() throws -> (rows: Matrix<Float>, kept: [Int], failures: [String])? {
    condition.lock()
    defer { condition.unlock() }
    guard consumed < batches.count else { return nil }
    let start = Date()
    while ready[consumed] == nil { condition.wait() }
    waitSeconds += Date().timeIntervalSince(start)
    let result = ready.removeValue(forKey: consumed)!
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
    let loader = ImageLoader(list: list, transforms: transforms, height: height, width: width, channels: channels, workers: workers)
    let (rows, kept, failures) = try loader.load(Array(list.paths.indices), onBadImage: onBadImage)
    guard !kept.isEmpty else { throw DataError("no image of the \(list.paths.count) could be read: \(failures.first ?? "")") }
    var d = Dataset(features: rows, labels: kept.map { list.labels[$0] }, imageShape: (height, width, channels))
    d.paths = kept.map { list.paths[$0] }
    d.classNames = list.classNames
    d.ids = kept
    return (d, failures)
  }
}
