import RealModule

/// A seeded, splittable pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// The same seed gives the same stream on every machine. `split()` derives an independent child
/// stream, so each component (initialiser, sampler, dropout) gets its own generator and adding
/// one component does not shift the numbers another one sees.
@frozen
public struct RandomSource: RandomNumberGenerator, Sendable, Codable, Equatable, Hashable {
  @usableFromInline internal var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

  /// A generator whose whole stream is determined by `seed`.
  @inlinable
  public init(seed: UInt64) {
    var sm = seed
    s0 = RandomSource.splitMix(&sm)
    s1 = RandomSource.splitMix(&sm)
    s2 = RandomSource.splitMix(&sm)
    s3 = RandomSource.splitMix(&sm)
  }

  /// The generator's four words of state, for checkpoints.
  public var state: [UInt64] { [s0, s1, s2, s3] }

  /// A generator continuing from a saved `state` (four words, not all zero).
  public init?(state: [UInt64]) {
    guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
    (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
  }

  @inlinable
  static func splitMix(_ state: inout UInt64) -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  @inlinable
  static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  /// The next 64 random bits.
  @inlinable
  public mutating func next() -> UInt64 {
    let result = RandomSource.rotl(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = RandomSource.rotl(s3, 45)
    return result
  }

  /// A new, independent generator; this one advances by one draw.
  @inlinable
  public mutating func split() -> RandomSource {
    RandomSource(seed: next() ^ 0x5851_F42D_4C95_7F2D)
  }

  /// A child generator for the named stream, derived without advancing this one.
  @inlinable
  public func derived(stream: UInt64) -> RandomSource {
    var sm = s0 ^ RandomSource.rotl(s1, 13) ^ RandomSource.rotl(s2, 29) ^ RandomSource.rotl(s3, 47)
    sm ^= stream &* 0xD6E8_FEB8_6659_FD93
    return RandomSource(seed: RandomSource.splitMix(&sm))
  }

  /// A uniform value in `[0, 1)` with the full precision of `T`'s significand (up to 53 bits).
  @inlinable
  public mutating func uniform<T: DMLScalar>(_: T.Type = T.self) -> T {
    let bits = min(T.significandBitCount + 1, 53)
    return T(next() >> UInt64(64 - bits)) / T(UInt64(1) << UInt64(bits))
  }

  /// A standard normal value (Box–Muller; two uniforms per value, no cached state).
  @inlinable
  public mutating func normal<T: DMLScalar>(_: T.Type = T.self) -> T {
    let u1 = 1 - uniform(Double.self)  // (0, 1]
    let u2 = uniform(Double.self)
    let r = (-2 * Double.log(u1)).squareRoot()
    return T(r * Double.cos(2 * Double.pi * u2))
  }

  /// A uniform integer in `0..<upperBound`, without modulo bias.
  @inlinable
  public mutating func index(below upperBound: Int) -> Int {
    precondition(upperBound > 0, "index(below:) needs a positive bound")
    return Int(next(upperBound: UInt64(upperBound)))
  }

  /// Shuffles `array` in place (Fisher–Yates), reproducibly.
  @inlinable
  public mutating func shuffle<E>(_ array: inout [E]) {
    guard array.count > 1 else { return }
    for i in stride(from: array.count - 1, to: 0, by: -1) {
      let j = index(below: i + 1)
      if i != j { array.swapAt(i, j) }
    }
  }

  /// A random permutation of `0..<n`.
  @inlinable
  public mutating func permutation(_ n: Int) -> [Int] {
    var p = Array(0..<n)
    shuffle(&p)
    return p
  }
}
