import DMLCore
import Foundation

/// Round tick values for an axis spanning `low...high`: steps of 1, 2 or 5 times a power of ten,
/// about `target` of them.
public func niceTicks(_ low: Double, _ high: Double, target: Int = 5) -> (values: [Double], decimals: Int) {
  guard high > low, low.isFinite, high.isFinite else { return ([low], 2) }
  let raw = (high - low) / Double(target)
  let power = pow(10, (log10(raw)).rounded(.down))
  let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
  let decimals = Swift.max(0, -Int((log10(step)).rounded(.down)))
  let unit = pow(10, Double(decimals))
  var values: [Double] = []
  var m = (low / step).rounded(.up)
  while m * step <= high + step * 1e-9 && values.count < 100 {
    // Rounded to the step's decimals, so that 3 × 0.2 prints and compares as 0.6.
    values.append(((m * step) * unit).rounded() / unit + 0)
    m += 1
  }
  return (values, decimals)
}

/// A plot area inside an image: the mapping from data to pixels, with its frame, ticks, grid and
/// axis labels.
struct Axes {
  var left: Int, top: Int, width: Int, height: Int
  var xRange: ClosedRange<Double>, yRange: ClosedRange<Double>

  func x(_ v: Double) -> Double { Double(left) + (v - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * Double(width) }
  func y(_ v: Double) -> Double { Double(top + height) - (v - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * Double(height) }

  /// Padded ranges around data that may be a single value.
  static func range(_ values: [Double], pad: Double = 0.05) -> ClosedRange<Double> {
    var low = values.min() ?? 0, high = values.max() ?? 1
    if !(high > low) {
      low -= 0.5
      high += 0.5
    }
    let p = (high - low) * pad
    return (low - p)...(high + p)
  }

  func draw(into image: inout RGBImage, font: Font, title: String, xLabel: String, yLabel: String, ticks: Bool = true) {
    image.fillRect(x: left, y: top, width: width, height: height, Color(250, 250, 250))
    if ticks {
      let xt = niceTicks(xRange.lowerBound, xRange.upperBound)
      for v in xt.values {
        let px = Int(x(v).rounded())
        image.fillRect(x: px, y: top, width: 1, height: height, .lightGray)
        image.fillRect(x: px, y: top + height, width: 1, height: 5, .black)
        font.draw(String(format: "%.\(xt.decimals)f", v), x: px, baseline: top + height + 8 + font.ascent, alignment: .center, into: &image)
      }
      let yt = niceTicks(yRange.lowerBound, yRange.upperBound)
      for v in yt.values {
        let py = Int(y(v).rounded())
        image.fillRect(x: left, y: py, width: width, height: 1, .lightGray)
        image.fillRect(x: left - 5, y: py, width: 5, height: 1, .black)
        font.draw(String(format: "%.\(yt.decimals)f", v), x: left - 8, baseline: py + font.ascent / 2, alignment: .right, into: &image)
      }
    }
    image.strokeRect(x: left - 1, y: top - 1, width: width + 2, height: height + 2, .black)
    font.draw(title, x: left + width / 2, baseline: top - 12, alignment: .center, into: &image)
    font.draw(xLabel, x: left + width / 2, baseline: top + height + 16 + 2 * font.ascent, alignment: .center, into: &image)
    font.drawVertical(yLabel, x: left - 52, centerY: top + height / 2, into: &image)
  }
}

/// A 2-D map of embeddings coloured by label, with a legend: what `dml plot embeddings` draws.
public struct EmbeddingMap {
  /// The picture.
  public var image: RGBImage
  /// The legend's entries in order: label, name and colour.
  public var legend: [(label: Int, name: String, color: Color)]
  /// Each input point's pixel position, in input order.
  public var positions: [(x: Double, y: Double)]

  /// Draws `points` (`n × 2`) coloured by `labels`.
  ///
  /// - Parameters:
  ///   - points: the 2-D positions, `n × 2`.
  ///   - labels: each point's class.
  ///   - names: the legend text of each label (default: the label's number).
  ///   - title: the title above the map.
  ///   - method: the projection's name for the axis labels, e.g. "PCA" or "t-SNE".
  ///   - thumbnails: for image data, the images (`n` rows of `height × width` grey values, or
  ///     `height × width × 3` colour ones) drawn at `thumbnailCount` seeded sample points, framed in
  ///     their class colour.
  ///   - invertGrey: draw grey images with 1 as black (Fashion-MNIST's white ink on black, shown
  ///     as ink on paper); photos are drawn as they are.
  ///   - thumbnailCount: how many thumbnails to draw.
  ///   - seed: the seed of the thumbnails' sample.
  ///   - width: the picture's width in pixels.
  ///   - height: the picture's height in pixels.
  public init(
    points: Matrix<Double>, labels: [Int], names: [Int: String] = [:], title: String, method: String,
    thumbnails: (images: Matrix<Float>, height: Int, width: Int)? = nil, thumbnailCount: Int = 24, seed: UInt64 = 0,
    invertGrey: Bool = true, width: Int = 900, height: Int = 700
  ) throws {
    guard points.columns == 2, points.rows == labels.count, points.rows > 0 else {
      throw PlotError("embedding map: \(points.rows)x\(points.columns) points for \(labels.count) labels (need n×2 and n labels)")
    }
    guard points.isFinite else { throw PlotError("embedding map: the projected points contain NaN or infinite values") }
    let font = try Font(size: 15)
    var image = RGBImage(width: width, height: height)
    let classes = Set(labels).sorted()
    let legendWidth = Swift.max(120, (classes.map { font.width(of: names[$0] ?? "\($0)") }.max() ?? 0) + 50)
    let xs = (0..<points.rows).map { points[$0, 0] }, ys = (0..<points.rows).map { points[$0, 1] }
    let axes = Axes(
      left: 80, top: 50, width: width - 80 - legendWidth - 30, height: height - 50 - 70, xRange: Axes.range(xs), yRange: Axes.range(ys))
    axes.draw(into: &image, font: font, title: title, xLabel: "\(method) 1", yLabel: "\(method) 2", ticks: method == "PCA")
    let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
    // Draw in a seeded random order so that no class is always painted over the others.
    var rng = RandomSource(seed: seed)
    let order = rng.permutation(points.rows)
    let radius = points.rows > 5000 ? 2.0 : points.rows > 1000 ? 2.6 : 3.5
    var positions = [(x: Double, y: Double)](repeating: (0, 0), count: points.rows)
    for i in 0..<points.rows { positions[i] = (axes.x(xs[i]), axes.y(ys[i])) }
    for i in order {
      let c = index[labels[i]]!
      image.marker(Palette.marker(c), at: positions[i].x, positions[i].y, radius: radius, Palette.color(c), alpha: 0.75)
    }
    if let thumbnails, thumbnailCount > 0 {
      let pixels = thumbnails.height * thumbnails.width
      guard thumbnails.images.rows == points.rows, thumbnails.images.columns == pixels || thumbnails.images.columns == 3 * pixels else {
        throw PlotError("embedding map: \(thumbnails.images.rows) thumbnails of \(thumbnails.images.columns) values for \(points.rows) points of \(thumbnails.height)x\(thumbnails.width)")
      }
      for i in order.prefix(thumbnailCount) {
        let px = Int(positions[i].x) - thumbnails.width / 2, py = Int(positions[i].y) - thumbnails.height / 2
        thumbnails.images.row(i).withUnsafeBufferPointer {
          if thumbnails.images.columns == pixels {
            image.drawGray($0, width: thumbnails.width, height: thumbnails.height, at: px, py, invert: invertGrey, stretch: true)
          } else {
            image.drawRGB($0, width: thumbnails.width, height: thumbnails.height, at: px, py, stretch: true)
          }
        }
        image.strokeRect(x: px - 2, y: py - 2, width: thumbnails.width + 4, height: thumbnails.height + 4, thickness: 2, Palette.color(index[labels[i]]!))
      }
    }
    // Legend.
    var legend: [(label: Int, name: String, color: Color)] = []
    let lx = axes.left + axes.width + 24
    var ly = axes.top + 10
    font.draw("class", x: lx, baseline: ly + font.ascent, into: &image)
    ly += 28
    for (c, label) in classes.enumerated() {
      let name = names[label] ?? "\(label)"
      image.marker(Palette.marker(c), at: Double(lx + 7), Double(ly + font.ascent / 2), radius: 6, Palette.color(c))
      font.draw(name, x: lx + 22, baseline: ly + font.ascent, into: &image)
      legend.append((label, name, Palette.color(c)))
      ly += 24
    }
    self.image = image
    self.legend = legend
    self.positions = positions
  }
}

/// One query per row followed by its nearest neighbours, each framed green when its label matches
/// the query's and red when it does not: what `dml plot retrieval` draws.
public struct RetrievalGrid {
  /// The drawn grid.
  public var image: RGBImage
  /// For each row, whether each neighbour's label matches the query's.
  public var matches: [[Bool]]

  /// Draws `queries` and their `neighbors` from every item's image and label.
  ///
  /// - Parameters:
  ///   - images: every item's image, one per row (`h × w`, or `h × w × 3` for colour).
  ///   - h: the images' height.
  ///   - w: the images' width.
  ///   - labels: every item's class.
  ///   - queries: the query rows.
  ///   - neighbors: for each query, its neighbours' rows, nearest first.
  ///   - names: the class names printed beside each query.
  ///   - scale: the pixels drawn per image pixel.
  ///   - title: the title above the grid.
  ///   - invertGrey: draw grey images with 1 as black (Fashion-MNIST's white ink on black, shown
  ///     as ink on paper); photos are drawn as they are.
  public init(
    images: Matrix<Float>, height h: Int, width w: Int, labels: [Int], queries: [Int], neighbors: [[Int]], names: [Int: String] = [:],
    scale: Int = 2, title: String = "Nearest neighbours of each query (green: same class, red: different class)", invertGrey: Bool = true
  ) throws {
    guard images.columns == h * w || images.columns == h * w * 3, images.rows == labels.count else {
      throw PlotError("retrieval grid: \(images.rows) images of \(images.columns) values for \(labels.count) labels of \(h)x\(w)")
    }
    let colour = images.columns == h * w * 3
    guard !queries.isEmpty, queries.count == neighbors.count else { throw PlotError("retrieval grid: \(queries.count) queries, \(neighbors.count) neighbour lists") }
    let k = neighbors.map(\.count).max() ?? 0
    guard k > 0 else { throw PlotError("retrieval grid: no neighbours") }
    for i in queries + neighbors.flatMap({ $0 }) where !(0..<images.rows).contains(i) {
      throw PlotError("retrieval grid: item \(i) out of 0..<\(images.rows)")
    }
    let font = try Font(size: 14)
    let cell = max(h, w) * scale, pad = 8, frame = 3
    let nameWidth = (queries.map { font.width(of: names[labels[$0]] ?? "\(labels[$0])") }.max() ?? 0) + 16
    let left = nameWidth, top = 56
    let width = left + (k + 1) * (cell + pad) + 24 + pad
    let height = top + queries.count * (cell + pad) + pad
    var image = RGBImage(width: width, height: height)
    font.draw(title, x: 10, baseline: 20, into: &image)
    func column(_ j: Int) -> Int { left + j * (cell + pad) + (j > 0 ? 24 : 0) }
    font.draw("query", x: column(0) + cell / 2, baseline: top - 10, alignment: .center, into: &image)
    for j in 1...k { font.draw("\(j)", x: column(j) + cell / 2, baseline: top - 10, alignment: .center, into: &image) }
    func drawItem(_ item: Int, _ x: Int, _ y: Int, frameColor: Color) {
      images.row(item).withUnsafeBufferPointer {
        if colour {
          image.drawRGB($0, width: w, height: h, at: x, y, scale: scale, stretch: true)
        } else {
          image.drawGray($0, width: w, height: h, at: x, y, scale: scale, invert: invertGrey, stretch: true)
        }
      }
      image.strokeRect(x: x - frame, y: y - frame, width: cell + 2 * frame, height: cell + 2 * frame, thickness: frame, frameColor)
    }
    var matches: [[Bool]] = []
    for (r, q) in queries.enumerated() {
      let y = top + r * (cell + pad) + pad / 2
      font.draw(names[labels[q]] ?? "\(labels[q])", x: nameWidth - 10, baseline: y + cell / 2 + font.ascent / 2, alignment: .right, into: &image)
      drawItem(q, column(0), y, frameColor: .black)
      var row: [Bool] = []
      for (j, item) in neighbors[r].enumerated() {
        let same = labels[item] == labels[q]
        row.append(same)
        drawItem(item, column(j + 1), y, frameColor: same ? .match : .mismatch)
      }
      matches.append(row)
    }
    self.image = image
    self.matches = matches
  }
}

/// A named series of points for a line chart.
public struct Series: Sendable {
  /// The series' name in the legend.
  public var name: String
  /// The points in data coordinates, joined by a line in order.
  public var points: [(x: Double, y: Double)]
  /// Whether to mark each point (epoch values) or draw a thin line only (step values).
  public var markers: Bool
  /// The colour of the series' line and markers.
  public var color: Color

  /// A series drawn in `color`, with a marker at each point unless `markers` is false.
  public init(name: String, points: [(x: Double, y: Double)], markers: Bool = true, color: Color) {
    self.name = name
    self.points = points
    self.markers = markers
    self.color = color
  }
}

/// Line charts side by side, each with its own axes and legend: what `dml plot curves` draws.
public struct LineCharts {
  /// The drawn panels, `panelWidth` pixels wide each, side by side.
  public var image: RGBImage

  /// One panel per element of `panels`: a title, the y-axis label and its series; all share the
  /// x-axis label.
  public init(panels: [(title: String, yLabel: String, series: [Series])], xLabel: String, panelWidth: Int = 520, height: Int = 420) throws {
    guard !panels.isEmpty else { throw PlotError("line chart: no panels") }
    let font = try Font(size: 14)
    var image = RGBImage(width: panelWidth * panels.count, height: height)
    for (p, panel) in panels.enumerated() {
      let all = panel.series.flatMap(\.points)
      let axes = Axes(
        left: p * panelWidth + 84, top: 44, width: panelWidth - 84 - 24, height: height - 44 - 66,
        xRange: Axes.range(all.map(\.x), pad: 0.03), yRange: Axes.range(all.map(\.y), pad: 0.08))
      axes.draw(into: &image, font: font, title: panel.title, xLabel: xLabel, yLabel: panel.yLabel)
      if all.isEmpty {
        font.draw("no data", x: axes.left + axes.width / 2, baseline: axes.top + axes.height / 2, alignment: .center, color: .gray, into: &image)
      }
      for s in panel.series {
        for (a, b) in zip(s.points, s.points.dropFirst()) {
          image.line(from: (axes.x(a.x), axes.y(a.y)), to: (axes.x(b.x), axes.y(b.y)), width: s.markers ? 2 : 1, s.color)
        }
        if s.markers { for pt in s.points { image.marker(.circle, at: axes.x(pt.x), axes.y(pt.y), radius: 4, s.color) } }
      }
      // Legend in the panel's top-right corner, on a white box.
      var ly = axes.top + 10
      let lx = axes.left + axes.width - (panel.series.map { font.width(of: $0.name) }.max() ?? 0) - 40
      let shown = panel.series.filter { !$0.points.isEmpty }.count
      if shown > 0 {
        image.fillRect(x: lx - 6, y: ly - 5, width: axes.left + axes.width - lx, height: 20 * shown + 8, .white)
        image.strokeRect(x: lx - 6, y: ly - 5, width: axes.left + axes.width - lx, height: 20 * shown + 8, .lightGray)
      }
      for s in panel.series where !s.points.isEmpty {
        image.line(from: (Double(lx), Double(ly + font.ascent / 2)), to: (Double(lx + 22), Double(ly + font.ascent / 2)), width: 2, s.color)
        font.draw(s.name, x: lx + 28, baseline: ly + font.ascent, into: &image)
        ly += 20
      }
    }
    self.image = image
  }
}
