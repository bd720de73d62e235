/// A 2-D convolution over NHWC images, computed as `im2col` followed by a GEMM, per chunk of the
/// batch: one chunk per core, in parallel (see `BatchParallelism`). Each chunk goes through its
/// images a few at a time (about 512 patch rows), so that a block's columns stay in the core's
/// cache between `im2col`, the GEMM and `col2im`; the backward pass recomputes them.
///
/// The weight is `outChannels × (kernel · kernel · inChannels)` with each row in
/// `(ky, kx, c)` order. Initialisation is He normal with a zero bias.
public struct Conv2D<Scalar: DMLScalar>: Layer {
  /// The weight, `outChannels × kernelHeight·kernelWidth·inChannels`.
  public var weight: Parameter<Scalar>
  /// The bias, one value per output channel.
  public var bias: Parameter<Scalar>
  /// The shape of one input image.
  public let inputShape: ImageShape
  /// Output channels.
  public let outChannels: Int
  /// Square kernel size, stride and zero padding.
  public let kernel: Int, stride: Int, padding: Int
  /// Whether the bias is a parameter; without it (PyTorch's `bias=False`, as in ResNet, where a
  /// BatchNorm follows) it stays zero and is neither named, trained nor saved.
  public let usesBias: Bool
  /// Per chunk: one block's columns, then (backward) their gradient.
  @usableFromInline var columns = Matrix<Scalar>()
  @usableFromInline var partialGradients = Matrix<Scalar>()
  /// The weight transposed (`kernel·kernel·inChannels × outChannels`), made once per forward
  /// pass, so that every block's product reads the filters row by row without a copy.
  @usableFromInline var transposedWeight = Matrix<Scalar>()

  /// A convolution with He-normal weights and a zero bias.
  ///
  /// - Parameters:
  ///   - input: the shape of one input image.
  ///   - outChannels: the output channels.
  ///   - kernel: the square window's side.
  ///   - stride: the step between windows (1 by default).
  ///   - padding: zeros added on each side (none by default).
  ///   - bias: whether the layer has a bias parameter (true by default).
  ///   - rng: the source of the initial weights.
  public init(
    input: ImageShape, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
    rng: inout RandomSource
  ) {
    precondition(kernel > 0 && stride > 0 && padding >= 0, "Conv2D: invalid kernel/stride/padding")
    precondition(
      input.height + 2 * padding >= kernel && input.width + 2 * padding >= kernel,
      "Conv2D: kernel \(kernel) larger than padded input \(input)")
    inputShape = input
    self.outChannels = outChannels
    self.kernel = kernel
    self.stride = stride
    self.padding = padding
    usesBias = bias
    let fanIn = kernel * kernel * input.channels
    weight = Parameter(
      name: "weight", shape: [outChannels, kernel, kernel, input.channels],
      value: heNormal(rows: outChannels, columns: fanIn, fanIn: fanIn, rng: &rng))
    self.bias = Parameter(
      name: "bias", shape: [outChannels], value: Matrix(rows: 1, columns: outChannels),
      decays: false)
  }

  /// The shape of one output image.
  public var outputShape: ImageShape {
    let g = geometry(batch: 1)
    return ImageShape(height: g.outputHeight, width: g.outputWidth, channels: outChannels)
  }

  @inlinable
  func geometry(batch: Int) -> ConvGeometry {
    ConvGeometry(
      batch: batch, height: inputShape.height, width: inputShape.width,
      channels: inputShape.channels, kernelHeight: kernel, kernelWidth: kernel,
      strideY: stride, strideX: stride, padY: padding, padX: padding)
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n == inputShape.features, "Conv2D expects \(inputShape) = \(inputShape.features) features, got \(n)")
    return outputShape.features
  }

  /// How many chunks of the batch run in parallel (`BatchParallelism`): one per thread of
  /// `compute` when each gets at least 2²⁰ multiply-adds.
  @inlinable
  func chunkCount(_ g: ConvGeometry, compute: ComputeContext) -> Int {
    compute.chunkCount(
      rows: g.batch, workPerRow: g.outputHeight * g.outputWidth * g.patchSize * outChannels,
      minimumWork: 1 << 20)
  }

  /// Whether the columns are the input itself: a 1×1 kernel at stride 1 without padding reads
  /// each pixel's channels as its patch, so `im2col` and `col2im` would only copy.
  @inlinable
  var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

  /// Images per block: about 512 patch rows (at least one image).
  @inlinable
  func imagesPerBlock(_ g: ConvGeometry) -> Int { Swift.max(1, 512 / Swift.max(1, g.outputHeight * g.outputWidth)) }

  /// Calls `body(first image, image count)` for the blocks of `images`, in order.
  @inlinable
  static func forEachBlock(of images: Range<Int>, size: Int, _ body: (Int, Int) -> Void) {
    var start = images.lowerBound
    while start < images.upperBound {
      let count = Swift.min(size, images.upperBound - start)
      body(start, count)
      start += count
    }
  }

  /// Per chunk of images, in parallel, block by block: `im2col`, then the GEMM onto the bias.
  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(
      input.columns == inputShape.features,
      "Conv2D expects \(inputShape) = \(inputShape.features) features, got \(input.columns)")
    let g = geometry(batch: input.rows)
    let (perImage, ps, oc, inF) = (g.outputHeight * g.outputWidth, g.patchSize, outChannels, inputShape.features)
    output.resize(rows: g.patchCount, columns: oc)
    if g.batch > 0 {
      let chunks = chunkCount(g, compute: compute), perBlock = imagesPerBlock(g)
      let scratch = isPointwise ? 1 : 2 * perBlock * perImage * ps
      let pointwise = isPointwise
      columns.resize(rows: chunks, columns: scratch)
      weight.value.transpose(into: &transposedWeight, compute: compute)
      input.withUnsafeBufferPointer { x in
        columns.withUnsafeMutableBufferPointer { c in
          output.withUnsafeMutableBufferPointer { y in
            bias.value.withUnsafeBufferPointer { b in
              transposedWeight.withUnsafeBufferPointer { w in
                BatchParallelism.forEachChunk(rows: g.batch, chunks: chunks) { chunk, images in
                  let cols = c.baseAddress! + chunk * scratch
                  Self.forEachBlock(of: images, size: perBlock) { first, count in
                    var gc = g
                    gc.batch = count
                    let block = x.baseAddress! + first * inF
                    if !pointwise { im2col(block, geometry: gc, into: cols) }
                    ChunkedAffine.forward(
                      pointwise ? block : UnsafePointer(cols), rows: gc.patchCount, inputs: ps, weight: w.baseAddress!, bias: b.baseAddress!,
                      outputs: oc, into: y.baseAddress! + first * perImage * oc, transposed: true, engine: compute.engine)
                  }
                }
              }
            }
          }
        }
      }
    }
    output.reshape(rows: input.rows, columns: perImage * oc)
  }

  /// Per chunk of images, in parallel, block by block: `im2col` again, the block's weight and
  /// bias gradients added to the chunk's (chunk 0's into the parameters, the others' into
  /// `partialGradients`, summed after in chunk order), then its column gradient and `col2im`.
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let g = geometry(batch: input.rows)
    let (perImage, ps, oc, inF) = (g.outputHeight * g.outputWidth, g.patchSize, outChannels, inputShape.features)
    precondition(
      outputGradient.rows * outputGradient.columns == g.patchCount * oc,
      "Conv2D.backward: the output gradient has \(outputGradient.rows)x\(outputGradient.columns) values, expected \(g.patchCount * oc)")
    let chunks = chunkCount(g, compute: compute), perBlock = imagesPerBlock(g)
    // Each chunk's first block overwrites its gradients; only an empty batch needs them zeroed.
    weight.gradient.resize(rows: oc, columns: ps, zeroed: g.batch == 0)
    bias.gradient.resize(rows: 1, columns: oc, zeroed: g.batch == 0)
    if propagate { inputGradient.resize(rows: input.rows, columns: inF) }
    guard g.batch > 0 else { return }
    if chunks > 1 { partialGradients.resize(rows: chunks - 1, columns: oc * ps + oc) }
    let pointwise = isPointwise
    let blockSize = pointwise ? 0 : perBlock * perImage * ps, scratch = Swift.max(1, 2 * blockSize)
    columns.resize(rows: chunks, columns: scratch)
    input.withUnsafeBufferPointer { x in
      outputGradient.withUnsafeBufferPointer { dy in
        columns.withUnsafeMutableBufferPointer { c in
          weight.value.withUnsafeBufferPointer { w in
            weight.gradient.withUnsafeMutableBufferPointer { dw in
              bias.gradient.withUnsafeMutableBufferPointer { db in
                partialGradients.withUnsafeMutableBufferPointer { partial in
                  inputGradient.withUnsafeMutableBufferPointer { dx in
                    BatchParallelism.forEachChunk(rows: g.batch, chunks: chunks) { chunk, images in
                      let target = ChunkedAffine.gradientTargets(
                        chunk: chunk, inputs: ps, outputs: oc, weightGradient: dw.baseAddress!,
                        biasGradient: db.baseAddress!, partial: partial.baseAddress)
                      let cols = c.baseAddress! + chunk * scratch, columnGradient = cols + blockSize
                      Self.forEachBlock(of: images, size: perBlock) { first, count in
                        var gc = g
                        gc.batch = count
                        let block = x.baseAddress! + first * inF
                        if !pointwise { im2col(block, geometry: gc, into: cols) }
                        let gradient = dy.baseAddress! + first * perImage * oc
                        ChunkedAffine.parameterGradients(
                          pointwise ? block : UnsafePointer(cols), gradient, rows: gc.patchCount, inputs: ps, outputs: oc,
                          weightGradient: target.weight, biasGradient: target.bias,
                          accumulate: first > images.lowerBound, engine: compute.engine)
                        guard propagate else { return }
                        // A pointwise convolution's column gradient is its input gradient.
                        let target = dx.baseAddress! + first * inF
                        ChunkedAffine.inputGradient(
                          gradient, rows: gc.patchCount, inputs: ps, outputs: oc, weight: w.baseAddress!,
                          into: pointwise ? target : columnGradient, engine: compute.engine)
                        if !pointwise { col2im(columnGradient, geometry: gc, into: target) }
                      }
                    }
                    ChunkedAffine.addPartialGradients(
                      chunks: chunks, inputs: ps, outputs: oc, weightGradient: dw.baseAddress!,
                      biasGradient: db.baseAddress!, partial: partial.baseAddress)
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&weight)
    if usesBias { visitor.visit(&bias) }
  }
}
