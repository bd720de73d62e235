/// Max pooling over square windows of NHWC images (PyTorch's `MaxPool2d`, with its implicit
/// padding by −∞: a window's positions outside the image are left out). The gradient goes to the
/// first maximum of each window.
public struct MaxPool2D<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The shape of one input image.
  public let inputShape: ImageShape
  /// Window size and stride (the stride defaults to the window size).
  public let size: Int, stride: Int
  /// Positions added on each side, never chosen (at most half the window).
  public let padding: Int
  @usableFromInline var routed: [Bool] = []

  /// Max pooling of `input` images over `size × size` windows (2 by default) that move by
  /// `stride` (the window size by default), with `padding` positions on each side (ResNet's stem:
  /// size 3, stride 2, padding 1). The padded window must fit in the image.
  public init(input: ImageShape, size: Int = 2, stride: Int? = nil, padding: Int = 0) {
    precondition(padding >= 0 && padding <= size / 2, "MaxPool2D: padding \(padding) exceeds half the window \(size)")
    precondition(size > 0 && size <= min(input.height, input.width) + 2 * padding, "MaxPool2D: bad window \(size)")
    inputShape = input
    self.size = size
    self.stride = stride ?? size
    self.padding = padding
  }

  /// The shape of one output image.
  public var outputShape: ImageShape {
    ImageShape(
      height: (inputShape.height + 2 * padding - size) / stride + 1,
      width: (inputShape.width + 2 * padding - size) / stride + 1, channels: inputShape.channels)
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n == inputShape.features, "MaxPool2D expects \(inputShape), got \(n) features")
    return outputShape.features
  }

  /// Calls `body(outputOffset, windowOffsets)` for each output pixel; offsets are per image, at
  /// channel 0, and the window's input offsets inside the image come in row-major order.
  @inlinable
  func forEachWindow(_ body: (Int, UnsafeBufferPointer<Int>) -> Void) {
    let out = outputShape
    let (h, w, c, k, s, p) = (inputShape.height, inputShape.width, inputShape.channels, size, stride, padding)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: k * k) { offsets in
      for oy in 0..<out.height {
        for ox in 0..<out.width {
          var count = 0
          for ky in 0..<k {
            let y = oy * s + ky - p
            guard y >= 0 && y < h else { continue }
            for kx in 0..<k {
              let x = ox * s + kx - p
              guard x >= 0 && x < w else { continue }
              offsets[count] = (y * w + x) * c
              count += 1
            }
          }
          body((oy * out.width + ox) * c, UnsafeBufferPointer(rebasing: offsets[0..<count]))
        }
      }
    }
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(input.columns == inputShape.features, "MaxPool2D expects \(inputShape)")
    let nIn = inputShape.features, nOut = outputShape.features, c = inputShape.channels
    output.resize(rows: input.rows, columns: nOut)
    let chunks = compute.chunkCount(rows: input.rows, workPerRow: nIn)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        BatchParallelism.forEachChunk(rows: input.rows, chunks: chunks) { _, images in
          for b in images {
            let xi = x.baseAddress! + b * nIn, yo = y.baseAddress! + b * nOut
            forEachWindow { o, window in
              copyElements(yo + o, xi + window[0], count: c)
              for i in window.dropFirst() { maximumInPlace(yo + o, xi + i, count: c) }
            }
          }
        }
      }
    }
  }

  /// The gradient goes to the first position of each window that holds the maximum, found again
  /// by comparing the input with the output.
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    let nIn = inputShape.features, nOut = outputShape.features, c = inputShape.channels
    inputGradient.resize(rows: input.rows, columns: nIn, zeroed: true)
    let chunks = compute.chunkCount(rows: input.rows, workPerRow: nIn)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeBufferPointer { y in
        outputGradient.withUnsafeBufferPointer { g in
          inputGradient.withUnsafeMutableBufferPointer { gx in
            BatchParallelism.forEachChunk(rows: input.rows, chunks: chunks) { _, images in
              for b in images {
                let xi = x.baseAddress! + b * nIn, gxi = gx.baseAddress! + b * nIn
                let yo = y.baseAddress! + b * nOut, go = g.baseAddress! + b * nOut
                withUnsafeTemporaryAllocation(of: Scalar.self, capacity: c) { routed in
                  forEachWindow { o, window in
                    routed.initialize(repeating: 0)
                    for i in window {
                      Scalar.routeMaximum(xi + i, yo + o, go + o, gxi + i, routed.baseAddress!, count: c)
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

/// Average pooling over square windows of NHWC images (PyTorch's `AvgPool2d`, no padding).
public struct AvgPool2D<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The shape of one input image.
  public let inputShape: ImageShape
  /// Window size and stride (the stride defaults to the window size).
  public let size: Int, stride: Int

  /// Average pooling of `input` images over `size × size` windows (2 by default) that move by
  /// `stride` (the window size by default). The window must fit in the image.
  public init(input: ImageShape, size: Int = 2, stride: Int? = nil) {
    precondition(size > 0 && size <= min(input.height, input.width), "AvgPool2D: bad window \(size)")
    inputShape = input
    self.size = size
    self.stride = stride ?? size
  }

  /// The shape of one output image.
  public var outputShape: ImageShape {
    ImageShape(
      height: (inputShape.height - size) / stride + 1,
      width: (inputShape.width - size) / stride + 1, channels: inputShape.channels)
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n == inputShape.features, "AvgPool2D expects \(inputShape), got \(n) features")
    return outputShape.features
  }

  /// Calls `body(outputIndex, inputIndex)` for every pair of a window (per image offsets).
  @inlinable
  func forEachWindowEntry(_ body: (Int, Int) -> Void) {
    let out = outputShape
    let (w, c) = (inputShape.width, inputShape.channels)
    for oy in 0..<out.height {
      for ox in 0..<out.width {
        let o = (oy * out.width + ox) * c
        for ky in 0..<size {
          for kx in 0..<size {
            let at = ((oy * stride + ky) * w + ox * stride + kx) * c
            for ch in 0..<c { body(o + ch, at + ch) }
          }
        }
      }
    }
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(input.columns == inputShape.features, "AvgPool2D expects \(inputShape)")
    let nIn = inputShape.features, nOut = outputShape.features
    output.resize(rows: input.rows, columns: nOut, zeroed: true)
    let scale = 1 / Scalar(size * size)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        for b in 0..<input.rows {
          forEachWindowEntry { o, i in y[b * nOut + o] += scale * x[b * nIn + i] }
        }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    let nIn = inputShape.features, nOut = outputShape.features
    inputGradient.resize(rows: input.rows, columns: nIn, zeroed: true)
    let scale = 1 / Scalar(size * size)
    outputGradient.withUnsafeBufferPointer { g in
      inputGradient.withUnsafeMutableBufferPointer { gx in
        for b in 0..<input.rows {
          forEachWindowEntry { o, i in gx[b * nIn + i] += scale * g[b * nOut + o] }
        }
      }
    }
  }
}

/// Global average pooling: the mean of each channel over all pixels, `H×W×C → C`.
public struct GlobalAvgPool<Scalar: DMLScalar>: Layer, ParameterFree {
  /// The shape of one input image.
  public let inputShape: ImageShape

  /// Global average pooling of `input` images, giving one value per channel.
  public init(input: ImageShape) { inputShape = input }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n == inputShape.features, "GlobalAvgPool expects \(inputShape), got \(n) features")
    return inputShape.channels
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(input.columns == inputShape.features, "GlobalAvgPool expects \(inputShape)")
    let c = inputShape.channels, pixels = inputShape.height * inputShape.width
    output.resize(rows: input.rows, columns: c, zeroed: true)
    let scale = 1 / Scalar(pixels)
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        for b in 0..<input.rows {
          for p in 0..<pixels {
            for ch in 0..<c { y[b * c + ch] += x[(b * pixels + p) * c + ch] }
          }
          for ch in 0..<c { y[b * c + ch] *= scale }
        }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    guard propagate else { return }
    let c = inputShape.channels, pixels = inputShape.height * inputShape.width
    inputGradient.resize(rows: input.rows, columns: input.columns)
    let scale = 1 / Scalar(pixels)
    outputGradient.withUnsafeBufferPointer { g in
      inputGradient.withUnsafeMutableBufferPointer { gx in
        for b in 0..<input.rows {
          for p in 0..<pixels {
            for ch in 0..<c { gx[(b * pixels + p) * c + ch] = scale * g[b * c + ch] }
          }
        }
      }
    }
  }
}
