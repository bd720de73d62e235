import DMLKernels
import DMLNetworks
import Testing

/// `Linear` and `Conv2D` in `Float` through the GEMM kernels (`LayerGemm`) and through BLAS, the
/// engine chosen by the compute context (so a debug build checks the kernels too), on one and on
/// two threads: the outputs, the input gradients and the parameter gradients agree to Float
/// rounding.
@Suite("Layers on both GEMM engines")
struct LayerGemmEngineTests {
  struct Pass {
    var output: Matrix<Float>, inputGradient: Matrix<Float>, parameterGradients: [Matrix<Float>]
  }

  static func pass<L: Layer>(_ layer: L, _ x: Matrix<Float>, _ dy: Matrix<Float>, compute: ComputeContext) -> Pass
  where L.Scalar == Float {
    var layer = layer
    var y = Matrix<Float>(), dx = Matrix<Float>()
    layer.forward(x, into: &y, mode: .training, compute: compute)
    layer.backward(input: x, output: y, outputGradient: dy, inputGradient: &dx, propagate: true, compute: compute)
    var gradients: [Matrix<Float>] = []
    layer.forEachParameter { gradients.append($1.gradient) }
    return Pass(output: y, inputGradient: dx, parameterGradients: gradients)
  }

  /// The largest difference relative to the largest magnitude of `b`.
  static func relative(_ a: Matrix<Float>, _ b: Matrix<Float>) -> Float {
    guard a.rows == b.rows && a.columns == b.columns else { return .infinity }
    var worst: Float = 0, scale: Float = 0
    for i in 0..<a.rows {
      for j in 0..<a.columns {
        worst = max(worst, abs(a[i, j] - b[i, j]))
        scale = max(scale, abs(b[i, j]))
      }
    }
    return scale > 0 ? worst / scale : worst
  }

  static func compare<L: Layer>(_ layer: L, inputs: Int, outputs: Int, rows: Int) where L.Scalar == Float {
    var rng = RandomSource(seed: 7)
    var x = Matrix<Float>(rows: rows, columns: inputs), dy = Matrix<Float>(rows: rows, columns: outputs)
    x.apply { _ in Float(rng.normal() as Double) }
    dy.apply { _ in Float(rng.normal() as Double) }
    let blas = pass(layer, x, dy, compute: ComputeContext(threads: 1, engine: .blas))
    for threads in [1, 2] {
      let fast = pass(layer, x, dy, compute: ComputeContext(threads: threads, engine: .kernels, splitsAlways: true))
      #expect(relative(fast.output, blas.output) < 1e-5, "\(threads) threads")
      #expect(relative(fast.inputGradient, blas.inputGradient) < 1e-5, "\(threads) threads")
      #expect(fast.parameterGradients.count == blas.parameterGradients.count)
      for (f, b) in zip(fast.parameterGradients, blas.parameterGradients) { #expect(relative(f, b) < 1e-5, "\(threads) threads") }
    }
  }

  @Test("Linear(48 → 32) over 13 rows")
  func linear() {
    var rng = RandomSource(seed: 1)
    Self.compare(Linear<Float>(48, 32, rng: &rng), inputs: 48, outputs: 32, rows: 13)
  }

  @Test("Conv2D 3×3, 16 → 16 channels, 5×4 images, 3 images")
  func conv() {
    var rng = RandomSource(seed: 2)
    let conv = Conv2D<Float>(
      input: ImageShape(height: 5, width: 4, channels: 16), outChannels: 16, kernel: 3, padding: 1, rng: &rng)
    Self.compare(conv, inputs: 320, outputs: 20 * 16, rows: 3)
  }
}
