import DMLCore
import DMLPlot
import Foundation
import Testing

/// Three well-separated Gaussian blobs in `d` dimensions.
func blobs(perClass: Int, dimension d: Int, classes: Int = 3, spread: Double = 0.3, seed: UInt64 = 1) -> (Matrix<Double>, [Int]) {
  var rng = RandomSource(seed: seed)
  var x = Matrix<Double>(rows: perClass * classes, columns: d)
  var labels: [Int] = []
  for c in 0..<classes {
    var center = [Double](repeating: 0, count: d)
    center[c % d] = 5
    for i in 0..<perClass {
      for j in 0..<d { x[c * perClass + i, j] = center[j] + spread * rng.normal(Double.self) }
      labels.append(c)
    }
  }
  return (x, labels)
}

@Suite("PNG files")
struct PNGTests {
  @Test("An image survives encode and decode, byte for byte")
  func roundTrip() throws {
    var rng = RandomSource(seed: 3)
    var image = RGBImage(width: 37, height: 23)
    for i in image.pixels.indices where i % 7 != 0 { image.pixels[i] = UInt8(rng.index(below: 256)) }
    image.fillRect(x: 3, y: 4, width: 20, height: 9, Color(10, 200, 30))
    let bytes = PNG.encode(image)
    #expect(Array(bytes[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    #expect(try PNG.decode(bytes) == image)
  }

  @Test("A flipped byte fails its chunk's CRC; a cut file is refused")
  func corruption() throws {
    let bytes = PNG.encode(RGBImage(width: 8, height: 8, background: .black))
    var bad = bytes
    bad[40] ^= 0x01
    #expect(throws: PNG.Error.self) { try PNG.decode(bad) }
    #expect(throws: PNG.Error.self) { try PNG.decode(Array(bytes.prefix(bytes.count - 5))) }
    #expect(throws: PNG.Error.self) { try PNG.decode(Array("not a png".utf8)) }
  }
}

@Suite("Projections: PCA and t-SNE")
struct ProjectionTests {
  @Test("PCA finds the planted axes and satisfies the eigen-equation to 1e-9")
  func pca() throws {
    var rng = RandomSource(seed: 5)
    let d = 6, n = 400
    // Variance 9 along u, 1 along v, 0.01 elsewhere.
    let u = [1.0, 2, 0, -1, 0, 1].map { $0 / 7.0.squareRoot() }
    let v = [0.0, 0, 1, 0, 1, 0].map { $0 / 2.0.squareRoot() }
    var x = Matrix<Double>(rows: n, columns: d)
    for i in 0..<n {
      let a = 3 * rng.normal(Double.self), b = rng.normal(Double.self)
      for j in 0..<d { x[i, j] = 10 + a * u[j] + b * v[j] + 0.1 * rng.normal(Double.self) }
    }
    let pca = try PCA(fitting: x, count: 2)
    let c0 = pca.components.row(0), c1 = pca.components.row(1)
    #expect(abs(zip(c0, u).map(*).reduce(0, +)) > 0.999)
    #expect(abs(zip(c1, v).map(*).reduce(0, +)) > 0.99)
    #expect(pca.variances[0] > 7 && pca.variances[0] < 11)
    #expect(pca.explainedRatio[0] > pca.explainedRatio[1])
    // C v = λ v with the sample covariance computed here directly.
    for (k, comp) in [c0, c1].enumerated() {
      for j in 0..<d {
        var cv = 0.0
        for l in 0..<d {
          var cov = 0.0
          for i in 0..<n { cov += (x[i, j] - pca.mean[j]) * (x[i, l] - pca.mean[l]) }
          cv += cov / Double(n - 1) * comp[l]
        }
        #expect(abs(cv - pca.variances[k] * comp[j]) < 1e-9)
      }
    }
    let projected = pca.project(x)
    #expect(projected.rows == n && projected.columns == 2)
  }

  @Test("t-SNE's gradient matches finite differences of KL(P‖Q) in Double (theta 0: exact)")
  func gradientCheck() throws {
    let (x, _) = blobs(perClass: 6, dimension: 4)
    var tsne = TSNE()
    tsne.perplexity = 4
    tsne.theta = 0
    let p = try tsne.affinities(x)
    var rng = RandomSource(seed: 9)
    var y = Matrix<Double>(rows: x.rows, columns: 2)
    for i in 0..<x.rows { for j in 0..<2 { y[i, j] = rng.normal(Double.self) } }
    var g: [Double] = []
    tsne.gradient(y, p, into: &g)
    let h = 1e-6
    var worst = 0.0
    for i in 0..<x.rows {
      for j in 0..<2 {
        var plus = y, minus = y
        plus[i, j] += h
        minus[i, j] -= h
        let numeric = (TSNE.divergence(plus, p) - TSNE.divergence(minus, p)) / (2 * h)
        worst = max(worst, abs(numeric - g[2 * i + j]) / max(1e-6, abs(numeric)))
      }
    }
    #expect(worst < 1e-5, "worst relative error \(worst)")
    // Barnes-Hut at theta 0.5 stays close to the exact gradient.
    tsne.theta = 0.5
    var approx: [Double] = []
    tsne.gradient(y, p, into: &approx)
    let norm = g.map { $0 * $0 }.reduce(0, +).squareRoot()
    let diff = zip(g, approx).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    #expect(diff / norm < 0.05, "Barnes-Hut relative error \(diff / norm)")
  }

  @Test("The affinities are symmetric and sum to 1")
  func affinities() throws {
    let (x, _) = blobs(perClass: 20, dimension: 5)
    let p = try TSNE().affinities(x)
    #expect(abs(p.values.reduce(0, +) - 1) < 1e-9)
    var dict: [[Int]: Double] = [:]
    for i in 0..<(p.start.count - 1) { for e in p.start[i]..<p.start[i + 1] { dict[[i, p.columns[e]]] = p.values[e] } }
    for (key, value) in dict { #expect(abs((dict[[key[1], key[0]]] ?? -1) - value) < 1e-15) }
  }

  @Test("t-SNE keeps separated clusters apart: every point's 2-D nearest neighbour is in its class")
  func separation() throws {
    let (x, labels) = blobs(perClass: 60, dimension: 10, spread: 0.5)
    var tsne = TSNE()
    tsne.iterations = 500
    let y = try tsne.embed(x)
    #expect(y.rows == x.rows && y.isFinite)
    var correct = 0
    for i in 0..<y.rows {
      var best = -1, bestD = Double.infinity
      for j in 0..<y.rows where j != i {
        let d = pow(y[i, 0] - y[j, 0], 2) + pow(y[i, 1] - y[j, 1], 2)
        if d < bestD {
          bestD = d
          best = j
        }
      }
      if labels[best] == labels[i] { correct += 1 }
    }
    #expect(correct == y.rows)
    // Deterministic: the same input gives the same map.
    #expect(try tsne.embed(x) == y)
  }

  @Test("Coincident points neither hang the quadtree nor produce NaN")
  func coincident() throws {
    var x = Matrix<Double>(rows: 40, columns: 3)
    for i in 20..<40 { x[i, 0] = 1 }
    var tsne = TSNE()
    tsne.iterations = 50
    #expect(try tsne.embed(x).isFinite)
  }
}

@Suite("Pictures")
struct PictureTests {
  @Test("The embedding map plots one point per input, one colour per class, and a legend")
  func embeddingMap() throws {
    let (x, labels) = blobs(perClass: 50, dimension: 5, classes: 4)
    let points = try PCA(fitting: x).project(x)
    let names = [0: "zero", 1: "one", 2: "two", 3: "three"]
    let map = try EmbeddingMap(points: points, labels: labels, names: names, title: "test", method: "PCA", width: 600, height: 450)
    #expect(map.positions.count == x.rows)
    #expect(map.legend.map(\.name) == ["zero", "one", "two", "three"])
    #expect(Set(map.legend.map(\.color)).count == 4)
    let decoded = try PNG.decode(PNG.encode(map.image))
    #expect(decoded.width == 600 && decoded.height == 450)
    let colors = decoded.distinctColors
    for entry in map.legend { #expect(colors.contains(entry.color), "class \(entry.label)'s colour \(entry.color) is missing") }
    // Every point lies inside the image.
    for p in map.positions { #expect(p.x >= 0 && p.x < 600 && p.y >= 0 && p.y < 450) }
    // Mismatched input is an error, not a crash.
    #expect(throws: PlotError.self) { try EmbeddingMap(points: points, labels: Array(labels.dropLast()), title: "", method: "PCA") }
  }

  @Test("Thumbnails are drawn and framed in the class colour")
  func thumbnails() throws {
    let (x, labels) = blobs(perClass: 10, dimension: 2, classes: 2)
    var images = Matrix<Float>(rows: 20, columns: 16)
    for i in 0..<20 { for j in 0..<16 { images[i, j] = Float((i + j) % 5) } }
    let map = try EmbeddingMap(points: x, labels: labels, title: "t", method: "t-SNE", thumbnails: (images, 4, 4), thumbnailCount: 5)
    let plain = try EmbeddingMap(points: x, labels: labels, title: "t", method: "t-SNE")
    // Thumbnails add pure grays (the images, black on white), and each sits in a 2-pixel frame of
    // its class colour: look for a fully opaque frame run of that colour around a gray pixel.
    // The thumbnails' pixels, min-max scaled and inverted, take the grays 191, 128 and 64.
    func count(_ img: RGBImage, _ g: UInt8) -> Int {
      var n = 0
      for y in 0..<img.height { for x in 0..<img.width where img[x, y] == Color(g, g, g) { n += 1 } }
      return n
    }
    #expect(count(map.image, 128) >= count(plain.image, 128) + 5 * 3, "thumbnail pixels missing")
    var framed = 0
    for y in 2..<(map.image.height - 6) {
      for x in 2..<(map.image.width - 6) {
        let c = map.image[x, y]
        guard c == Palette.color(0) || c == Palette.color(1) else { continue }
        // Top-left corner of a frame: the same colour 7 pixels right and 7 down (4 + 2·2 − 1).
        if map.image[x + 7, y] == c && map.image[x, y + 7] == c && map.image[x + 7, y + 7] == c && map.image[x + 1, y + 1] == c
          && map.image[x + 2, y + 2] != c { framed += 1 }
      }
    }
    #expect(framed >= 3, "only \(framed) framed thumbnails found")
  }

  @Test("The retrieval grid frames matches green and mismatches red")
  func retrievalGrid() throws {
    var images = Matrix<Float>(rows: 6, columns: 9)
    for i in 0..<6 { for j in 0..<9 { images[i, j] = Float(i * j) } }
    let labels = [0, 0, 1, 1, 0, 1]
    let grid = try RetrievalGrid(images: images, height: 3, width: 3, labels: labels, queries: [0, 2], neighbors: [[1, 2], [3, 4]])
    #expect(grid.matches == [[true, false], [true, false]])
    let colors = grid.image.distinctColors
    #expect(colors.contains(.match) && colors.contains(.mismatch))
    #expect(throws: PlotError.self) { try RetrievalGrid(images: images, height: 3, width: 3, labels: labels, queries: [0], neighbors: [[7]]) }
  }

  @Test("Line charts draw each series in its colour")
  func lineCharts() throws {
    let a = Series(name: "loss", points: [(1, 0.5), (2, 0.3), (3, 0.2)], color: Palette.color(0))
    let b = Series(name: "MAP@R", points: [(1, 0.4), (2, 0.45)], color: Palette.color(1))
    let chart = try LineCharts(panels: [("loss", "loss", [a]), ("validation", "MAP@R", [b])], xLabel: "epoch")
    #expect(chart.image.width == 1040 && chart.image.height == 420)
    let colors = chart.image.distinctColors
    #expect(colors.contains(Palette.color(0)) && colors.contains(Palette.color(1)))
  }

  @Test("Tick values are round and cover the range")
  func ticks() {
    let t = niceTicks(0.13, 0.87)
    #expect(t.values == [0.2, 0.4, 0.6, 0.8])
    #expect(t.decimals == 1)
  }
}
