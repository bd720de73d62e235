import DMLKernels
import Foundation
import Testing

/// The layers' GEMM kernels (`LayerGemm`, Sources/CGemm) against a Double triple loop, on every
/// form the layers use and on the edges of their tiles: rows 1–13 (tiles of 6 rows and of 4; 16
/// and 32 for `A Bᵀ` computed as `(B Aᵀ)ᵀ`), B's
/// columns 16–288 (panels of 64 and the 16-, 32- and 48-column tails), inner sizes across the
/// 16-lane and the 128-value blocks.
@Suite("GEMM kernels of the layers")
struct LayerGemmTests {
  /// `op(A) op(B)` (+ C when `beta` is 1) through the kernels, against the Double oracle: the worst
  /// error as a multiple of its bound, `k · 2⁻²³ · Σ_p |a_ip b_pj|` plus a tiny absolute term.
  static func worstRatio(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, beta: Float, seed: UInt64
  ) -> Double? {
    var rng = RandomSource(seed: seed)
    let a = randomMatrix(transposeA ? k : m, transposeA ? m : k, &rng)
    let b = randomMatrix(transposeB ? n : k, transposeB ? k : n, &rng)
    let c0 = randomMatrix(m, n, &rng)
    let expected = naiveGemm(a, transposeA, b, transposeB, alpha: 1, beta: Double(beta), c0)
    let absA = a.map { abs($0) }, absB = b.map { abs($0) }
    let bound = naiveGemm(absA, transposeA, absB, transposeB, alpha: 1, beta: 0, c0)
    let (af, bf) = (a.converted(to: Float.self), b.converted(to: Float.self))
    // beta 0 must ignore C's old values: NaN there would show through.
    var c = beta == 0 ? Matrix<Float>(rows: m, columns: n, repeating: .nan) : c0.converted(to: Float.self)
    let ran = af.withUnsafeBufferPointer { ap in
      bf.withUnsafeBufferPointer { bp in
        c.withUnsafeMutableBufferPointer { cp in
          LayerGemm.kernelGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: ap.baseAddress!,
            lda: af.columns, b: bp.baseAddress!, ldb: bf.columns, beta: beta, c: cp.baseAddress!,
            ldc: n)
        }
      }
    }
    guard ran else { return nil }
    var worst = 0.0
    for i in 0..<m {
      for j in 0..<n {
        let tolerance = Double(k + 2) * 0x1p-23 * (bound[i, j] + abs(c0[i, j])) + 1e-30
        let error = abs(Double(c[i, j]) - expected[i, j])
        worst = max(worst, error.isNaN ? .infinity : error / tolerance)
      }
    }
    return worst
  }

  @Test(
    "each form matches the Double product within k rounding errors",
    arguments: [(false, false), (true, false), (false, true), (true, true)])
  func forms(transposeA: Bool, transposeB: Bool) throws {
    var seed: UInt64 = 0
    for m in [1, 5, 6, 7, 12, 13, 16, 32] {
      for n in [16, 48, 64, 80, 144, 288] {
        for k in [1, 15, 16, 17, 300] {
          for beta: Float in [0, 1] {
            seed += 1
            let worst = try #require(
              Self.worstRatio(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, beta: beta, seed: seed),
              "the kernels refused \(m)x\(n)x\(k)")
            #expect(worst <= 1, "\(m)x\(n)x\(k) beta \(beta): error \(worst) times the bound")
          }
        }
      }
    }
  }

  @Test("A Bᵀ with A's rows contiguous takes any width of B")
  func anyWidthTransposed() throws {
    for (m, n, k) in [(3, 1, 20), (9, 7, 33), (5, 130, 784)] {
      let worst = try #require(
        Self.worstRatio(transposeA: false, transposeB: true, m: m, n: n, k: k, beta: 1, seed: UInt64(n)))
      #expect(worst <= 1, "\(m)x\(n)x\(k): error \(worst) times the bound")
    }
  }

  @Test("B's width must be a multiple of 16 where B is not transposed; beta must be 0 or 1")
  func refusals() {
    #expect(Self.worstRatio(transposeA: false, transposeB: false, m: 4, n: 20, k: 16, beta: 0, seed: 1) == nil)
    #expect(Self.worstRatio(transposeA: false, transposeB: false, m: 4, n: 16, k: 16, beta: 0.5, seed: 1) == nil)
  }

  @Test("the kernels run where the CPU has AVX-512, and layers use them only in optimised builds")
  func availability() {
    #expect(LayerGemm.kernelsAvailable == BLAS.cpuHasAVX512)
    if !LayerGemm.kernelsAvailable { #expect(ComputeContext.automatic.engine == .blas) }
  }

  @Test("subnormal operands count as zero inside the kernels, and the caller's mode is restored")
  func subnormals() {
    let tiny = Float.leastNormalMagnitude / 4
    let k = 16
    let a = [Float](repeating: tiny, count: k), b = [Float](repeating: 1, count: k * 16)
    var c = [Float](repeating: 0, count: 16)
    let ran = a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        c.withUnsafeMutableBufferPointer { cp in
          LayerGemm.kernelGemm(
            transposeA: false, transposeB: false, m: 1, n: 16, k: k, a: ap.baseAddress!, lda: k,
            b: bp.baseAddress!, ldb: 16, beta: 0, c: cp.baseAddress!, ldc: 16)
        }
      }
    }
    #expect(ran)
    // With AVX-512 the subnormal operands are flushed; the portable loop keeps them.
    let expected: Float = LayerGemm.kernelsAvailable ? 0 : tiny * Float(k)
    #expect(c.allSatisfy { $0 == expected }, "got \(c[0]), expected \(expected)")
    // Swift's own arithmetic still sees subnormals after the call.
    let half = [tiny].withUnsafeBufferPointer { $0[0] } * 0.5
    #expect(half > 0 && half.isSubnormal)
  }
}

/// `Float.reluPoolWindow` (AVX-512 where the CPU has it) against a scalar loop: ties (the first
/// position wins), zeros and negatives (route 255), NaN, and every tail length of a 16-lane vector.
@Suite("ReLU max-pooling of one window")
struct ReluPoolWindowTests {
  @Test("matches a scalar loop for 1–40 channels and 1–9 positions")
  func matchesScalar() {
    var rng = RandomSource(seed: 3)
    let palette: [Float] = [-1, 0, 0.5, 0.5, 1, 2, .nan, -0.0]
    for positions in 1...9 {
      for count in 1...40 {
        let stride = count + 3
        var values = [Float](repeating: 0, count: positions * stride)
        for i in values.indices { values[i] = palette[Int(rng.next() % UInt64(palette.count))] }
        let offsets = (0..<positions).map { $0 * stride }
        var y = [Float](repeating: -7, count: count + 1), routes = [UInt8](repeating: 7, count: count + 1)
        values.withUnsafeBufferPointer { v in
          offsets.withUnsafeBufferPointer { o in
            y.withUnsafeMutableBufferPointer { yp in
              routes.withUnsafeMutableBufferPointer { rp in
                Float.reluPoolWindow(v.baseAddress!, offsets: o.baseAddress!, positions: positions, yp.baseAddress!, rp.baseAddress!, count: count)
              }
            }
          }
        }
        var mismatches = 0
        for c in 0..<count {
          var best = values[c], index = 0
          for r in 1..<positions where values[offsets[r] + c] > best {
            best = values[offsets[r] + c]
            index = r
          }
          let expectedY: Float = best > 0 ? best : 0, expectedRoute: UInt8 = best > 0 ? UInt8(index) : 255
          if y[c].bitPattern != expectedY.bitPattern || routes[c] != expectedRoute { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(positions) positions, \(count) channels: \(mismatches) mismatches")
        #expect(y[count] == -7 && routes[count] == 7, "wrote past \(count) channels")
      }
    }
  }
}

/// `Float.routeGradient` (AVX-512 where the CPU has it) against a scalar loop: every route
/// including 255 (none), overlapping windows (two positions at one offset), every tail length.
@Suite("Pooling's gradient along its routes")
struct RouteGradientTests {
  @Test("matches a scalar loop for 1–40 channels and 1–9 positions")
  func matchesScalar() {
    var rng = RandomSource(seed: 4)
    for positions in 1...9 {
      for count in 1...40 {
        let stride = count + 2
        // Position 1 shares position 0's offset when there are 3 or more: both add there.
        let offsets = (0..<positions).map { positions >= 3 && $0 == 1 ? 0 : $0 * stride }
        let g = (0..<count).map { _ in Float(rng.normal() as Double) }
        let routes = (0..<count).map { _ in rng.index(below: 4) == 0 ? UInt8(255) : UInt8(rng.index(below: positions)) }
        let start = (0..<(positions * stride + 1)).map { _ in Float(rng.normal() as Double) }
        var row = start
        g.withUnsafeBufferPointer { gp in
          routes.withUnsafeBufferPointer { rp in
            offsets.withUnsafeBufferPointer { op in
              row.withUnsafeMutableBufferPointer { out in
                Float.routeGradient(
                  gp.baseAddress!, routes: rp.baseAddress!, offsets: op.baseAddress!, positions: positions,
                  into: out.baseAddress!, count: count)
              }
            }
          }
        }
        var expected = start
        for c in 0..<count where Int(routes[c]) < positions { expected[offsets[Int(routes[c])] + c] += g[c] }
        let mismatches = zip(row, expected).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(mismatches == 0, "\(positions) positions, \(count) channels: \(mismatches) mismatches")
      }
    }
  }
}
