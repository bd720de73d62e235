/// A layer whose parameters are named in the scope `name` wherever it stands, as a PyTorch
/// module's attribute: `Named("conv1", conv)` names its weight `conv1.weight` (and, inside a block
/// that is element 0 of `layer1`, `layer1.0.conv1.weight`), instead of by its place in a chain.
public struct Named<Wrapped: Layer>: Layer {
  /// The element type, the wrapped layer's.
  public typealias Scalar = Wrapped.Scalar
  /// The scope of the wrapped layer's parameters.
  public let name: String
  /// The layer.
  public var wrapped: Wrapped

  /// `layer`, its parameters named in the scope `name`.
  public init(_ name: String, _ layer: Wrapped) {
    self.name = name
    wrapped = layer
  }

  public func outputFeatures(forInput n: Int) -> Int { wrapped.outputFeatures(forInput: n) }

  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    wrapped.forward(input, into: &output, mode: mode, compute: compute)
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    wrapped.backward(
      input: input, output: output, outputGradient: outputGradient, inputGradient: &inputGradient, propagate: propagate, compute: compute)
  }

  /// Visits the wrapped layer's parameters in the scope `name`.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.enterScope(name)
    wrapped.visitParameters(&visitor)
    visitor.leaveScope()
  }

  /// The scope is the name, whatever the place in an enclosing sequence.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V, asElement index: Int) where V.Scalar == Scalar {
    visitParameters(&visitor)
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) { wrapped.visitRandomSources(visit) }
}

/// ResNet's residual block (He et al. 2016, torchvision's `BasicBlock` and `Bottleneck`):
/// `ReLU(body(x) + shortcut(x))`, the shortcut being the identity, or a projection (1×1 strided
/// convolution and BatchNorm, torchvision's `downsample`) where the body changes the shape. The
/// body's parameters are named as its own layers name them (`conv1`, `bn1`, …), the projection's
/// `downsample.0` and `downsample.1`.
public struct ResidualBlock<Body: Layer, Shortcut: Layer>: Layer where Body.Scalar == Shortcut.Scalar {
  /// The element type.
  public typealias Scalar = Body.Scalar
  /// The residual path.
  public var body: Body
  /// The projection of the input, when the body changes its shape (`nil`: the identity).
  public var shortcut: Shortcut?
  @usableFromInline var bodyOutput = Matrix<Scalar>()
  @usableFromInline var shortcutOutput = Matrix<Scalar>()
  @usableFromInline var sumGradient = Matrix<Scalar>()
  @usableFromInline var shortcutGradient = Matrix<Scalar>()

  /// A block of `body` with the projection `shortcut` (or the identity).
  public init(body: Body, shortcut: Shortcut?) {
    self.body = body
    self.shortcut = shortcut
  }

  public func outputFeatures(forInput n: Int) -> Int {
    let out = body.outputFeatures(forInput: n)
    precondition((shortcut?.outputFeatures(forInput: n) ?? n) == out, "ResidualBlock: the shortcut and the body disagree")
    return out
  }

  /// `max(body(x) + shortcut(x), 0)`: the sum and the rectifier in one pass, split over rows.
  @inlinable
  public mutating func forward(_ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext) {
    body.forward(input, into: &bodyOutput, mode: mode, compute: compute)
    if shortcut != nil { shortcut!.forward(input, into: &shortcutOutput, mode: mode, compute: compute) }
    precondition(
      bodyOutput.columns == (shortcut != nil ? shortcutOutput.columns : input.columns),
      "ResidualBlock: the body gives \(bodyOutput.columns) features, the shortcut \(shortcut != nil ? shortcutOutput.columns : input.columns)")
    output.resize(rows: bodyOutput.rows, columns: bodyOutput.columns)
    let f = bodyOutput.columns, rows = bodyOutput.rows
    let chunks = compute.chunkCount(rows: rows, workPerRow: f)
    let skip = shortcut != nil ? shortcutOutput : input
    bodyOutput.withUnsafeBufferPointer { b in
      skip.withUnsafeBufferPointer { s in
        output.withUnsafeMutableBufferPointer { y in
          BatchParallelism.forEachChunk(rows: rows, chunks: chunks) { _, r in
            let o = r.lowerBound * f
            addThenRectify(b.baseAddress! + o, s.baseAddress! + o, y.baseAddress! + o, count: r.count * f)
          }
        }
      }
    }
  }

  /// Through the rectifier (where the output is positive), then into the body and the shortcut;
  /// the input gradient is the sum of theirs (the identity's is the gradient itself).
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let f = outputGradient.columns, rows = outputGradient.rows
    let chunks = compute.chunkCount(rows: rows, workPerRow: f)
    sumGradient.resize(rows: rows, columns: f)
    output.withUnsafeBufferPointer { y in
      outputGradient.withUnsafeBufferPointer { g in
        sumGradient.withUnsafeMutableBufferPointer { s in
          BatchParallelism.forEachChunk(rows: rows, chunks: chunks) { _, r in
            let o = r.lowerBound * f
            reluBackward(y.baseAddress! + o, g.baseAddress! + o, s.baseAddress! + o, count: r.count * f)
          }
        }
      }
    }
    body.backward(
      input: input, output: bodyOutput, outputGradient: sumGradient, inputGradient: &inputGradient, propagate: propagate, compute: compute)
    if shortcut != nil {
      shortcut!.backward(
        input: input, output: shortcutOutput, outputGradient: sumGradient, inputGradient: &shortcutGradient, propagate: propagate,
        compute: compute)
    }
    guard propagate else { return }
    let other = shortcut != nil ? shortcutGradient : sumGradient
    let n = inputGradient.columns, inputRows = inputGradient.rows
    precondition(other.count == inputGradient.count, "ResidualBlock: the shortcut's gradient has another shape than the body's")
    let inputChunks = compute.chunkCount(rows: inputRows, workPerRow: n)
    other.withUnsafeBufferPointer { a in
      inputGradient.withUnsafeMutableBufferPointer { gx in
        BatchParallelism.forEachChunk(rows: inputRows, chunks: inputChunks) { _, r in
          let o = r.lowerBound * n
          addInPlace(gx.baseAddress! + o, a.baseAddress! + o, count: r.count * n)
        }
      }
    }
  }

  /// The body's parameters as it names them, then the projection's.
  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    body.visitParameters(&visitor)
    if shortcut != nil { shortcut!.visitParameters(&visitor) }
  }

  public mutating func visitRandomSources(_ visit: (inout RandomSource) -> Void) {
    body.visitRandomSources(visit)
    if shortcut != nil { shortcut!.visitRandomSources(visit) }
  }
}

/// A 3×3 or 1×1 convolution without bias, then BatchNorm: ResNet's unit, named `convN`, `bnN`.
public typealias ConvBN<T: DMLScalar> = Chain<Named<Conv2D<T>>, Named<BatchNorm<T>>>

/// The projection of a residual block: `downsample.0` (1×1 strided convolution) and
/// `downsample.1` (BatchNorm).
public typealias Downsample<T: DMLScalar> = Named<Chain<Conv2D<T>, BatchNorm<T>>>

/// torchvision's `BasicBlock`: conv 3×3 (stride) → BN → ReLU → conv 3×3 → BN.
public typealias BasicBlock<T: DMLScalar> = ResidualBlock<Chain<Chain<ConvBN<T>, ReLU<T>>, ConvBN<T>>, Downsample<T>>

/// torchvision's `Bottleneck` (ResNet v1.5, the stride in the 3×3 convolution): conv 1×1 → BN →
/// ReLU → conv 3×3 (stride) → BN → ReLU → conv 1×1 (×4 channels) → BN.
public typealias Bottleneck<T: DMLScalar> = ResidualBlock<
  Chain<Chain<Chain<ConvBN<T>, ReLU<T>>, Chain<ConvBN<T>, ReLU<T>>>, ConvBN<T>>, Downsample<T>
>

/// ResNet's stem: conv 7×7 stride 2 → BN → ReLU → max pool 3×3 stride 2 (`conv1`, `bn1`).
public typealias ResNetStem<T: DMLScalar> = Chain<Chain<ConvBN<T>, ReLU<T>>, MaxPool2D<T>>

/// The embedding head: `fc` (Linear), or with BatchNorm `fc.0` (Linear) and `fc.1` (BatchNorm,
/// PyTorch's `nn.Sequential(nn.Linear, nn.BatchNorm1d)` in place of torchvision's `fc`), then
/// optionally L2 normalisation.
public typealias ResNetHead<T: DMLScalar> = Chain<Named<Linear<T>>, Chain<Optionally<Named<BatchNorm<T>>>, Optionally<L2Normalize<T>>>>

/// ResNet's layers: the stem, `layer1` to `layer4` (stacks of blocks), global average pooling,
/// then the embedding head.
public typealias ResNetBody<Block: Layer> = Chain<
  Chain<ResNetStem<Block.Scalar>, Chain<Chain<Named<Stack<Block>>, Named<Stack<Block>>>, Chain<Named<Stack<Block>>, Named<Stack<Block>>>>>,
  Chain<GlobalAvgPool<Block.Scalar>, ResNetHead<Block.Scalar>>
>

/// The ResNet variants of torchvision, by depth.
public enum ResNetDepth: Int, Sendable, CaseIterable {
  /// ResNet-18: basic blocks, 2-2-2-2.
  case resnet18 = 18
  /// ResNet-34: basic blocks, 3-4-6-3.
  case resnet34 = 34
  /// ResNet-50: bottleneck blocks, 3-4-6-3.
  case resnet50 = 50

  /// Blocks in `layer1` … `layer4`.
  public var blocks: [Int] {
    switch self {
    case .resnet18: [2, 2, 2, 2]
    case .resnet34: [3, 4, 6, 3]
    case .resnet50: [3, 4, 6, 3]
    }
  }

  /// Whether the blocks are bottlenecks (4× wider outputs).
  public var isBottleneck: Bool { self == .resnet50 }

  /// Channels after global pooling: 512 for basic blocks, 2,048 for bottlenecks.
  public var features: Int { isBottleneck ? 2048 : 512 }
}

/// Builds ResNet layers with torchvision's shapes and parameter names.
public enum ResNetBuilder {
  static func batchNorm<T: DMLScalar>(_ channels: Int, frozen: Bool) -> BatchNorm<T> {
    var bn = BatchNorm<T>(channels: channels)
    bn.frozen = frozen
    return bn
  }

  static func convBN<T: DMLScalar>(
    _ index: Int, input: ImageShape, out: Int, kernel: Int, stride: Int, frozen: Bool, rng: inout RandomSource
  ) -> (ConvBN<T>, ImageShape) {
    let conv = Conv2D<T>(input: input, outChannels: out, kernel: kernel, stride: stride, padding: kernel / 2, bias: false, rng: &rng)
    return (Chain(Named("conv\(index)", conv), Named("bn\(index)", batchNorm(out, frozen: frozen))), conv.outputShape)
  }

  static func downsample<T: DMLScalar>(input: ImageShape, out: Int, stride: Int, frozen: Bool, rng: inout RandomSource) -> Downsample<T>? {
    guard stride != 1 || input.channels != out else { return nil }
    let conv = Conv2D<T>(input: input, outChannels: out, kernel: 1, stride: stride, bias: false, rng: &rng)
    return Named("downsample", Chain(conv, batchNorm(out, frozen: frozen)))
  }

  /// A `BasicBlock` of `planes` channels on `input`, its first convolution strided by `stride`
  /// (`frozen`: BatchNorm statistics frozen).
  public static func basicBlock<T: DMLScalar>(
    input: ImageShape, planes: Int, stride: Int, frozen: Bool = false, rng: inout RandomSource
  ) -> (BasicBlock<T>, ImageShape) {
    let (a, s1) = convBN(1, input: input, out: planes, kernel: 3, stride: stride, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let (b, s2) = convBN(2, input: s1, out: planes, kernel: 3, stride: 1, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let shortcut: Downsample<T>? = downsample(input: input, out: planes, stride: stride, frozen: frozen, rng: &rng)
    return (ResidualBlock(body: Chain(Chain(a, ReLU()), b), shortcut: shortcut), s2)
  }

  /// A `Bottleneck` of `planes` (4 × `planes` output channels) on `input`, its 3×3 convolution
  /// strided by `stride` (`frozen`: BatchNorm statistics frozen).
  public static func bottleneck<T: DMLScalar>(
    input: ImageShape, planes: Int, stride: Int, frozen: Bool = false, rng: inout RandomSource
  ) -> (Bottleneck<T>, ImageShape) {
    let (a, s1) = convBN(1, input: input, out: planes, kernel: 1, stride: 1, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let (b, s2) = convBN(2, input: s1, out: planes, kernel: 3, stride: stride, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let (c, s3) = convBN(3, input: s2, out: 4 * planes, kernel: 1, stride: 1, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let shortcut: Downsample<T>? = downsample(input: input, out: 4 * planes, stride: stride, frozen: frozen, rng: &rng)
    return (ResidualBlock(body: Chain(Chain(Chain(a, ReLU()), Chain(b, ReLU())), c), shortcut: shortcut), s3)
  }

  /// The whole body: stem, four stages of `blocks` made by `make`, pooling and the embedding head
  /// of `embedding` outputs (`headBatchNorm`: followed by BatchNorm; `normalize`: L2-normalised).
  static func body<Block: Layer>(
    input: ImageShape, blocks: [Int], expansion: Int, embedding: Int, normalize: Bool, headBatchNorm: Bool, frozen: Bool, seed: UInt64,
    make: (ImageShape, Int, Int, inout RandomSource) -> (Block, ImageShape)
  ) -> ResNetBody<Block> {
    typealias T = Block.Scalar
    var rng = RandomSource(seed: seed)
    let (stemConv, afterConv) = convBN(1, input: input, out: 64, kernel: 7, stride: 2, frozen: frozen, rng: &rng) as (ConvBN<T>, ImageShape)
    let pool = MaxPool2D<T>(input: afterConv, size: 3, stride: 2, padding: 1)
    let stem: ResNetStem<T> = Chain(Chain(stemConv, ReLU()), pool)
    var shape = pool.outputShape
    var stages: [Named<Stack<Block>>] = []
    for (i, count) in blocks.enumerated() {
      var layer: [Block] = []
      for b in 0..<count {
        let (block, next) = make(shape, 64 << i, b == 0 && i > 0 ? 2 : 1, &rng)
        layer.append(block)
        shape = next
      }
      stages.append(Named("layer\(i + 1)", Stack(layer)))
    }
    let fc = Linear<T>((64 << 3) * expansion, embedding, rng: &rng)
    let head: ResNetHead<T> = Chain(
      Named(headBatchNorm ? "fc.0" : "fc", fc),
      Chain(Optionally(Named("fc.1", batchNorm(embedding, frozen: false)), enabled: headBatchNorm), Optionally(L2Normalize(), enabled: normalize)))
    return Chain(Chain(stem, Chain(Chain(stages[0], stages[1]), Chain(stages[2], stages[3]))), Chain(GlobalAvgPool(input: shape), head))
  }

  /// ResNet-18 or -34 (basic blocks) on `input` images, with an embedding head of `embedding`
  /// outputs named `fc` (with `headBatchNorm`, `fc.0` and its BatchNorm `fc.1`, which is new and
  /// never frozen; `frozenBatchNorm`: every pretrained BatchNorm's statistics frozen).
  public static func basic<T: DMLScalar>(
    _ depth: ResNetDepth, input: ImageShape, embedding: Int, normalize: Bool = true, headBatchNorm: Bool = false, frozenBatchNorm: Bool = false,
    seed: UInt64 = 0
  ) -> Network<ResNetBody<BasicBlock<T>>> {
    precondition(!depth.isBottleneck, "ResNetBuilder.basic: \(depth) has bottleneck blocks")
    let body = Self.body(
      input: input, blocks: depth.blocks, expansion: 1, embedding: embedding, normalize: normalize, headBatchNorm: headBatchNorm,
      frozen: frozenBatchNorm, seed: seed
    ) { (shape: ImageShape, planes: Int, stride: Int, rng: inout RandomSource) -> (BasicBlock<T>, ImageShape) in
      basicBlock(input: shape, planes: planes, stride: stride, frozen: frozenBatchNorm, rng: &rng)
    }
    return Network(inputFeatures: input.features, body: body)
  }

  /// ResNet-50 (bottleneck blocks) on `input` images, with an embedding head of `embedding`
  /// outputs named `fc` (with `headBatchNorm`, `fc.0` and its BatchNorm `fc.1`, which is new and
  /// never frozen; `frozenBatchNorm`: every pretrained BatchNorm's statistics frozen).
  public static func bottleneckNetwork<T: DMLScalar>(
    _ depth: ResNetDepth, input: ImageShape, embedding: Int, normalize: Bool = true, headBatchNorm: Bool = false, frozenBatchNorm: Bool = false,
    seed: UInt64 = 0
  ) -> Network<ResNetBody<Bottleneck<T>>> {
    precondition(depth.isBottleneck, "ResNetBuilder.bottleneckNetwork: \(depth) has basic blocks")
    let body = Self.body(
      input: input, blocks: depth.blocks, expansion: 4, embedding: embedding, normalize: normalize, headBatchNorm: headBatchNorm,
      frozen: frozenBatchNorm, seed: seed
    ) { (shape: ImageShape, planes: Int, stride: Int, rng: inout RandomSource) -> (Bottleneck<T>, ImageShape) in
      bottleneck(input: shape, planes: planes, stride: stride, frozen: frozenBatchNorm, rng: &rng)
    }
    return Network(inputFeatures: input.features, body: body)
  }
}
