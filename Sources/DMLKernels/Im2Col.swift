/// The geometry of a 2-D convolution or pooling window over an NHWC batch.
public struct ConvGeometry: Sendable, Equatable, Codable {
  /// Images in the batch.
  public var batch: Int
  /// Input height, width and channels.
  public var height: Int, width: Int, channels: Int
  /// Window height and width.
  public var kernelHeight: Int, kernelWidth: Int
  /// Step between windows.
  public var strideY: Int, strideX: Int
  /// Zero padding added on each side.
  public var padY: Int, padX: Int

  /// The geometry of `batch` images of `height × width × channels` under a
  /// `kernelHeight × kernelWidth` window, with stride 1 and no padding by default.
  public init(
    batch: Int, height: Int, width: Int, channels: Int,
    kernelHeight: Int, kernelWidth: Int, strideY: Int = 1, strideX: Int = 1,
    padY: Int = 0, padX: Int = 0
  ) {
    self.batch = batch
    self.height = height
    self.width = width
    self.channels = channels
    self.kernelHeight = kernelHeight
    self.kernelWidth = kernelWidth
    self.strideY = strideY
    self.strideX = strideX
    self.padY = padY
    self.padX = padX
  }

  /// Output height.
  @inlinable public var outputHeight: Int { (height + 2 * padY - kernelHeight) / strideY + 1 }
  /// Output width.
  @inlinable public var outputWidth: Int { (width + 2 * padX - kernelWidth) / strideX + 1 }
  /// Rows of the column matrix: one per output pixel of every image.
  @inlinable public var patchCount: Int { batch * outputHeight * outputWidth }
  /// Columns of the column matrix: one window, `kernelHeight * kernelWidth * channels`.
  @inlinable public var patchSize: Int { kernelHeight * kernelWidth * channels }
}

/// Unfolds NHWC images into a column matrix: row `(b, oy, ox)` holds the window at that output
/// pixel in `(ky, kx, c)` order, with zeros where the window leaves the padded image.
///
/// A convolution is then one GEMM of the column matrix with the `(ky, kx, c)`-ordered weights.
@inlinable
package func im2col<T: DMLScalar>(
  _ input: UnsafePointer<T>, geometry g: ConvGeometry, into columns: UnsafeMutablePointer<T>
) {
  let oh = g.outputHeight, ow = g.outputWidth, c = g.channels
  var dst = columns
  let kw = g.kernelWidth, run = kw * c
  for b in 0..<g.batch {
    let image = input + b * g.height * g.width * c
    for oy in 0..<oh {
      for ox in 0..<ow {
        // A kernel row's in-bounds taps are adjacent pixels: one copy, zeros either side.
        let ix0 = ox * g.strideX - g.padX
        let first = Swift.max(0, -ix0), end = Swift.min(kw, g.width - ix0)
        for ky in 0..<g.kernelHeight {
          let iy = oy * g.strideY - g.padY + ky
          if iy >= 0 && iy < g.height && end > first {
            for i in 0..<(first * c) { dst[i] = 0 }
            copyElements(dst + first * c, image + (iy * g.width + ix0 + first) * c, count: (end - first) * c)
            for i in (end * c)..<run { dst[i] = 0 }
          } else {
            for i in 0..<run { dst[i] = 0 }
          }
          dst += run
        }
      }
    }
  }
}

/// The adjoint of `im2col`: folds a column matrix back into NHWC images, summing the entries
/// that overlapping windows share. The output is overwritten.
@inlinable
package func col2im<T: DMLScalar>(
  _ columns: UnsafePointer<T>, geometry g: ConvGeometry, into output: UnsafeMutablePointer<T>
) {
  let oh = g.outputHeight, ow = g.outputWidth, c = g.channels
  output.update(repeating: 0, count: g.batch * g.height * g.width * c)
  var src = columns
  let kw = g.kernelWidth, run = kw * c
  for b in 0..<g.batch {
    let image = output + b * g.height * g.width * c
    for oy in 0..<oh {
      for ox in 0..<ow {
        // A kernel row's in-bounds taps are adjacent pixels: one run of sums, in tap order.
        let ix0 = ox * g.strideX - g.padX
        let first = Swift.max(0, -ix0), end = Swift.min(kw, g.width - ix0)
        for ky in 0..<g.kernelHeight {
          let iy = oy * g.strideY - g.padY + ky
          if iy >= 0 && iy < g.height && end > first {
            let d = image + (iy * g.width + ix0 + first) * c, s = src + first * c
            for i in 0..<((end - first) * c) { d[i] += s[i] }
          }
          src += run
        }
      }
    }
  }
}
