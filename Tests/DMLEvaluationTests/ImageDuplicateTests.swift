import DMLData
import DMLEvaluation
import Testing

@Suite("Near-duplicate images: shifted and noisy copies")
struct ImageDuplicateTests {
  /// The shift-tolerant distance by its definition, in Double.
  static func bruteForce(_ a: [Float], _ b: [Float], h: Int, w: Int, s: Int) -> Double {
    var best = Double.infinity
    for dy in -s...s {
      for dx in -s...s {
        var sum = 0.0, count = 0
        for y in 0..<h where (0..<h).contains(y - dy) {
          for x in 0..<w where (0..<w).contains(x - dx) {
            let d = Double(a[y * w + x]) - Double(b[(y - dy) * w + x - dx])
            sum += d * d
            count += 1
          }
        }
        best = min(best, sum / Double(count))
      }
    }
    return (best * Double(h * w)).squareRoot()
  }

  @Test("the distance is the best shift's overlap error: symmetric, 0 for a shifted copy, as defined")
  func distance() throws {
    var rng = RandomSource(seed: 3)
    let (h, w) = (12, 10)
    var a = [Float](repeating: 0, count: h * w)
    for y in 3..<9 { for x in 3..<7 { a[y * w + x] = Float(rng.uniform(Double.self)) } }
    let b = (0..<(h * w)).map { _ in Float(rng.uniform(Double.self)) }
    // a moved by (dx, dy) = (2, -1): its content stays inside, so the copy is exact.
    var moved = [Float](repeating: 0, count: h * w)
    for y in 0..<h where (0..<h).contains(y + 1) { for x in 0..<w where (0..<w).contains(x - 2) { moved[y * w + x] = a[(y + 1) * w + x - 2] } }
    let finder = ImageDuplicateFinder(height: h, width: w, maxShift: 2)
    func d(_ p: [Float], _ q: [Float]) -> Float { p.withUnsafeBufferPointer { x in q.withUnsafeBufferPointer { finder.shiftTolerantDistance(x.baseAddress!, $0.baseAddress!) } } }
    #expect(d(a, moved) == 0)
    #expect(d(moved, a) == 0)
    #expect(abs(Double(d(a, b)) - Self.bruteForce(a, b, h: h, w: w, s: 2)) < 1e-4)
    #expect(abs(Double(d(b, a)) - Double(d(a, b))) < 1e-4)
    #expect(d(a, b) > 1)
    // With no shift allowed, it is the plain Euclidean distance.
    let plain = ImageDuplicateFinder(height: h, width: w, maxShift: 0)
    let euclid = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
    #expect(abs(Double(a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { plain.shiftTolerantDistance(x.baseAddress!, $0.baseAddress!) } }) - euclid) < 1e-4)
  }

  @Test("pair precision and recall count pairs within groups")
  func scores() {
    // Truth: {0, 5, 6} copies of 0; {1, 7} copies of 1.
    let source = [0, 1, 2, 3, 4, 0, 0, 1]
    let s = PlantedDuplicates.pairScores(groups: [[0, 5, 6], [1, 2, 7]], source: source)
    #expect(s.truePairs == 4 && s.predicted == 6)
    #expect(s.precision == 4.0 / 6 && s.recall == 1)
    #expect(PlantedDuplicates.pairScores(groups: [], source: source).recall == 0)
  }

  @Test("Fashion-MNIST with planted noisy and shifted copies: calibrated on training images, precision and recall ≥ 0.95 on test images")
  func fashionMNIST() throws {
    let train = try FashionMNIST.load(train: true, directory: FashionMNIST.defaultDirectory)
    let test = try FashionMNIST.load(train: false, directory: FashionMNIST.defaultDirectory)
    let finder = ImageDuplicateFinder(height: 28, width: 28, maxShift: 2)
    let calibration = try PlantedDuplicates.plant(train.features.rows(Array(0..<2000)), height: 28, width: 28, originals: 100, seed: 7)
    let c = PlantedDuplicates.calibrate(try finder.candidatePairs(calibration.images), source: calibration.source)
    #expect(c.threshold > 0.5 && c.threshold < 6, "calibrated \(c)")
    let planted = try PlantedDuplicates.plant(test.features.rows(Array(0..<2000)), height: 28, width: 28, originals: 100, seed: 1)
    #expect(planted.images.rows == 2200)
    let groups = finder.groups(try finder.candidatePairs(planted.images), count: planted.images.rows, maxDistance: c.threshold)
    let s = PlantedDuplicates.pairScores(groups: groups, source: planted.source)
    #expect(s.truePairs == 300)
    #expect(s.precision >= 0.95, "precision \(s.precision)")
    #expect(s.recall >= 0.95, "recall \(s.recall)")
    // Cosine similarity of the raw pixels cannot do it: at each threshold, precision or recall fails.
    for t in [0.95, 0.98, 0.99, 0.995] {
      let cosine = PlantedDuplicates.pairScores(
        groups: try nearDuplicateGroups(planted.images.rowsNormalized(), threshold: t, distance: .cosine), source: planted.source)
      #expect(cosine.precision < 0.9 || cosine.recall < 0.9, "cosine \(t): \(cosine)")
    }
  }
}
