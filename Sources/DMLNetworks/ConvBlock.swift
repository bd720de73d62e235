/// A convolutional block, `Conv2D → [BatchNorm] → ReLU → MaxPool2D`, as one layer.
///
/// It computes what the four layers chained compute (``layers``), with fewer passes over memory
/// when BatchNorm is off:
/// - ReLU and max-pooling run as one pass, which keeps, for each pooled value, the window position
///   its gradient goes to (or none, when the window's maximum is not positive). The backward pass
///   scatters the pooled gradient to those positions instead of running the pooling's and the
///   ReLU's backward passes over the full-resolution maps.
/// - With one input channel and stride 1 (the first block of a grey-level network), the
///   convolution runs directly, fused with the ReLU and the pooling: the full-resolution map is
///   never written, and the backward pass visits only the routed positions, at most one per pooling
///   window and channel, for the weight, bias and input gradients.
///
/// The results match the chained layers up to the order of floating-point sums (ties in the
/// pooling window go to the first position, as ``MaxPool2D`` does). With BatchNorm on, the block
/// runs the chained layers.
public struct ConvBlock<Scalar: DMLScalar>: Layer {
  /// The four layers chained: `Conv2D → Optionally(BatchNorm) → ReLU → MaxPool2D`.
  public typealias Layers = Chain<Chain<Chain<Conv2D<Scalar>, Optionally<BatchNorm<Scalar>>>, ReLU<Scalar>>, MaxPool2D<Scalar>>
  /// The same block as chained layers: the parameters live here, and it runs when BatchNorm is on.
  /// Its parts are `conv`, `batchNorm`, and `pool`.
  public var layers: Layers
  @usableFromInline var preActivation = Matrix<Scalar>()
  @usableFromInline var preGradient = Matrix<Scalar>()
  /// Per pooled value, the window position its gradient goes to, or `noRoute`.
  @usableFromInline var routes: [UInt8] = []
  /// The weight transposed to `(tap, channel)` for the direct convolution.
  @usableFromInline var tapWeights = Matrix<Scalar>()
  /// Per chunk: a zero-padded image, its gradient, then the chunk's weight and bias gradients.
  @usableFromInline var scratch = Matrix<Scalar>()
  @usableFromInline static var noRoute: UInt8 { 255 }

  /// A block of `conv`, an optional BatchNorm over its channels, ReLU and a `poolSize` max-pooling
  /// (stride `poolSize`).
  public init(_ conv: Conv2D<Scalar>, batchNorm: Bool = false, poolSize: Int = 2) {
    let pool = MaxPool2D<Scalar>(input: conv.outputShape, size: poolSize)
    layers = Chain(Chain(Chain(conv, Optionally(BatchNorm(channels: conv.outChannels), enabled: batchNorm)), ReLU()), pool)
  }

  /// The convolution, read and changed in place in `layers`.
  @inlinable public var conv: Conv2D<Scalar> {
    _read { yield layers.first.first.first }
    _modify { yield &layers.first.first.first }
  }

  /// The BatchNorm over the convolution's channels, switched off unless the block was built with it.
  @inlinable public var batchNorm: Optionally<BatchNorm<Scalar>> {
    _read { yield layers.first.first.second }
    _modify { yield &layers.first.first.second }
  }

  /// The pooling.
  @inlinable public var pool: MaxPool2D<Scalar> { layers.second }

  /// The shape of one output image.
  public var outputShape: ImageShape { pool.outputShape }

  public func outputFeatures(forInput n: Int) -> Int { layers.outputFeatures(forInput: n) }

  /// True when the fused passes run (BatchNorm off, and a window's positions fit in a byte).
  @inlinable var isFused: Bool {
    !batchNorm.isEnabled && pool.size * pool.size < Int(Self.noRoute)
  }

  /// True when the convolution runs directly: one input channel, stride 1.
  @inlinable var isDirect: Bool { conv.inputShape.channels == 1 && conv.stride == 1 }

  /// The pooled grid, and where pooled cell `(oy, ox)`'s window position `r` lies in the
  /// convolution's output.
  @usableFromInline struct PoolGrid {
    @usableFromInline let height: Int, width: Int, size: Int, stride: Int
    @inlinable init(_ pool: MaxPool2D<Scalar>) {
      let out = pool.outputShape
      (height, width, size, stride) = (out.height, out.width, pool.size, pool.stride)
    }
    @inlinable var cells: Int { height * width }
    @inlinable func position(_ oy: Int, _ ox: Int, _ r: Int) -> (y: Int, x: Int) {
      (oy * stride + r / size, ox * stride + r % size)
    }
  }

  @inlinable
  func chunkCount(rows: Int, compute: ComputeContext) -> Int {
    let c = DirectShape(conv), out = conv.outputShape
    return compute.chunkCount(
      rows: rows, workPerRow: out.height * out.width * c.kernel * c.kernel * c.inputChannels * c.channels,
      minimumWork: 1 << 20)
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    guard isFused else {
      layers.forward(input, into: &output, mode: mode, compute: compute)
      return
    }
    precondition(
      input.columns == conv.inputShape.features,
      "ConvBlock expects \(conv.inputShape) = \(conv.inputShape.features) features, got \(input.columns)")
    let n = input.rows, grid = PoolGrid(pool), channels = conv.outChannels
    output.resize(rows: n, columns: grid.cells * channels)
    if routes.count < n * grid.cells * channels {  // grows only: no allocation per step
      routes = Array(repeating: Self.noRoute, count: n * grid.cells * channels)
    }
    if isDirect {
      directForward(input, into: &output, compute: compute)
    } else {
      // The stored path, not `conv`: the accessor would claim all of `self` beside `preActivation`.
      layers.first.first.first.forward(input, into: &preActivation, mode: mode, compute: compute)
      reluPool(into: &output, compute: compute)
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard isFused else {
      layers.backward(
        input: input, output: output, outputGradient: outputGradient, inputGradient: &inputGradient,
        propagate: propagate, compute: compute)
      return
    }
    precondition(
      input.columns == conv.inputShape.features && outputGradient.rows == input.rows
        && outputGradient.columns == outputFeatures(forInput: input.columns),
      "ConvBlock.backward: the output gradient is \(outputGradient.rows)x\(outputGradient.columns)")
    if isDirect {
      directBackward(input: input, outputGradient: outputGradient, inputGradient: &inputGradient, propagate: propagate,
        compute: compute)
    } else {
      scatterToPreActivation(outputGradient, compute: compute)
      layers.first.first.first.backward(  // the stored path, as in `forward`
        input: input, output: preActivation, outputGradient: preGradient, inputGradient: &inputGradient,
        propagate: propagate, compute: compute)
    }
  }

  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    layers.visitParameters(&visitor)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    layers.visitRandomSources(visit)
  }
}

// MARK: - ReLU and pooling over a computed pre-activation

extension ConvBlock {
  /// `output = maxpool(relu(preActivation))`, keeping each pooled value's route; the windows
  /// are `MaxPool2D`'s own (`forEachWindow`).
  @inlinable
  mutating func reluPool(into output: inout Matrix<Scalar>, compute: ComputeContext) {
    let n = preActivation.rows, pool = self.pool, channels = conv.outChannels
    let inF = preActivation.columns, outF = pool.outputShape.features
    let chunks = compute.chunkCount(rows: n, workPerRow: inF)
    preActivation.withUnsafeBufferPointer { z in
      output.withUnsafeMutableBufferPointer { y in
        routes.withUnsafeMutableBufferPointer { routes in
          BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, images in
            for b in images {
              pool.forEachWindow { o, window in
                Scalar.reluPoolWindow(
                  z.baseAddress! + b * inF, offsets: window.baseAddress!, positions: window.count,
                  y.baseAddress! + b * outF + o, routes.baseAddress! + b * outF + o, count: channels)
              }
            }
          }
        }
      }
    }
  }

  /// `preGradient`: zero, except the pooled gradient at each routed position.
  @inlinable
  mutating func scatterToPreActivation(_ outputGradient: Matrix<Scalar>, compute: ComputeContext) {
    let n = outputGradient.rows, pool = self.pool, channels = conv.outChannels
    let inF = conv.outputShape.features, outF = pool.outputShape.features
    preGradient.resize(rows: n, columns: inF)
    let chunks = compute.chunkCount(rows: n, workPerRow: inF)
    outputGradient.withUnsafeBufferPointer { g in
      preGradient.withUnsafeMutableBufferPointer { dz in
        routes.withUnsafeBufferPointer { routes in
          BatchParallelism.forEachChunk(rows: n, chunks: chunks) { _, images in
            for b in images {
              let row = dz.baseAddress! + b * inF
              row.update(repeating: 0, count: inF)
              pool.forEachWindow { o, window in
                let at = b * outF + o
                Scalar.routeGradient(
                  g.baseAddress! + at, routes: routes.baseAddress! + at, offsets: window.baseAddress!,
                  positions: window.count, into: row, count: channels)
              }
            }
          }
        }
      }
    }
  }
}

// MARK: - The direct path: one input channel, stride 1

extension ConvBlock {
  /// The sizes the direct path reads, taken from the convolution without copying it (a copy
  /// would share its gradient buffers and make the backward pass's writes copy them).
  @usableFromInline struct DirectShape {
    @usableFromInline let height: Int, width: Int, inputChannels: Int, padding: Int, kernel: Int, channels: Int
    @inlinable init(_ c: borrowing Conv2D<Scalar>) {
      (height, width, inputChannels) = (c.inputShape.height, c.inputShape.width, c.inputShape.channels)
      (padding, kernel, channels) = (c.padding, c.kernel, c.outChannels)
    }
    @inlinable var paddedSize: Int { (height + 2 * padding) * (width + 2 * padding) }
  }

  /// Scratch per chunk: the padded image, its gradient, then (forward) one image's sums
  /// (`rows × channels`, a row per pooled cell's window position) and window inputs (`rows × taps`),
  /// or (backward) the weight and bias gradients (`lanes × channels`: the taps, then the bias),
  /// the window inputs (`rows × lanes`: the taps, then 1 for the bias, then zeros) and the
  /// routed output gradients (`rows × channels`).
  @inlinable var scratchPerChunk: Int {
    let c = DirectShape(conv), taps = c.kernel * c.kernel
    let rows = PoolGrid(pool).cells * pool.size * pool.size, lanes = Self.lanes(taps: taps)
    let forward = rows * (taps + c.channels)
    let backward = lanes * c.channels + rows * (lanes + c.channels)
    // One more value for the 4-lane copies' spill past the last window row (`gather`).
    return 2 * c.paddedSize + Swift.max(forward, backward) + 1
  }

  /// The backward pass's row length for a window's `taps` values and the bias's 1: a whole number
  /// of 8-lane vectors.
  @inlinable static func lanes(taps: Int) -> Int { (taps + 1 + 7) / 8 * 8 }

  /// Copies a `kernel × kernel` window (rows `rowStride` apart) into `values`, row by row. A 3 × 3
  /// window goes as three 4-lane copies, so it writes one value past its 9 and reads one past
  /// each window row: the scratch holds room for both, and the caller writes the next row (or the
  /// bias's 1) after.
  @inlinable @inline(__always)
  static func gather(
    _ window: UnsafePointer<Scalar>, rowStride: Int, kernel k: Int, into values: UnsafeMutablePointer<Scalar>
  ) {
    if k == 3 {
      for ky in 0..<3 {
        UnsafeMutableRawPointer(values + 3 * ky).storeBytes(
          of: UnsafeRawPointer(window + ky * rowStride).loadUnaligned(as: SIMD4<Scalar>.self), as: SIMD4<Scalar>.self)
      }
    } else {
      for ky in 0..<k { for kx in 0..<k { values[ky * k + kx] = window[ky * rowStride + kx] } }
    }
  }

  /// Copies image `x` (`height × width`) into the zero-bordered `padded`.
  @inlinable
  static func pad(_ x: UnsafePointer<Scalar>, into padded: UnsafeMutablePointer<Scalar>, shape c: DirectShape) {
    let (h, w, p) = (c.height, c.width, c.padding)
    let pw = w + 2 * p
    padded.update(repeating: 0, count: (h + 2 * p) * pw)
    for y in 0..<h { (padded + (y + p) * pw + p).update(from: x + y * w, count: w) }
  }

  /// The convolution, ReLU and pooling, one image at a time (`directForwardImage`), each chunk of
  /// images in its own scratch.
  @inlinable
  mutating func directForward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, compute: ComputeContext) {
    let c = DirectShape(conv), grid = PoolGrid(pool), n = input.rows
    let inF = c.height * c.width, outF = grid.cells * c.channels
    conv.weight.value.transpose(into: &tapWeights)
    let bias = conv.bias.value
    let chunks = chunkCount(rows: n, compute: compute), perChunk = scratchPerChunk
    scratch.resize(rows: chunks, columns: perChunk)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        routes.withUnsafeMutableBufferPointer { routes in
          tapWeights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { bias in
              scratch.withUnsafeMutableBufferPointer { scratch in
                BatchParallelism.forEachChunk(rows: n, chunks: chunks) { chunk, images in
                  for b in images {
                    Self.directForwardImage(
                      x.baseAddress! + b * inF, into: y.baseAddress! + b * outF, routes: routes.baseAddress! + b * outF,
                      tapWeights: w.baseAddress!, bias: bias.baseAddress!, scratch: scratch.baseAddress! + chunk * perChunk,
                      shape: c, grid: grid, engine: compute.engine)
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /// One image of `directForward`: the window inputs of every pooled cell's positions (a row
  /// each), one product with the filters onto the bias (`layerGemm`) giving every row's sums for
  /// every channel, then each window's maximum and its route.
  @inlinable
  static func directForwardImage(
    _ x: UnsafePointer<Scalar>, into y: UnsafeMutablePointer<Scalar>, routes: UnsafeMutablePointer<UInt8>,
    tapWeights w: UnsafePointer<Scalar>, bias: UnsafePointer<Scalar>, scratch padded: UnsafeMutablePointer<Scalar>,
    shape c: DirectShape, grid: PoolGrid, engine: LayerGemm.Engine
  ) {
    let (channels, k, taps) = (c.channels, c.kernel, c.kernel * c.kernel)
    let pw = c.width + 2 * c.padding
    let positions = grid.size * grid.size, rows = grid.cells * positions
    let sums = padded + 2 * c.paddedSize, windows = sums + rows * channels
    pad(x, into: padded, shape: c)
    var row = 0
    for oy in 0..<grid.height {
      for ox in 0..<grid.width {
        for r in 0..<positions {
          let (py, px) = grid.position(oy, ox, r)
          gather(padded + py * pw + px, rowStride: pw, kernel: k, into: windows + row * taps)
          (sums + row * channels).update(from: bias, count: channels)
          row += 1
        }
      }
    }
    Scalar.layerGemm(
      transposeA: false, transposeB: false, m: rows, n: channels, k: taps, a: windows, lda: taps,
      b: w, ldb: channels, beta: 1, c: sums, ldc: channels, engine: engine)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: positions) { offsets in
      for r in 0..<positions { offsets[r] = r * channels }
      for cell in 0..<grid.cells {
        Scalar.reluPoolWindow(
          sums + cell * positions * channels, offsets: offsets.baseAddress!, positions: positions,
          y + cell * channels, routes + cell * channels, count: channels)
      }
    }
  }

  /// The weight and bias gradients (and the input gradient when `propagate`), one image at a
  /// time (`directBackwardImage`). Each chunk sums into its own scratch; the chunks are added in
  /// order.
  @inlinable
  mutating func directBackward(
    input: Matrix<Scalar>, outputGradient: Matrix<Scalar>, inputGradient: inout Matrix<Scalar>,
    propagate: Bool, compute: ComputeContext
  ) {
    let c = DirectShape(conv), grid = PoolGrid(pool), n = input.rows
    let (channels, taps) = (c.channels, c.kernel * c.kernel)
    let inF = c.height * c.width, outF = grid.cells * channels, lanes = Self.lanes(taps: taps)
    let chunks = chunkCount(rows: n, compute: compute)
    let perChunk = scratchPerChunk
    scratch.resize(rows: max(1, chunks), columns: perChunk)
    if propagate { inputGradient.resize(rows: n, columns: inF) }
    input.withUnsafeBufferPointer { x in
      outputGradient.withUnsafeBufferPointer { g in
        routes.withUnsafeBufferPointer { routes in
          conv.weight.value.withUnsafeBufferPointer { weight in
            inputGradient.withUnsafeMutableBufferPointer { dx in
              scratch.withUnsafeMutableBufferPointer { scratch in
                BatchParallelism.forEachChunk(rows: n, chunks: chunks) { chunk, images in
                  let padded = scratch.baseAddress! + chunk * perChunk
                  let sums = padded + 2 * c.paddedSize  // lanes × channels
                  let windows = sums + lanes * channels  // rows × lanes
                  sums.update(repeating: 0, count: lanes * channels)
                  windows.update(repeating: 0, count: grid.cells * grid.size * grid.size * lanes)
                  for b in images {
                    Self.directBackwardImage(
                      x.baseAddress! + b * inF, outputGradient: g.baseAddress! + b * outF,
                      routes: routes.baseAddress! + b * outF, weight: weight.baseAddress!,
                      inputGradient: propagate ? dx.baseAddress! + b * inF : nil, scratch: padded,
                      shape: c, grid: grid, engine: compute.engine)
                  }
                }
              }
            }
          }
        }
      }
    }
    // The chunks' sums, added in chunk order, into the gradients taken out of `conv` meanwhile.
    var weightGradient = Matrix<Scalar>(), biasGradient = Matrix<Scalar>()
    swap(&weightGradient, &conv.weight.gradient)
    swap(&biasGradient, &conv.bias.gradient)
    defer {
      swap(&weightGradient, &conv.weight.gradient)
      swap(&biasGradient, &conv.bias.gradient)
    }
    weightGradient.resize(rows: channels, columns: taps, zeroed: true)
    biasGradient.resize(rows: 1, columns: channels, zeroed: true)
    scratch.withUnsafeBufferPointer { scratch in
      weightGradient.withUnsafeMutableBufferPointer { dw in
        biasGradient.withUnsafeMutableBufferPointer { db in
          for chunk in 0..<max(1, chunks) {
            let sums = scratch.baseAddress! + chunk * perChunk + 2 * c.paddedSize
            for ch in 0..<channels {
              for t in 0..<taps { dw[ch * taps + t] += sums[t * channels + ch] }
              db[ch] += sums[taps * channels + ch]
            }
          }
        }
      }
    }
  }

  /// One image of `directBackward`. Each pooled cell's window positions, a row each: their input
  /// values, then 1 for the bias; and the output gradient at each channel's routed position (zero
  /// elsewhere). A channel's gradient reaches its weights only through its routed positions, so
  /// one product of the window inputs' transpose and the routed gradients adds the image's weight
  /// and bias gradients to the chunk's sums. With `inputGradient`, the gradient flows back to the
  /// routed positions' windows only.
  @inlinable
  static func directBackwardImage(
    _ x: UnsafePointer<Scalar>, outputGradient g: UnsafePointer<Scalar>, routes: UnsafePointer<UInt8>,
    weight: UnsafePointer<Scalar>, inputGradient dx: UnsafeMutablePointer<Scalar>?,
    scratch padded: UnsafeMutablePointer<Scalar>, shape c: DirectShape, grid: PoolGrid, engine: LayerGemm.Engine
  ) {
    let (channels, k, taps) = (c.channels, c.kernel, c.kernel * c.kernel)
    let (h, w, p) = (c.height, c.width, c.padding)
    let pw = w + 2 * p, positions = grid.size * grid.size, lanes = Self.lanes(taps: taps)
    let rows = grid.cells * positions
    let paddedGradient = padded + c.paddedSize
    let sums = paddedGradient + c.paddedSize  // lanes × channels
    let windows = sums + lanes * channels  // rows × lanes
    let routed = windows + rows * lanes  // rows × channels
    pad(x, into: padded, shape: c)
    if dx != nil { paddedGradient.update(repeating: 0, count: c.paddedSize) }
    routed.update(repeating: 0, count: rows * channels)
    var row = 0
    for oy in 0..<grid.height {
      for ox in 0..<grid.width {
        let o = (oy * grid.width + ox) * channels
        for r in 0..<positions {
          let (py, px) = grid.position(oy, ox, r)
          let values = windows + (row + r) * lanes
          gather(padded + py * pw + px, rowStride: pw, kernel: k, into: values)
          values[taps] = 1
        }
        for ch in 0..<channels where routes[o + ch] != noRoute {
          routed[(row + Int(routes[o + ch])) * channels + ch] = g[o + ch]
        }
        row += positions
        guard dx != nil else { continue }
        for ch in 0..<channels where routes[o + ch] != noRoute {
          let (py, px) = grid.position(oy, ox, Int(routes[o + ch]))
          let gradient = g[o + ch], at = py * pw + px
          let wRow = weight + ch * taps
          for ky in 0..<k {
            for kx in 0..<k { paddedGradient[at + ky * pw + kx] += gradient * wRow[ky * k + kx] }
          }
        }
      }
    }
    Scalar.layerGemm(
      transposeA: true, transposeB: false, m: taps + 1, n: channels, k: rows, a: windows, lda: lanes,
      b: routed, ldb: channels, beta: 1, c: sums, ldc: channels, engine: engine)
    if let dx {
      for y in 0..<h { (dx + y * w).update(from: paddedGradient + (y + p) * pw + p, count: w) }
    }
  }
}
