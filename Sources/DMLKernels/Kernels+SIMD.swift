import CGemm
import CSIMD

/// Elementwise kernels that the compiler does not vectorise on its own (branchy selects), written
/// once over a scalar's `Lanes` (see `KernelLanes`): `SIMD16<Float>` or `SIMD8<Double>`.

/// `y = max(x, 0)` over `count` elements. (This select form vectorises when generic.)
@inlinable
package func reluForward<T: DMLScalar>(
  _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int
) {
  for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
}

/// `y = max(a + b, 0)` over `count` elements (a NaN sum gives 0, as `ReLU` does).
@inlinable
package func addThenRectify<T: DMLScalar>(
  _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int
) {
  for i in 0..<count {
    let s = a[i] + b[i]
    y[i] = s > 0 ? s : 0
  }
}

/// `y += x` over `count` elements.
@inlinable
package func addInPlace<T: DMLScalar>(_ y: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, count: Int) {
  for i in 0..<count { y[i] += x[i] }
}

/// `gx = x > 0 ? g : 0` over `count` elements.
@inlinable
package func reluBackward<T: DMLScalar>(
  _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, _ gx: UnsafeMutablePointer<T>, count: Int
) {
  T.reluBackward(x, g, gx, count: count)
}

/// `y = max(y, x)` over `count` elements (NaN in `x` is ignored).
@inlinable
package func maximumInPlace<T: DMLScalar>(
  _ y: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, count: Int
) {
  T.maximumInPlace(y, x, count: count)
}

extension LaneScalar {
  /// `Σ p[k]·q[k]` over `count` elements, with `Lanes` partial sums: lane-wise, then the lanes
  /// added (so the order of the additions differs from a serial loop's).
  @inlinable
  package static func dot(_ p: UnsafePointer<Self>, _ q: UnsafePointer<Self>, count: Int) -> Self {
    var acc = Lanes(repeating: 0)
    var j = 0
    while j + Lanes.width <= count {
      acc = acc + Lanes(loading: p + j) * Lanes(loading: q + j)
      j += Lanes.width
    }
    var s = acc.sum()
    while j < count {
      s += p[j] * q[j]
      j += 1
    }
    return s
  }

  /// `Σ p[k]` over `count` elements, with `Lanes` partial sums (so the order of the additions
  /// differs from a serial loop's).
  @inlinable
  package static func sum(_ p: UnsafePointer<Self>, count: Int) -> Self {
    var acc = Lanes(repeating: 0)
    var j = 0
    while j + Lanes.width <= count {
      acc = acc + Lanes(loading: p + j)
      j += Lanes.width
    }
    var s = acc.sum()
    while j < count {
      s += p[j]
      j += 1
    }
    return s
  }

  /// The largest of `count` elements (−∞ for none; NaNs are skipped).
  @inlinable
  package static func maximum(_ p: UnsafePointer<Self>, count: Int) -> Self {
    var acc = Lanes(repeating: -.infinity)
    var j = 0
    while j + Lanes.width <= count {
      let b = Lanes(loading: p + j)
      acc = acc.replacing(with: b, where: Lanes.greater(b, acc))
      j += Lanes.width
    }
    var largest = withUnsafeTemporaryAllocation(of: Self.self, capacity: Lanes.width) { lanes in
      acc.store(to: lanes.baseAddress!)
      var largest = -Self.infinity
      for k in 0..<Lanes.width where lanes[k] > largest { largest = lanes[k] }
      return largest
    }
    while j < count {
      if p[j] > largest { largest = p[j] }
      j += 1
    }
    return largest
  }

  /// `gx = x > 0 ? g : 0` over `count` elements.
  @inlinable
  package static func reluBackward(
    _ x: UnsafePointer<Self>, _ g: UnsafePointer<Self>, _ gx: UnsafeMutablePointer<Self>, count: Int
  ) {
    let zero = Lanes(repeating: 0)
    var i = 0
    while i + Lanes.width <= count {
      let xv = Lanes(loading: x + i), gv = Lanes(loading: g + i)
      zero.replacing(with: gv, where: Lanes.greater(xv, zero)).store(to: gx + i)
      i += Lanes.width
    }
    while i < count {
      gx[i] = x[i] > 0 ? g[i] : 0
      i += 1
    }
  }

  /// `y = max(y, x)` over `count` elements (NaN in `x` is ignored).
  @inlinable
  package static func maximumInPlace(_ y: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>, count: Int) {
    var i = 0
    while i + Lanes.width <= count {
      let a = Lanes(loading: y + i), b = Lanes(loading: x + i)
      a.replacing(with: b, where: Lanes.greater(b, a)).store(to: y + i)
      i += Lanes.width
    }
    while i < count {
      if x[i] > y[i] { y[i] = x[i] }
      i += 1
    }
  }

  /// `row[j] = max(querySquare + referenceSquares[j] − 2 row[j], 0)`: a row of squared distances
  /// from a row of dot products. With `countingCancellations`, returns how many of them are below
  /// 10⁻³ (querySquare + referenceSquares[j]), where the form cancels and the caller may recompute
  /// them directly; else 0 (a search's rows skip the count).
  @inlinable @discardableResult
  package static func squaredDistanceRow(
    _ row: UnsafeMutablePointer<Self>, querySquare: Self, referenceSquares: UnsafePointer<Self>, count: Int,
    countingCancellations: Bool = false
  ) -> Int {
    let q = Lanes(repeating: querySquare), zero = Lanes(repeating: 0), two = Lanes(repeating: 2)
    let one = Lanes(repeating: 1), small = Lanes(repeating: 1e-3)
    var flagged = zero
    var j = 0
    while j + Lanes.width <= count {
      let dot = Lanes(loading: row + j), r = Lanes(loading: referenceSquares + j)
      let d2 = q + r - two * dot
      let clamped = d2.replacing(with: zero, where: Lanes.less(d2, zero))
      clamped.store(to: row + j)
      if countingCancellations { flagged = flagged + zero.replacing(with: one, where: Lanes.less(clamped, small * (q + r))) }
      j += Lanes.width
    }
    var cancelled = countingCancellations ? Int(flagged.sum()) : 0
    while j < count {
      row[j] = Swift.max(querySquare + referenceSquares[j] - 2 * row[j], 0)
      if countingCancellations && row[j] < 1e-3 * (querySquare + referenceSquares[j]) { cancelled += 1 }
      j += 1
    }
    return cancelled
  }

  /// `out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0`.
  @inlinable
  package static func divideWherePositive(
    _ numerator: UnsafePointer<Self>, _ denominator: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>,
    count: Int
  ) {
    let zero = Lanes(repeating: 0), one = Lanes(repeating: 1)
    var j = 0
    while j + Lanes.width <= count {
      let g = Lanes(loading: numerator + j), d = Lanes(loading: denominator + j)
      let positive = Lanes.greater(d, zero)
      let q = g / d.replacing(with: one, where: Lanes.not(positive))
      zero.replacing(with: q, where: positive).store(to: out + j)
      j += Lanes.width
    }
    while j < count {
      out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0
      j += 1
    }
  }

  /// Max-pooling's gradient routing for one window position over `count` channels: where
  /// `x == y` (the window's maximum) and `done` is still 0, adds `g` to `gx` and sets `done` to 1,
  /// so the first maximum of each window gets the gradient.
  @inlinable
  package static func routeMaximum(
    _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ g: UnsafePointer<Self>,
    _ gx: UnsafeMutablePointer<Self>, _ done: UnsafeMutablePointer<Self>, count: Int
  ) {
    let zero = Lanes(repeating: 0), one = Lanes(repeating: 1)
    var i = 0
    while i + Lanes.width <= count {
      let xv = Lanes(loading: x + i), yv = Lanes(loading: y + i), dv = Lanes(loading: done + i)
      let m = Lanes.both(Lanes.equal(xv, yv), Lanes.equal(dv, zero))
      let gv = Lanes(loading: g + i), acc = Lanes(loading: gx + i)
      (acc + zero.replacing(with: gv, where: m)).store(to: gx + i)
      dv.replacing(with: one, where: m).store(to: done + i)
      i += Lanes.width
    }
    while i < count {
      if done[i] == 0 && x[i] == y[i] {
        gx[i] += g[i]
        done[i] = 1
      }
      i += 1
    }
  }
}

extension PoolingScalar {
  /// `reluPoolWindow` in `Lanes`: the first position of a tie wins, as in `routeMaximum`.
  @inlinable
  package static func reluPoolWindowLanes(
    _ base: UnsafePointer<Self>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Self>, _ routes: UnsafeMutablePointer<UInt8>, count: Int
  ) {
    typealias V = Lanes
    let zero = V(repeating: 0)
    var c = 0
    while c + V.width <= count {
      var best = V(loading: base + offsets[0] + c)
      var index = V.index(0)
      for r in 1..<Swift.max(1, positions) {
        let v = V(loading: base + offsets[r] + c)
        let greater = V.greater(v, best)
        best = best.replacing(with: v, where: greater)
        index = V.replacing(index, with: V.index(r), where: greater)
      }
      let positive = V.greater(best, zero)
      zero.replacing(with: best, where: positive).store(to: y + c)
      V.store(routes: V.replacing(index, with: V.index(255), where: V.not(positive)), to: routes + c)
      c += V.width
    }
    while c < count {
      var best = base[offsets[0] + c], index = 0
      for r in 1..<Swift.max(1, positions) where base[offsets[r] + c] > best {
        best = base[offsets[r] + c]
        index = r
      }
      y[c] = best > 0 ? best : 0
      routes[c] = best > 0 ? UInt8(truncatingIfNeeded: index) : 255
      c += 1
    }
  }

  /// Max-pooling after ReLU for one window, in `Lanes`.
  @inlinable
  public static func reluPoolWindow(
    _ base: UnsafePointer<Self>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Self>, _ routes: UnsafeMutablePointer<UInt8>, count: Int
  ) {
    reluPoolWindowLanes(base, offsets: offsets, positions: positions, y, routes, count: count)
  }
}

extension Float {
  /// `p[j] = √p[j]` over `count` elements: 16 lanes at a time where the CPU has AVX-512
  /// (`dml_sqrt_f32_wide` in CGemm), else SSE's 4-lane `sqrtps` (`dml_sqrt_f32` in CSIMD); IEEE
  /// square roots either way, so the same values.
  @inlinable
  public static func squareRootInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
    if dml_sqrt_f32_wide(p, count) != 0 { return }
    dml_sqrt_f32(p, count)
  }
}

extension Double {
  /// `p[j] = √p[j]` over `count` elements, with SSE2's 2-lane `sqrtpd` (`dml_sqrt_f64` in CSIMD).
  @inlinable
  public static func squareRootInPlace(_ p: UnsafeMutablePointer<Double>, count: Int) {
    dml_sqrt_f64(p, count)
  }
}

/// Copies `count` elements; short runs (a pixel's few channels) avoid a `memmove` call.
@inlinable @inline(__always)
package func copyElements<T: DMLScalar>(
  _ dst: UnsafeMutablePointer<T>, _ src: UnsafePointer<T>, count: Int
) {
  if count < 16 {
    for i in 0..<count { dst[i] = src[i] }
  } else {
    dst.update(from: src, count: count)
  }
}

extension Matrix {
  /// Sets every row to `vector` (a broadcast copy). `vector.count` must equal `columns`.
  @inlinable
  public mutating func fillRows(with vector: UnsafeBufferPointer<Scalar>) {
    precondition(vector.count == columns, "fillRows: vector has \(vector.count), need \(columns)")
    let c = columns, r = rows
    withUnsafeMutableBufferPointer { p in
      for i in 0..<r { copyElements(p.baseAddress! + i * c, vector.baseAddress!, count: c) }
    }
  }
}

extension Float {
  /// `exp` of 8 lanes: Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6
  /// polynomial, then 2ⁿ built in the exponent bits). Rounding `x · log₂e` to an integer uses
  /// the 1.5 · 2²³ trick, which needs only SSE2. Lanes below −87.34 give 0, above 88.72 give
  /// +∞, and NaN stays NaN.
  @inlinable @inline(__always)
  package static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    // Two SSE-width halves: an 8-lane mask on a 4-lane target round-trips through general
    // registers (pack, shift, insert per lane), which cost more than the polynomial.
    SIMD8(lowHalf: exp4(x.lowHalf), highHalf: exp4(x.highHalf))
  }

  /// `exp8` on 4 lanes.
  @inlinable @inline(__always)
  static func exp4(_ x0: SIMD4<Float>) -> SIMD4<Float> {
    typealias V = SIMD4<Float>
    typealias I = SIMD4<Int32>
    let magic = V(repeating: 12_582_912)  // 1.5 · 2²³
    let low = V(repeating: -87.336_54), high = V(repeating: 88.0)
    // Lane masks come from sign bits (`negative(a − b)` is `a < b` for numbers), never from
    // SIMD comparisons, whose masks on a 4-lane target are built lane by lane in general
    // registers; and `clamped` or `replacing(with:where:)` become calls to generic min/max.
    let below = negative(x0 - low), above = negative(high - x0)
    let x = blend(blend(x0, low, where: below), high, where: above)
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    let r = (x - n * 0.693_359_375) + n * 2.121_944_4e-4
    var y = V(repeating: 1.987_569_15e-4)
    y = y * r + 1.398_199_950_7e-3
    y = y * r + 8.333_451_907_3e-3
    y = y * r + 4.166_579_589_4e-2
    y = y * r + 1.666_666_545_9e-1
    y = y * r + 5.000_000_120_1e-1
    y = y * (r * r) + r + 1
    // t's low mantissa bits hold n + 2²², so its bit pattern minus magic's is n.
    let bits = unsafeBitCast(t, to: I.self) &- unsafeBitCast(magic, to: I.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: V.self)
    var result = blend(y * scale, V(repeating: 0), where: below)
    result = blend(result, V(repeating: .infinity), where: negative(V(repeating: 88.722_83) - x0))
    // NaN: magnitude bits above +∞'s.
    let magnitude = unsafeBitCast(x0, to: I.self) & I(repeating: 0x7FFF_FFFF)
    return blend(result, x0, where: (I(repeating: 0x7F80_0000) &- magnitude) &>> 31)
  }

  /// All ones in the lanes whose sign bit is set, zero elsewhere.
  @inlinable @inline(__always)
  static func negative(_ v: SIMD4<Float>) -> SIMD4<Int32> {
    unsafeBitCast(v, to: SIMD4<Int32>.self) &>> 31
  }

  /// `where` lanes (all ones) from `b`, the others (zero) from `a`.
  @inlinable @inline(__always)
  static func blend(_ a: SIMD4<Float>, _ b: SIMD4<Float>, where m: SIMD4<Int32>) -> SIMD4<Float> {
    let ai = unsafeBitCast(a, to: SIMD4<Int32>.self), bi = unsafeBitCast(b, to: SIMD4<Int32>.self)
    return unsafeBitCast((ai & ~m) | (bi & m), to: SIMD4<Float>.self)
  }

  /// `p[j] = exp(p[j])` over `count` elements: 16 lanes at a time where the CPU has AVX-512,
  /// else 8 at a time with `exp8`; the same values either way.
  @inlinable
  public static func expInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
    if dml_exp_f32(p, count) != 0 { return }
    expInPlaceLanes(p, count: count)
  }

  /// `expInPlace` 8 lanes at a time with `exp8`, on any CPU.
  @inlinable
  public static func expInPlaceLanes(_ p: UnsafeMutablePointer<Float>, count: Int) {
    typealias V = SIMD8<Float>
    var j = 0
    while j + V.scalarCount <= count {
      let v = UnsafeRawPointer(p + j).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(p + j).storeBytes(of: exp8(v), as: V.self)
      j += V.scalarCount
    }
    if j < count {
      var tail = V(repeating: 0)
      for k in j..<count { tail[k - j] = p[k] }
      let e = exp8(tail)
      for k in j..<count { p[k] = e[k - j] }
    }
  }
}

extension Double {
  /// `p[j] = exp(p[j])` over `count` elements, through libm.
  @inlinable
  public static func expInPlace(_ p: UnsafeMutablePointer<Double>, count: Int) {
    for j in 0..<count { p[j] = Double.exp(p[j]) }
  }
}

extension Float {
  /// Max-pooling after ReLU for one window over `count` channels: AVX-512 where the CPU has it
  /// (the same values, 16 lanes at a time), else `reluPoolWindowLanes`.
  @inlinable
  public static func reluPoolWindow(
    _ base: UnsafePointer<Float>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Float>, _ routes: UnsafeMutablePointer<UInt8>, count: Int
  ) {
    if dml_relu_pool_window(base, offsets, positions, y, routes, count) != 0 { return }
    reluPoolWindowLanes(base, offsets: offsets, positions: positions, y, routes, count: count)
  }
}
