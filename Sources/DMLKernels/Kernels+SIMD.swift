import CGemm
import CSIMD

/// Elementwise kernels that the compiler does not vectorise on its own (branchy selects).
///
/// They are `DMLScalar` requirements with a concrete body per type. The standard library's vector
/// operations on `SIMD16<T>` for a generic `T` resolve to lane-by-lane fallbacks that stay scalar
/// even after specialisation, while those on the concrete `SIMD16<Float>` and `SIMD8<Double>`
/// compile to vector compares and blends. The two bodies are the same text with the type changed.

/// `y = max(x, 0)` over `count` elements. (This select form vectorises when generic.)
@inlinable
public func reluForward<T: DMLScalar>(
  _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int
) {
  for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
}

/// `gx = x > 0 ? g : 0` over `count` elements.
@inlinable
public func reluBackward<T: DMLScalar>(
  _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, _ gx: UnsafeMutablePointer<T>, count: Int
) {
  T.reluBackward(x, g, gx, count: count)
}

/// `y = max(y, x)` over `count` elements (NaN in `x` is ignored).
@inlinable
public func maximumInPlace<T: DMLScalar>(
  _ y: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, count: Int
) {
  T.maximumInPlace(y, x, count: count)
}

extension Float {
  /// `Σ p[k]·q[k]` over `count` elements, with `SIMD16<Float>` partial sums.
  @inlinable
  public static func dot(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, count: Int) -> Float {
    typealias V = SIMD16<Float>
    var acc = V(repeating: 0)
    var j = 0
    while j + V.scalarCount <= count {
      acc += UnsafeRawPointer(p + j).loadUnaligned(as: V.self) * UnsafeRawPointer(q + j).loadUnaligned(as: V.self)
      j += V.scalarCount
    }
    var s = acc.sum()
    while j < count {
      s += p[j] * q[j]
      j += 1
    }
    return s
  }
}

extension Float {
  /// `gx = x > 0 ? g : 0` over `count` elements, in `SIMD16<Float>` lanes.
  @inlinable
  public static func reluBackward(
    _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, count: Int
  ) {
    typealias V = SIMD16<Float>
    let zero = V(repeating: 0)
    var i = 0
    while i + V.scalarCount <= count {
      let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(gx + i).storeBytes(
        of: zero.replacing(with: gv, where: xv .> zero), as: V.self)
      i += V.scalarCount
    }
    while i < count {
      gx[i] = x[i] > 0 ? g[i] : 0
      i += 1
    }
  }

  /// `y = max(y, x)` over `count` elements, in `SIMD16<Float>` lanes (NaN in `x` is ignored).
  @inlinable
  public static func maximumInPlace(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int
  ) {
    typealias V = SIMD16<Float>
    var i = 0
    while i + V.scalarCount <= count {
      let a = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
      let b = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(y + i).storeBytes(of: a.replacing(with: b, where: b .> a), as: V.self)
      i += V.scalarCount
    }
    while i < count {
      if x[i] > y[i] { y[i] = x[i] }
      i += 1
    }
  }
}

extension Double {
  /// `Σ p[k]·q[k]` over `count` elements, with `SIMD8<Double>` partial sums.
  @inlinable
  public static func dot(_ p: UnsafePointer<Double>, _ q: UnsafePointer<Double>, count: Int) -> Double {
    typealias V = SIMD8<Double>
    var acc = V(repeating: 0)
    var j = 0
    while j + V.scalarCount <= count {
      acc += UnsafeRawPointer(p + j).loadUnaligned(as: V.self) * UnsafeRawPointer(q + j).loadUnaligned(as: V.self)
      j += V.scalarCount
    }
    var s = acc.sum()
    while j < count {
      s += p[j] * q[j]
      j += 1
    }
    return s
  }
}

extension Double {
  /// `gx = x > 0 ? g : 0` over `count` elements, in `SIMD8<Double>` lanes.
  @inlinable
  public static func reluBackward(
    _ x: UnsafePointer<Double>, _ g: UnsafePointer<Double>, _ gx: UnsafeMutablePointer<Double>, count: Int
  ) {
    typealias V = SIMD8<Double>
    let zero = V(repeating: 0)
    var i = 0
    while i + V.scalarCount <= count {
      let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(gx + i).storeBytes(
        of: zero.replacing(with: gv, where: xv .> zero), as: V.self)
      i += V.scalarCount
    }
    while i < count {
      gx[i] = x[i] > 0 ? g[i] : 0
      i += 1
    }
  }

  /// `y = max(y, x)` over `count` elements, in `SIMD8<Double>` lanes (NaN in `x` is ignored).
  @inlinable
  public static func maximumInPlace(
    _ y: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>, count: Int
  ) {
    typealias V = SIMD8<Double>
    var i = 0
    while i + V.scalarCount <= count {
      let a = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
      let b = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(y + i).storeBytes(of: a.replacing(with: b, where: b .> a), as: V.self)
      i += V.scalarCount
    }
    while i < count {
      if x[i] > y[i] { y[i] = x[i] }
      i += 1
    }
  }
}


extension Float {
  /// `row[j] = max(querySquare + referenceSquares[j] − 2 row[j], 0)`: squared distances from
  /// dot products, in `SIMD16<Float>` lanes.
  @inlinable
  public static func squaredDistanceRow(
    _ row: UnsafeMutablePointer<Float>, querySquare: Float, referenceSquares: UnsafePointer<Float>, count: Int
  ) {
    typealias V = SIMD16<Float>
    let q = V(repeating: querySquare), zero = V(repeating: 0)
    var j = 0
    while j + V.scalarCount <= count {
      let dot = UnsafeRawPointer(row + j).loadUnaligned(as: V.self)
      let r = UnsafeRawPointer(referenceSquares + j).loadUnaligned(as: V.self)
      let d2 = q + r - 2 * dot
      UnsafeMutableRawPointer(row + j).storeBytes(of: d2.replacing(with: zero, where: d2 .< zero), as: V.self)
      j += V.scalarCount
    }
    while j < count {
      row[j] = Swift.max(querySquare + referenceSquares[j] - 2 * row[j], 0)
      j += 1
    }
  }

  /// `p[j] = √p[j]` over `count` elements, with SSE's 4-lane `sqrtps` (`dml_sqrt_f32` in CSIMD).
  @inlinable
  public static func squareRootInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
    dml_sqrt_f32(p, count)
  }

  /// `out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0`, in `SIMD16<Float>` lanes.
  @inlinable
  public static func divideWherePositive(
    _ numerator: UnsafePointer<Float>, _ denominator: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
    count: Int
  ) {
    typealias V = SIMD16<Float>
    let zero = V(repeating: 0), one = V(repeating: 1)
    var j = 0
    while j + V.scalarCount <= count {
      let g = UnsafeRawPointer(numerator + j).loadUnaligned(as: V.self)
      let d = UnsafeRawPointer(denominator + j).loadUnaligned(as: V.self)
      let positive = d .> zero
      let q = g / d.replacing(with: one, where: .!positive)
      UnsafeMutableRawPointer(out + j).storeBytes(of: zero.replacing(with: q, where: positive), as: V.self)
      j += V.scalarCount
    }
    while j < count {
      out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0
      j += 1
    }
  }
}

extension Double {
  /// `row[j] = max(querySquare + referenceSquares[j] − 2 row[j], 0)`: squared distances from
  /// dot products, in `SIMD8<Double>` lanes.
  @inlinable
  public static func squaredDistanceRow(
    _ row: UnsafeMutablePointer<Double>, querySquare: Double, referenceSquares: UnsafePointer<Double>, count: Int
  ) {
    typealias V = SIMD8<Double>
    let q = V(repeating: querySquare), zero = V(repeating: 0)
    var j = 0
    while j + V.scalarCount <= count {
      let dot = UnsafeRawPointer(row + j).loadUnaligned(as: V.self)
      let r = UnsafeRawPointer(referenceSquares + j).loadUnaligned(as: V.self)
      let d2 = q + r - 2 * dot
      UnsafeMutableRawPointer(row + j).storeBytes(of: d2.replacing(with: zero, where: d2 .< zero), as: V.self)
      j += V.scalarCount
    }
    while j < count {
      row[j] = Swift.max(querySquare + referenceSquares[j] - 2 * row[j], 0)
      j += 1
    }
  }

  /// `p[j] = √p[j]` over `count` elements, with SSE2's 2-lane `sqrtpd` (`dml_sqrt_f64` in CSIMD).
  @inlinable
  public static func squareRootInPlace(_ p: UnsafeMutablePointer<Double>, count: Int) {
    dml_sqrt_f64(p, count)
  }

  /// `out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0`, in `SIMD8<Double>` lanes.
  @inlinable
  public static func divideWherePositive(
    _ numerator: UnsafePointer<Double>, _ denominator: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>,
    count: Int
  ) {
    typealias V = SIMD8<Double>
    let zero = V(repeating: 0), one = V(repeating: 1)
    var j = 0
    while j + V.scalarCount <= count {
      let g = UnsafeRawPointer(numerator + j).loadUnaligned(as: V.self)
      let d = UnsafeRawPointer(denominator + j).loadUnaligned(as: V.self)
      let positive = d .> zero
      let q = g / d.replacing(with: one, where: .!positive)
      UnsafeMutableRawPointer(out + j).storeBytes(of: zero.replacing(with: q, where: positive), as: V.self)
      j += V.scalarCount
    }
    while j < count {
      out[j] = denominator[j] > 0 ? numerator[j] / denominator[j] : 0
      j += 1
    }
  }
}

extension Float {
  /// Max-pooling's gradient routing over `count` channels, in `SIMD16<Float>` lanes: where
  /// `x == y` and `done` is 0, adds `g` to `gx` and sets `done` to 1.
  @inlinable
  public static func routeMaximum(
    _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
    _ gx: UnsafeMutablePointer<Float>, _ done: UnsafeMutablePointer<Float>, count: Int
  ) {
    typealias V = SIMD16<Float>
    let zero = V(repeating: 0), one = V(repeating: 1)
    var i = 0
    while i + V.scalarCount <= count {
      let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
      let dv = UnsafeRawPointer(done + i).loadUnaligned(as: V.self)
      let m = (xv .== yv) .& (dv .== zero)
      let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
      let acc = UnsafeRawPointer(gx + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(gx + i).storeBytes(of: acc + zero.replacing(with: gv, where: m), as: V.self)
      UnsafeMutableRawPointer(done + i).storeBytes(of: dv.replacing(with: one, where: m), as: V.self)
      i += V.scalarCount
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

extension Double {
  /// Max-pooling's gradient routing over `count` channels, in `SIMD8<Double>` lanes: where
  /// `x == y` and `done` is 0, adds `g` to `gx` and sets `done` to 1.
  @inlinable
  public static func routeMaximum(
    _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ g: UnsafePointer<Double>,
    _ gx: UnsafeMutablePointer<Double>, _ done: UnsafeMutablePointer<Double>, count: Int
  ) {
    typealias V = SIMD8<Double>
    let zero = V(repeating: 0), one = V(repeating: 1)
    var i = 0
    while i + V.scalarCount <= count {
      let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
      let dv = UnsafeRawPointer(done + i).loadUnaligned(as: V.self)
      let m = (xv .== yv) .& (dv .== zero)
      let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
      let acc = UnsafeRawPointer(gx + i).loadUnaligned(as: V.self)
      UnsafeMutableRawPointer(gx + i).storeBytes(of: acc + zero.replacing(with: gv, where: m), as: V.self)
      UnsafeMutableRawPointer(done + i).storeBytes(of: dv.replacing(with: one, where: m), as: V.self)
      i += V.scalarCount
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

/// Copies `count` elements; short runs (a pixel's few channels) avoid a `memmove` call.
@inlinable @inline(__always)
public func copyElements<T: DMLScalar>(
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
  public static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
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

  /// `p[j] = exp(p[j])` over `count` elements, 8 lanes at a time with `exp8`.
  @inlinable
  public static func expInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
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
  /// Max-pooling after ReLU for one window over `count` channels, in `SIMD8<Float>` lanes with
  /// `SIMD8<Int32>` positions: the first position of a tie wins, as in `routeMaximum`.
  @inlinable
  public static func reluPoolWindow(
    _ base: UnsafePointer<Float>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Float>, _ routes: UnsafeMutablePointer<UInt8>, count: Int
  ) {
    // AVX-512 where the CPU has it (the same values, 16 lanes at a time).
    if dml_relu_pool_window(base, offsets, positions, y, routes, count) != 0 { return }
    typealias V = SIMD8<Float>
    typealias I = SIMD8<Int32>
    let zero = V(repeating: 0)
    var c = 0
    while c + V.scalarCount <= count {
      var best = UnsafeRawPointer(base + offsets[0] + c).loadUnaligned(as: V.self)
      var index = I(repeating: 0)
      for r in 1..<Swift.max(1, positions) {
        let v = UnsafeRawPointer(base + offsets[r] + c).loadUnaligned(as: V.self)
        let greater = v .> best
        best.replace(with: v, where: greater)
        index.replace(with: I(repeating: Int32(r)), where: greater)
      }
      let positive = best .> zero
      UnsafeMutableRawPointer(y + c).storeBytes(of: zero.replacing(with: best, where: positive), as: V.self)
      index.replace(with: I(repeating: 255), where: .!positive)
      UnsafeMutableRawPointer(routes + c).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: index), as: SIMD8<UInt8>.self)
      c += V.scalarCount
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
}

extension Double {
  /// Max-pooling after ReLU for one window over `count` channels, in `SIMD8<Double>` lanes with
  /// `SIMD8<Int64>` positions: the first position of a tie wins, as in `routeMaximum`.
  @inlinable
  public static func reluPoolWindow(
    _ base: UnsafePointer<Double>, offsets: UnsafePointer<Int>, positions: Int,
    _ y: UnsafeMutablePointer<Double>, _ routes: UnsafeMutablePointer<UInt8>, count: Int
  ) {
    typealias V = SIMD8<Double>
    typealias I = SIMD8<Int64>
    let zero = V(repeating: 0)
    var c = 0
    while c + V.scalarCount <= count {
      var best = UnsafeRawPointer(base + offsets[0] + c).loadUnaligned(as: V.self)
      var index = I(repeating: 0)
      for r in 1..<Swift.max(1, positions) {
        let v = UnsafeRawPointer(base + offsets[r] + c).loadUnaligned(as: V.self)
        let greater = v .> best
        best.replace(with: v, where: greater)
        index.replace(with: I(repeating: Int64(r)), where: greater)
      }
      let positive = best .> zero
      UnsafeMutableRawPointer(y + c).storeBytes(of: zero.replacing(with: best, where: positive), as: V.self)
      index.replace(with: I(repeating: 255), where: .!positive)
      UnsafeMutableRawPointer(routes + c).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: index), as: SIMD8<UInt8>.self)
      c += V.scalarCount
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
}

