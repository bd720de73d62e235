/// Near-duplicate images that may be shifted or noisy copies of each other.
///
/// Pixel distances fail here: a garment moved by one pixel is farther from itself than from many
/// other garments. The finder therefore compares images under the shift that best aligns them:
///
/// 1. **Candidates** (no `N × N` matrix): each image's `candidates` nearest neighbours by the exact
///    k-NN search twice, on the raw pixels (which finds noisy copies) and on the images moved so
///    their intensity centroid is at the centre and blurred (which finds shifted copies).
/// 2. **Score**: the shift-tolerant distance of each candidate pair, the smallest over shifts of up
///    to `maxShift` pixels of the root mean squared difference on the overlap, scaled to the whole
///    image (`√(pixels × mean)`), so that it reads as a Euclidean pixel distance.
/// 3. **Groups**: pairs within the threshold are linked and grouped as connected components.
public struct ImageDuplicateFinder: Sendable {
  /// Image height, width and channels (rows are `height × width × channels`, channels last).
  public var height: Int, width: Int, channels: Int
  /// The largest shift tried, in pixels, in each direction.
  public var maxShift: Int
  /// Neighbours per image from each of the two candidate searches.
  public var candidates: Int
  /// The Gaussian blur (σ, pixels) of the centred images used to find shifted copies.
  public var blur: Double
  /// Pixels brighter than this fraction of an image's range weigh in its centroid (the rest,
  /// background and noise, do not).
  public var centroidThreshold: Double

  /// Creates a finder for `height × width × channels` images (single-channel by default); the
  /// other defaults are shifts of up to 2 pixels, 10 candidates, a σ = 1 blur and a 0.2 threshold.
  public init(height: Int, width: Int, channels: Int = 1, maxShift: Int = 2, candidates: Int = 10, blur: Double = 1, centroidThreshold: Double = 0.2) {
    self.height = height
    self.width = width
    self.channels = channels
    self.maxShift = maxShift
    self.candidates = candidates
    self.blur = blur
    self.centroidThreshold = centroidThreshold
  }

  /// A candidate pair `i < j` and its shift-tolerant distance.
  public struct Pair: Sendable, Equatable {
    /// The row indices of the two images, `i < j`.
    public var i: Int32, j: Int32
    /// The shift-tolerant distance between the two images, scaled as a Euclidean pixel distance
    /// (or any distance, smaller for closer items, when pairs come from elsewhere).
    public var distance: Float
    /// The pair of rows `i < j` at `distance`.
    public init(i: Int32, j: Int32, distance: Float) {
      self.i = i
      self.j = j
      self.distance = distance
    }
  }

  /// Every candidate pair, each once, with its shift-tolerant distance.
  public func candidatePairs(_ images: Matrix<Float>) throws -> [Pair] {
    let n = images.rows
    guard images.columns == height * width * channels, height > 2 * maxShift, width > 2 * maxShift, maxShift >= 0 else {
      throw EvaluationError("images have \(images.columns) values; expected \(height)×\(width)×\(channels) with a shift of at most \(maxShift)")
    }
    guard images.isFinite else { throw EvaluationError("images contain NaN or infinite values") }
    guard n >= 2 else { return [] }
    let k = Swift.min(candidates, n - 1)
    let plain = Distance(.euclidean, normalizesEmbeddings: false)
    let raw = try nearestNeighbors(queries: images, references: images, k: k, distance: plain, excludeSelf: true)
    let centred = centredAndBlurred(images)
    let aligned = try nearestNeighbors(queries: centred, references: centred, k: k, distance: plain, excludeSelf: true)
    var keys: [Int64] = []
    keys.reserveCapacity(2 * n * k)
    for found in [raw, aligned] {
      for i in 0..<n {
        for j in found.row(i) where j >= 0 {
          let (a, b) = (Swift.min(Int64(i), Int64(j)), Swift.max(Int64(i), Int64(j)))
          keys.append(a << 32 | b)
        }
      }
    }
    keys.sort()
    var pairs: [Pair] = []
    pairs.reserveCapacity(keys.count)
    var previous: Int64 = -1
    images.withUnsafeBufferPointer { x in
      for key in keys where key != previous {
        previous = key
        let (i, j) = (Int(key >> 32), Int(key & 0xFFFF_FFFF))
        pairs.append(Pair(i: Int32(i), j: Int32(j), distance: shiftTolerantDistance(x.baseAddress! + i * images.columns, x.baseAddress! + j * images.columns)))
      }
    }
    return pairs
  }

  /// The smallest, over shifts `(dx, dy)` with `|dx|, |dy| ≤ maxShift`, of the root of the mean
  /// squared difference between `a` and `b` moved by `(dx, dy)` on their overlap, times
  /// `√(height × width × channels)`. Symmetric, and 0 for an exact shifted copy whose moved-out
  /// border was background.
  public func shiftTolerantDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) -> Float {
    let (h, w, c, s) = (height, width, channels, maxShift)
    var best = Float.infinity
    for dy in -s...s {
      for dx in -s...s {
        // Overlap: a's pixel (y, x) against b's (y − dy, x − dx).
        let y0 = Swift.max(0, dy), y1 = h + Swift.min(0, dy)
        let x0 = Swift.max(0, dx), x1 = w + Swift.min(0, dx)
        let count = Float((y1 - y0) * (x1 - x0) * c)
        let limit = best * count  // stop once this shift cannot win
        var sum: Float = 0
        var y = y0
        while y < y1 && sum <= limit {
          let pa = a + (y * w + x0) * c, pb = b + ((y - dy) * w + x0 - dx) * c
          for t in 0..<((x1 - x0) * c) {
            let d = pa[t] - pb[t]
            sum += d * d
          }
          y += 1
        }
        if sum <= limit { best = Swift.min(best, sum / count) }
      }
    }
    return (best * Float(h * w * c)).squareRoot()
  }

  /// The groups of images linked by pairs within `maxDistance` (connected components of two or
  /// more), each sorted, ordered by first member.
  public func groups(_ pairs: [Pair], count n: Int, maxDistance: Double) -> [[Int]] {
    var links = UnionFind(n)
    for p in pairs where Double(p.distance) <= maxDistance { links.union(Int(p.i), Int(p.j)) }
    return links.groups()
  }

  /// One pass of a separable blur with zero beyond the border: along each row (`alongRows`) or
  /// along each column.
  func blurAxis(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, kernel: [Float], alongRows: Bool) {
    let (h, w, c) = (height, width, channels)
    let radius = kernel.count / 2
    let (limit, step) = alongRows ? (w, c) : (h, w * c)
    for y in 0..<h {
      for x in 0..<w {
        let position = alongRows ? x : y
        for ch in 0..<c {
          let center = (y * w + x) * c + ch
          var s: Float = 0
          for (q, kv) in kernel.enumerated() {
            let u = position + q - radius
            if u >= 0 && u < limit { s += kv * src[center + (u - position) * step] }
          }
          dst[center] = s
        }
      }
    }
  }

  /// The images moved so their intensity centroid is at the centre (whole pixels, zero fill),
  /// then blurred.
  func centredAndBlurred(_ images: Matrix<Float>) -> Matrix<Float> {
    let (n, h, w, c) = (images.rows, height, width, channels)
    var out = Matrix<Float>(rows: n, columns: images.columns)
    // A normalised 1-D Gaussian, radius 2σ.
    let radius = Swift.max(0, Int((2 * blur).rounded(.up)))
    var kernel = (-radius...radius).map { blur > 0 ? Float.exp(-Float($0 * $0) / Float(2 * blur * blur)) : ($0 == 0 ? 1 : 0) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    var moved = [Float](repeating: 0, count: images.columns), across = moved
    images.withUnsafeBufferPointer { x in
      out.withUnsafeMutableBufferPointer { o in
        for i in 0..<n {
          let img = x.baseAddress! + i * images.columns
          var lo = Float.infinity, hi = -Float.infinity
          for t in 0..<images.columns {
            lo = Swift.min(lo, img[t])
            hi = Swift.max(hi, img[t])
          }
          let cut = lo + Float(centroidThreshold) * (hi - lo)
          var mass: Float = 0, my: Float = 0, mx: Float = 0
          for y in 0..<h {
            for xx in 0..<w {
              for ch in 0..<c {
                let v = img[(y * w + xx) * c + ch]
                guard v > cut else { continue }
                let weight = v - lo
                mass += weight
                my += weight * Float(y)
                mx += weight * Float(xx)
              }
            }
          }
          let dy = mass > 0 ? Int((Float(h - 1) / 2 - my / mass).rounded()) : 0
          let dx = mass > 0 ? Int((Float(w - 1) / 2 - mx / mass).rounded()) : 0
          moved.withUnsafeMutableBufferPointer {
            shiftImage(img, into: $0.baseAddress!, height: h, width: w, channels: c, dx: dx, dy: dy, fill: lo)
          }
          // Separable blur: along rows, then along columns (zero beyond the border).
          moved.withUnsafeBufferPointer { m in
            across.withUnsafeMutableBufferPointer { a in
              blurAxis(m.baseAddress!, into: a.baseAddress!, kernel: kernel, alongRows: true)
            }
          }
          across.withUnsafeBufferPointer { a in
            blurAxis(a.baseAddress!, into: o.baseAddress! + i * images.columns, kernel: kernel, alongRows: false)
          }
        }
      }
    }
    return out
  }
}

/// Writes `src` moved by whole pixels `(dx, dy)` into `dst`, the uncovered border set to `fill`
/// (images of `height × width × channels`, channels last).
func shiftImage(
  _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, height h: Int, width w: Int, channels c: Int,
  dx: Int, dy: Int, fill: Float
) {
  dst.update(repeating: fill, count: h * w * c)
  for y in 0..<h where (0..<h).contains(y - dy) {
    for x in 0..<w where (0..<w).contains(x - dx) {
      for ch in 0..<c { dst[(y * w + x) * c + ch] = src[((y - dy) * w + x - dx) * c + ch] }
    }
  }
}

/// Disjoint sets with path halving; the root of a set is its smallest member.
struct UnionFind {
  var parent: [Int]
  init(_ n: Int) { parent = Array(0..<n) }
  mutating func find(_ i: Int) -> Int {
    var i = i
    while parent[i] != i {
      parent[i] = parent[parent[i]]
      i = parent[i]
    }
    return i
  }
  mutating func union(_ a: Int, _ b: Int) {
    let (ra, rb) = (find(a), find(b))
    if ra != rb { parent[Swift.max(ra, rb)] = Swift.min(ra, rb) }
  }
  /// Sets of two or more, each sorted, ordered by first member.
  mutating func groups() -> [[Int]] {
    var byRoot: [Int: [Int]] = [:]
    for i in parent.indices { byRoot[find(i), default: []].append(i) }
    return byRoot.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
  }
}

/// Planted near-duplicates, to measure a duplicate finder: copies of chosen originals appended to
/// a set of images, with the truth of which item each one copies.
public enum PlantedDuplicates {
  /// Appends, for each of `originals` images drawn without replacement (seeded), a noisy copy
  /// (Gaussian noise of standard deviation `noise` times the data's range, clamped to the range)
  /// and a shifted copy (moved by a random whole-pixel `(dx, dy) ≠ 0` with `|dx|, |dy| ≤ maxShift`,
  /// filled with the data's minimum). Returns the images and, for each, the index of the item it
  /// copies (itself for the originals and the untouched).
  public static func plant(
    _ images: Matrix<Float>, height: Int, width: Int, channels: Int = 1, originals: Int, noise: Double = 0.05,
    maxShift: Int = 2, seed: UInt64
  ) throws -> (images: Matrix<Float>, source: [Int]) {
    let (n, d) = (images.rows, images.columns)
    guard d == height * width * channels else { throw EvaluationError("images have \(d) values, not \(height)×\(width)×\(channels)") }
    guard originals >= 1 && originals <= n else { throw EvaluationError("cannot copy \(originals) of \(n) images") }
    guard maxShift >= 1 && maxShift < Swift.min(height, width) else { throw EvaluationError("shift \(maxShift) must lie in 1..<\(Swift.min(height, width))") }
    var rng = RandomSource(seed: seed)
    var order = Array(0..<n)
    rng.shuffle(&order)
    let chosen = order.prefix(originals)
    let lo = images.elements.min() ?? 0, hi = images.elements.max() ?? 1
    let sigma = Float(noise) * (hi - lo)
    var out = images.elements
    out.reserveCapacity((n + 2 * originals) * d)
    var source = Array(0..<n)
    for o in chosen {
      let img = Array(images.elements[(o * d)..<((o + 1) * d)])
      out += img.map { Swift.min(hi, Swift.max(lo, $0 + sigma * Float(rng.normal(Double.self)))) }
      var dx = 0, dy = 0
      while dx == 0 && dy == 0 {
        dx = rng.index(below: 2 * maxShift + 1) - maxShift
        dy = rng.index(below: 2 * maxShift + 1) - maxShift
      }
      var moved = [Float](repeating: 0, count: d)
      img.withUnsafeBufferPointer { src in
        moved.withUnsafeMutableBufferPointer {
          shiftImage(src.baseAddress!, into: $0.baseAddress!, height: height, width: width, channels: channels, dx: dx, dy: dy, fill: lo)
        }
      }
      out += moved
      source += [o, o]
    }
    return (Matrix(rows: n + 2 * originals, columns: d, elements: out), source)
  }

  /// Pair precision and recall of `groups` against the truth `source` (items copying the same
  /// original belong together): a predicted pair is two members of one group; a true pair is two
  /// items with the same source.
  public static func pairScores(groups: [[Int]], source: [Int]) -> (precision: Double, recall: Double, predicted: Int, truePairs: Int) {
    func pairsWithin(_ counts: [Int: Int]) -> Int { counts.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 } }
    var predicted = 0, correct = 0
    for g in groups {
      predicted += g.count * (g.count - 1) / 2
      var bySource: [Int: Int] = [:]
      for i in g { bySource[source[i], default: 0] += 1 }
      correct += pairsWithin(bySource)
    }
    var all: [Int: Int] = [:]
    for s in source { all[s, default: 0] += 1 }
    let truePairs = pairsWithin(all)
    return (predicted > 0 ? Double(correct) / Double(predicted) : 1, truePairs > 0 ? Double(correct) / Double(truePairs) : 1, predicted, truePairs)
  }

  /// The threshold, among the candidate pairs' distances, whose groups have the best F1 against
  /// `source` (the smallest of equals), with its precision and recall. Exact at every threshold:
  /// pairs are linked in order of distance and the pair counts updated as components merge.
  public static func calibrate(_ pairs: [ImageDuplicateFinder.Pair], source: [Int])
    -> (threshold: Double, precision: Double, recall: Double)
  {
    let n = source.count
    var all: [Int: Int] = [:]
    for s in source { all[s, default: 0] += 1 }
    let truePairs = all.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 }
    let sorted = pairs.sorted { $0.distance < $1.distance }
    var links = UnionFind(n)
    var size = [Int](repeating: 1, count: n)
    var counts: [[Int: Int]] = source.map { [$0: 1] }
    var predicted = 0, correct = 0
    var best = (threshold: 0.0, precision: 1.0, recall: 0.0)
    var bestF1 = -1.0
    for (index, p) in sorted.enumerated() {
      var (a, b) = (links.find(Int(p.i)), links.find(Int(p.j)))
      if a != b {
        if counts[a].count < counts[b].count { swap(&a, &b) }
        predicted += size[a] * size[b]
        for (s, c) in counts[b] {
          correct += c * (counts[a][s] ?? 0)
          counts[a][s, default: 0] += c
        }
        counts[b] = [:]
        size[a] += size[b]
        // Keep `a` (which holds the counts) as the root.
        links.parent[b] = a
      }
      // Score a threshold once every pair at this distance is linked.
      if index + 1 == sorted.count || sorted[index + 1].distance != p.distance {
        let precision = predicted > 0 ? Double(correct) / Double(predicted) : 1
        let recall = truePairs > 0 ? Double(correct) / Double(truePairs) : 1
        let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        if f1 > bestF1 {
          bestF1 = f1
          best = (Double(p.distance), precision, recall)
        }
      }
    }
    return best
  }
}
