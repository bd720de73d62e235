/// A 2-D convolution over NHWC images, computed as `im2col` followed by one GEMM for the whole
/// batch.
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
  @usableFromInline var columns = Matrix<Scalar>()
  @usableFromInline var columnGradient = Matrix<Scalar>()

  /// A convolution with He-normal weights and a zero bias.
  ///
  /// - Parameters:
  ///   - input: the shape of one input image.
  ///   - outChannels: the output channels.
  ///   - kernel: the square window's side.
  ///   - stride: the step between windows (1 by default).
  ///   - padding: zeros added on each side (none by default).
  ///   - rng: the source of the initial weights.
  public init(
    input: ImageShape, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
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
    let fanIn = kernel * kernel * input.channels
    weight = Parameter(
      name: "weight", shape: [outChannels, kernel, kernel, input.channels],
      value: heNormal(rows: outChannels, columns: fanIn, fanIn: fanIn, rng: &rng))
    bias = Parameter(
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

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode
  ) {
    precondition(
      input.columns == inputShape.features,
      "Conv2D expects \(inputShape) = \(inputShape.features) features, got \(input.columns)")
    let g = geometry(batch: input.rows)
    columns.resize(rows: g.patchCount, columns: g.patchSize)
    input.withUnsafeBufferPointer { x in
      columns.withUnsafeMutableBufferPointer { c in
        im2col(x.baseAddress!, geometry: g, into: c.baseAddress!)
      }
    }
    output.resize(rows: g.patchCount, columns: outChannels)
    bias.value.withUnsafeBufferPointer { output.fillRows(with: $0) }
    gemm(columns, weight.value, transposeB: true, beta: 1, into: &output)
    output.reshape(rows: input.rows, columns: g.outputHeight * g.outputWidth * outChannels)
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool
  ) {
    let g = geometry(batch: input.rows)
    var dy = outputGradient
    dy.reshape(rows: g.patchCount, columns: outChannels)
    gemm(dy, transposeA: true, columns, into: &weight.gradient)
    bias.gradient.withUnsafeMutableBufferPointer { dy.columnSums(into: $0) }
    guard propagate else { return }
    gemm(dy, weight.value, into: &columnGradient)
    inputGradient.resize(rows: input.rows, columns: inputShape.features)
    columnGradient.withUnsafeBufferPointer { c in
      inputGradient.withUnsafeMutableBufferPointer { x in
        col2im(c.baseAddress!, geometry: g, into: x.baseAddress!)
      }
    }
  }

  @inlinable
  public mutating func visitParameters(_ visit: (inout Parameter<Scalar>) -> Void) {
    visit(&weight)
    visit(&bias)
  }
}
