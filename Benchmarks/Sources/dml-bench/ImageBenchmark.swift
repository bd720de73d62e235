import Foundation
import MetricLearning

/// The image pipeline: decode + random-resized-crop + flip + normalise to 3×112×112 on 2 worker
/// threads over a folder of JPEGs (generated once: `generate`), and the peak memory of a whole
/// epoch of batches through the prefetching loader.
enum ImageBenchmark {
  /// `dml-bench images generate FOLDER COUNT WIDTH HEIGHT`: a folder of COUNT JPEGs of
  /// WIDTH×HEIGHT in 10 class folders, smooth random pictures (quality 90).
  /// `dml-bench images throughput FOLDER [--workers 2] [--batch 64] [--size 112] [--rounds 3]`.
  /// `dml-bench images memory FOLDER [--batch 64] [--size 64]`: one epoch, peak RSS.
  static func run(_ args: [String]) -> Int32 {
    func option(_ name: String, _ fallback: Int) -> Int {
      guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) else { return fallback }
      return v
    }
    do {
      switch args.first {
      case "generate":
        guard args.count >= 5, let count = Int(args[2]), let w = Int(args[3]), let h = Int(args[4]) else { return usage() }
        try generate(args[1], count: count, width: w, height: h)
      case "throughput":
        guard args.count >= 2 else { return usage() }
        try throughput(args[1], workers: option("--workers", 2), batch: option("--batch", 64), size: option("--size", 112), rounds: option("--rounds", 3))
      case "memory":
        guard args.count >= 2 else { return usage() }
        try memory(args[1], batch: option("--batch", 64), size: option("--size", 64))
      default: return usage()
      }
    } catch {
      FileHandle.standardError.write(Data("dml-bench images: \(error)\n".utf8))
      return 1
    }
    return 0
  }

  static func usage() -> Int32 {
    FileHandle.standardError.write(Data("usage: dml-bench images generate FOLDER COUNT WIDTH HEIGHT | throughput FOLDER [--workers N] [--batch B] [--size S] [--rounds R] | memory FOLDER [--batch B] [--size S]\n".utf8))
    return 2
  }

  static func generate(_ folder: String, count: Int, width: Int, height: Int) throws {
    let fm = FileManager.default
    if fm.fileExists(atPath: folder) { try fm.removeItem(atPath: folder) }
    var rng = RandomSource(seed: 1)
    for c in 0..<10 { try fm.createDirectory(atPath: "\(folder)/class\(c)", withIntermediateDirectories: true) }
    // A few smooth base pictures (sums of waves), varied per image by a shift and a tint, so that
    // files differ and compress like photographs rather than noise.
    for i in 0..<count {
      var p = [UInt8](repeating: 0, count: width * height * 3)
      let fx = Float(1 + rng.index(below: 6)) / Float(width), fy = Float(1 + rng.index(below: 6)) / Float(height)
      let phase = rng.uniform(Float.self) * 6.28
      let tint = (rng.uniform(Float.self), rng.uniform(Float.self), rng.uniform(Float.self))
      for y in 0..<height {
        for x in 0..<width {
          let v = 0.5 + 0.25 * sin(6.28 * fx * Float(x) + phase) + 0.25 * cos(6.28 * fy * Float(y) * 1.7 + phase)
          let o = (y * width + x) * 3
          p[o] = UInt8(255 * Swift.min(1, v * (0.5 + tint.0)) * 0.99)
          p[o + 1] = UInt8(255 * Swift.min(1, v * (0.5 + tint.1)) * 0.99)
          p[o + 2] = UInt8(255 * Swift.min(1, v * (0.5 + tint.2)) * 0.99)
        }
      }
      let bytes = try ImageFile.jpeg(PixelImage(width: width, height: height, channels: 3, pixels: p), quality: 90)
      try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/class\(i % 10)/\(String(format: "%06d", i)).jpg"))
    }
    print("wrote \(count) JPEGs of \(width)x\(height) to \(folder)")
  }

  /// Images per second of the whole pipeline over every file, best of `rounds`.
  static func throughput(_ folder: String, workers: Int, batch: Int, size: Int, rounds: Int) throws {
    let list = try ImageList.folder(folder)
    let t = try ImageTransforms(parsing: "random-resized-crop:size=\(size),flip,normalize")
    var best = 0.0
    for r in 0..<rounds {
      let loader = try ImageLoader(list: list, transforms: t, height: size, width: size, channels: 3, workers: workers, seed: UInt64(r))
      var order = Array(list.paths.indices)
      var rng = RandomSource(seed: UInt64(r))
      rng.shuffle(&order)
      let batches = stride(from: 0, to: order.count, by: batch).map { Array(order[$0..<Swift.min(order.count, $0 + batch)]) }
      let start = Date()
      let prefetching = PrefetchingLoader(loader: loader, batches: batches, depth: 2 * workers)
      var n = 0
      while let b = try prefetching.next() { n += b.rows.rows }
      let rate = Double(n) / Date().timeIntervalSince(start)
      best = Swift.max(best, rate)
      print(String(format: "round %d: %.0f images/s", r + 1, rate))
    }
    print(String(format: "dml: %.0f images/s (best of %d), %d workers, %d files, 3x%dx%d", best, rounds, workers, list.paths.count, size, size))
  }

  /// Peak resident memory over one epoch of batches through the prefetching loader.
  static func memory(_ folder: String, batch: Int, size: Int) throws {
    let before = peakKilobytes()
    let list = try ImageList.folder(folder)
    let indexed = peakKilobytes()
    let t = try ImageTransforms(parsing: "random-resized-crop:size=\(size),flip,normalize")
    let loader = try ImageLoader(list: list, transforms: t, height: size, width: size, channels: 3, workers: 2)
    let batches = stride(from: 0, to: list.paths.count, by: batch).map { Array($0..<Swift.min(list.paths.count, $0 + batch)) }
    let prefetching = PrefetchingLoader(loader: loader, batches: batches, depth: 2)
    var n = 0
    while let b = try prefetching.next() { n += b.rows.rows }
    let after = peakKilobytes()
    print("images \(n): peak RSS before \(before / 1024) MB, after indexing \(indexed / 1024) MB, after the epoch \(after / 1024) MB")
  }

  static func peakKilobytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
  }
}
