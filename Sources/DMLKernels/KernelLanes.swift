/// The lanes of a vector register, for the elementwise kernels (Kernels+SIMD.swift): each
/// operation a kernel uses, written on one concrete SIMD type.
///
/// The standard library's operations on `SIMD16<T>` for a generic `T` resolve to lane-by-lane
/// fallbacks that stay scalar even after specialisation, while those on the concrete
/// `SIMD16<Float>` and `SIMD8<Double>` compile to vector compares and blends. A kernel written
/// once over `KernelLanes` calls the concrete operations through these wrappers, which inline
/// away: the generated code is that of a kernel written on the concrete type.
public protocol KernelLanes: Sendable {
  /// The scalar of one lane.
  associatedtype Element
  /// A comparison's result, one truth value per lane.
  associatedtype Mask
  /// One integer per lane, as wide as a lane: pooling's window positions.
  associatedtype Index
  /// Lanes per vector.
  static var width: Int { get }
  /// Every lane `value`.
  init(repeating value: Element)
  /// `width` elements from `p` (any alignment).
  init(loading p: UnsafePointer<Element>)
  /// Writes the lanes to `p` (any alignment).
  func store(to p: UnsafeMutablePointer<Element>)
  /// Lane-wise sum.
  static func + (a: Self, b: Self) -> Self
  /// Lane-wise difference.
  static func - (a: Self, b: Self) -> Self
  /// Lane-wise product.
  static func * (a: Self, b: Self) -> Self
  /// Lane-wise quotient.
  static func / (a: Self, b: Self) -> Self
  /// The sum of the lanes.
  func sum() -> Element
  /// `a > b` per lane.
  static func greater(_ a: Self, _ b: Self) -> Mask
  /// `a < b` per lane.
  static func less(_ a: Self, _ b: Self) -> Mask
  /// `a == b` per lane.
  static func equal(_ a: Self, _ b: Self) -> Mask
  /// Both masks per lane.
  static func both(_ a: Mask, _ b: Mask) -> Mask
  /// The mask negated.
  static func not(_ a: Mask) -> Mask
  /// `other`'s lanes where `mask` holds, this vector's elsewhere.
  func replacing(with other: Self, where mask: Mask) -> Self
  /// Every lane `position`.
  static func index(_ position: Int) -> Index
  /// `other`'s lanes where `mask` holds, `index`'s elsewhere.
  static func replacing(_ index: Index, with other: Index, where mask: Mask) -> Index
  /// Writes the positions, truncated to bytes, to `p`.
  static func store(routes: Index, to p: UnsafeMutablePointer<UInt8>)
}

/// `SIMD16<Float>` as `KernelLanes`.
@frozen
public struct FloatLanes16: KernelLanes {
  /// The lanes' scalar.
  public typealias Element = Float
  /// Window positions, one per lane, as wide as a lane.
  public typealias Index = SIMD16<Int32>
  /// The vector.
  @usableFromInline var lanes: SIMD16<Float>
  /// Wraps `lanes`.
  @inlinable @inline(__always) init(_ lanes: SIMD16<Float>) { self.lanes = lanes }
  /// Lanes per vector.
  @inlinable @inline(__always) public static var width: Int { SIMD16<Float>.scalarCount }
  /// Every lane `value`.
  @inlinable @inline(__always) public init(repeating value: Float) { lanes = SIMD16<Float>(repeating: value) }
  /// The lanes at `p` (any alignment).
  @inlinable @inline(__always) public init(loading p: UnsafePointer<Float>) { lanes = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }
  /// Writes the lanes to `p` (any alignment).
  @inlinable @inline(__always) public func store(to p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: lanes, as: SIMD16<Float>.self) }
  /// Lane-wise sum.
  @inlinable @inline(__always) public static func + (a: Self, b: Self) -> Self { Self(a.lanes + b.lanes) }
  /// Lane-wise difference.
  @inlinable @inline(__always) public static func - (a: Self, b: Self) -> Self { Self(a.lanes - b.lanes) }
  /// Lane-wise product.
  @inlinable @inline(__always) public static func * (a: Self, b: Self) -> Self { Self(a.lanes * b.lanes) }
  /// Lane-wise quotient.
  @inlinable @inline(__always) public static func / (a: Self, b: Self) -> Self { Self(a.lanes / b.lanes) }
  /// The sum of the lanes.
  @inlinable @inline(__always) public func sum() -> Float { lanes.sum() }
  /// `a > b` per lane.
  @inlinable @inline(__always) public static func greater(_ a: Self, _ b: Self) -> SIMDMask<SIMD16<Int32>> { a.lanes .> b.lanes }
  /// `a < b` per lane.
  @inlinable @inline(__always) public static func less(_ a: Self, _ b: Self) -> SIMDMask<SIMD16<Int32>> { a.lanes .< b.lanes }
  /// `a == b` per lane.
  @inlinable @inline(__always) public static func equal(_ a: Self, _ b: Self) -> SIMDMask<SIMD16<Int32>> { a.lanes .== b.lanes }
  /// Both masks per lane.
  @inlinable @inline(__always) public static func both(_ a: SIMDMask<SIMD16<Int32>>, _ b: SIMDMask<SIMD16<Int32>>) -> SIMDMask<SIMD16<Int32>> { a .& b }
  /// The mask negated.
  @inlinable @inline(__always) public static func not(_ a: SIMDMask<SIMD16<Int32>>) -> SIMDMask<SIMD16<Int32>> { .!a }
  /// `other`'s lanes where `mask` holds.
  @inlinable @inline(__always) public func replacing(with other: Self, where mask: SIMDMask<SIMD16<Int32>>) -> Self {
    Self(lanes.replacing(with: other.lanes, where: mask))
  }
  /// Every lane `position`.
  @inlinable @inline(__always) public static func index(_ position: Int) -> SIMD16<Int32> { SIMD16<Int32>(repeating: Int32(position)) }
  /// `other`'s positions where `mask` holds.
  @inlinable @inline(__always) public static func replacing(_ index: SIMD16<Int32>, with other: SIMD16<Int32>, where mask: SIMDMask<SIMD16<Int32>>) -> SIMD16<Int32> {
    index.replacing(with: other, where: mask)
  }
  /// Writes the positions, truncated to bytes, to `p`.
  @inlinable @inline(__always) public static func store(routes: SIMD16<Int32>, to p: UnsafeMutablePointer<UInt8>) {
    UnsafeMutableRawPointer(p).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: routes), as: SIMD16<UInt8>.self)
  }
}

/// `SIMD8<Double>` as `KernelLanes`.
@frozen
public struct DoubleLanes8: KernelLanes {
  /// The lanes' scalar.
  public typealias Element = Double
  /// Window positions, one per lane, as wide as a lane.
  public typealias Index = SIMD8<Int64>
  /// The vector.
  @usableFromInline var lanes: SIMD8<Double>
  /// Wraps `lanes`.
  @inlinable @inline(__always) init(_ lanes: SIMD8<Double>) { self.lanes = lanes }
  /// Lanes per vector.
  @inlinable @inline(__always) public static var width: Int { SIMD8<Double>.scalarCount }
  /// Every lane `value`.
  @inlinable @inline(__always) public init(repeating value: Double) { lanes = SIMD8<Double>(repeating: value) }
  /// The lanes at `p` (any alignment).
  @inlinable @inline(__always) public init(loading p: UnsafePointer<Double>) { lanes = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Double>.self) }
  /// Writes the lanes to `p` (any alignment).
  @inlinable @inline(__always) public func store(to p: UnsafeMutablePointer<Double>) { UnsafeMutableRawPointer(p).storeBytes(of: lanes, as: SIMD8<Double>.self) }
  /// Lane-wise sum.
  @inlinable @inline(__always) public static func + (a: Self, b: Self) -> Self { Self(a.lanes + b.lanes) }
  /// Lane-wise difference.
  @inlinable @inline(__always) public static func - (a: Self, b: Self) -> Self { Self(a.lanes - b.lanes) }
  /// Lane-wise product.
  @inlinable @inline(__always) public static func * (a: Self, b: Self) -> Self { Self(a.lanes * b.lanes) }
  /// Lane-wise quotient.
  @inlinable @inline(__always) public static func / (a: Self, b: Self) -> Self { Self(a.lanes / b.lanes) }
  /// The sum of the lanes.
  @inlinable @inline(__always) public func sum() -> Double { lanes.sum() }
  /// `a > b` per lane.
  @inlinable @inline(__always) public static func greater(_ a: Self, _ b: Self) -> SIMDMask<SIMD8<Int64>> { a.lanes .> b.lanes }
  /// `a < b` per lane.
  @inlinable @inline(__always) public static func less(_ a: Self, _ b: Self) -> SIMDMask<SIMD8<Int64>> { a.lanes .< b.lanes }
  /// `a == b` per lane.
  @inlinable @inline(__always) public static func equal(_ a: Self, _ b: Self) -> SIMDMask<SIMD8<Int64>> { a.lanes .== b.lanes }
  /// Both masks per lane.
  @inlinable @inline(__always) public static func both(_ a: SIMDMask<SIMD8<Int64>>, _ b: SIMDMask<SIMD8<Int64>>) -> SIMDMask<SIMD8<Int64>> { a .& b }
  /// The mask negated.
  @inlinable @inline(__always) public static func not(_ a: SIMDMask<SIMD8<Int64>>) -> SIMDMask<SIMD8<Int64>> { .!a }
  /// `other`'s lanes where `mask` holds.
  @inlinable @inline(__always) public func replacing(with other: Self, where mask: SIMDMask<SIMD8<Int64>>) -> Self {
    Self(lanes.replacing(with: other.lanes, where: mask))
  }
  /// Every lane `position`.
  @inlinable @inline(__always) public static func index(_ position: Int) -> SIMD8<Int64> { SIMD8<Int64>(repeating: Int64(position)) }
  /// `other`'s positions where `mask` holds.
  @inlinable @inline(__always) public static func replacing(_ index: SIMD8<Int64>, with other: SIMD8<Int64>, where mask: SIMDMask<SIMD8<Int64>>) -> SIMD8<Int64> {
    index.replacing(with: other, where: mask)
  }
  /// Writes the positions, truncated to bytes, to `p`.
  @inlinable @inline(__always) public static func store(routes: SIMD8<Int64>, to p: UnsafeMutablePointer<UInt8>) {
    UnsafeMutableRawPointer(p).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: routes), as: SIMD8<UInt8>.self)
  }
}
