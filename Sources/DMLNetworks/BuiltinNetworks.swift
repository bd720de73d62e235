/// A hidden block of the MLP: `Linear → [BatchNorm] → ReLU`.
public typealias DenseBlock<T: DMLScalar> = Chain<Chain<Linear<T>, Optionally<BatchNorm<T>>>, ReLU<T>>

/// The MLP's layers: hidden blocks, then `Linear → [L2Normalize]`.
public typealias MLPBody<T: DMLScalar> =
  Chain<Stack<DenseBlock<T>>, Chain<Linear<T>, Optionally<L2Normalize<T>>>>

/// ConvNet-S's layers: convolutional blocks, then `Linear → [L2Normalize]`.
public typealias ConvNetSBody<T: DMLScalar> =
  Chain<Stack<ConvBlock<T>>, Chain<Linear<T>, Optionally<L2Normalize<T>>>>

/// The multilayer perceptron of the benchmarks: `Linear(784, 512) → ReLU → Linear(512, 128)`,
/// optionally L2-normalised, with He initialisation.
public typealias MLP<T: DMLScalar> = Network<MLPBody<T>>

/// The small convolutional network of the benchmarks: two blocks of
/// `Conv3×3 (pad 1) → ReLU → MaxPool2` (1→32→64 channels), then `Linear(3136, 128)`.
public typealias ConvNetS<T: DMLScalar> = Network<ConvNetSBody<T>>

extension Network {
  /// An MLP with the given widths.
  ///
  /// - Parameters:
  ///   - inputFeatures: features of an input row (784 for Fashion-MNIST).
  ///   - hidden: widths of the hidden layers (`[512]` by default; `[]` gives a linear map).
  ///   - embeddingDimension: the output width (128).
  ///   - normalize: L2-normalise the output (true; center loss uses false).
  ///   - batchNorm: insert BatchNorm before each ReLU.
  ///   - seed: the initialisation seed.
  public static func mlp<T: DMLScalar>(
    inputFeatures: Int = 784, hidden: [Int] = [512], embeddingDimension: Int = 128,
    normalize: Bool = true, batchNorm: Bool = false, seed: UInt64 = 0
  ) -> MLP<T> where Body == MLPBody<T> {
    precondition(inputFeatures > 0 && embeddingDimension > 0, "MLP sizes must be positive")
    precondition(hidden.allSatisfy { $0 > 0 }, "MLP hidden widths must be positive: \(hidden)")
    var rng = RandomSource(seed: seed)
    var width = inputFeatures
    var blocks: [DenseBlock<T>] = []
    for h in hidden {
      blocks.append(
        Chain(Chain(Linear(width, h, rng: &rng), Optionally(BatchNorm(channels: h), enabled: batchNorm)), ReLU()))
      width = h
    }
    let head = Chain(
      Linear<T>(width, embeddingDimension, rng: &rng), Optionally(L2Normalize<T>(), enabled: normalize))
    return Network(inputFeatures: inputFeatures, body: Chain(Stack(blocks), head))
  }

  /// ConvNet-S with the given channel widths.
  ///
  /// - Parameters:
  ///   - input: the image shape (28×28×1 for Fashion-MNIST).
  ///   - channels: output channels of each block (`[32, 64]`).
  ///   - embeddingDimension: the output width (128).
  ///   - normalize: L2-normalise the output.
  ///   - batchNorm: insert BatchNorm after each convolution.
  ///   - seed: the initialisation seed.
  public static func convNetS<T: DMLScalar>(
    input: ImageShape = ImageShape(height: 28, width: 28, channels: 1), channels: [Int] = [32, 64],
    embeddingDimension: Int = 128, normalize: Bool = true, batchNorm: Bool = false,
    seed: UInt64 = 0
  ) -> ConvNetS<T> where Body == ConvNetSBody<T> {
    precondition(channels.allSatisfy { $0 > 0 }, "ConvNet-S channels must be positive: \(channels)")
    var rng = RandomSource(seed: seed)
    var shape = input
    var blocks: [ConvBlock<T>] = []
    for c in channels {
      precondition(
        shape.height >= 2 && shape.width >= 2,
        "ConvNet-S: input \(input) too small for \(channels.count) pooling stages")
      let block = ConvBlock(
        Conv2D<T>(input: shape, outChannels: c, kernel: 3, padding: 1, rng: &rng), batchNorm: batchNorm, poolSize: 2)
      blocks.append(block)
      shape = block.outputShape
    }
    let head = Chain(
      Linear<T>(shape.features, embeddingDimension, rng: &rng),
      Optionally(L2Normalize<T>(), enabled: normalize))
    return Network(inputFeatures: input.features, body: Chain(Stack(blocks), head))
  }
}

/// LocalNet's layers: `Conv k×k (1 → C) → ReLU → Conv m×m (C → out) → [L2Normalize]`, at full
/// resolution, with no projection.
public typealias LocalNetBody<T: DMLScalar> = Chain<Chain<Chain<Conv2D<T>, ReLU<T>>, Conv2D<T>>, Optionally<L2Normalize<T>>>

/// A shallow, full-resolution convolutional embedding: a bank of `C` local filters with their
/// thresholds, mixed over an `m × m` neighbourhood into `out` maps, flattened
/// (`height × width × out` dimensions).
///
/// It can only learn local, class-agnostic transforms (smoothing, edge and intensity curves), not
/// a projection onto the training classes: the low-capacity end of the trade-off between fitting
/// the seen classes and generalising to unseen ones. With `k = 1` the filters are a learned
/// intensity curve (a sum of ramps) and the `m × m` mix a learned smoothing of it.
public typealias LocalNet<T: DMLScalar> = Network<LocalNetBody<T>>

extension Network {
  /// LocalNet with `channels` filters of size `kernel`, mixed over `mixKernel × mixKernel`
  /// neighbourhoods into `outChannels` output maps (odd sizes, zero-padded to keep the image size).
  ///
  /// With `identity`, the first filter starts as a centred delta with bias `shift` (a pass-through
  /// of inputs above `−shift`) and the mix reads only that filter's centre tap at full weight,
  /// while the other weights start at a tenth of their He scale: the untrained network is then the
  /// input itself, shifted, and training starts from the raw pixels' retrieval rather than from a
  /// random projection.
  public static func localNet<T: DMLScalar>(
    input: ImageShape = ImageShape(height: 28, width: 28, channels: 1), channels: Int = 8, kernel: Int = 5,
    mixKernel: Int = 1, outChannels: Int = 1, normalize: Bool = true, identity: Bool = false, shift: T = 1,
    seed: UInt64 = 0
  ) -> LocalNet<T> where Body == LocalNetBody<T> {
    precondition(
      channels > 0 && outChannels > 0 && kernel > 0 && kernel % 2 == 1 && mixKernel > 0 && mixKernel % 2 == 1,
      "LocalNet: channels, outChannels > 0 and odd kernels")
    var rng = RandomSource(seed: seed)
    var filters = Conv2D<T>(input: input, outChannels: channels, kernel: kernel, padding: kernel / 2, rng: &rng)
    var mix = Conv2D<T>(input: filters.outputShape, outChannels: outChannels, kernel: mixKernel, padding: mixKernel / 2, rng: &rng)
    if identity {
      filters.weight.value.apply { $0 / 10 }
      mix.weight.value.apply { $0 / 10 }
      // Weight rows are (ky, kx, c); filter 0 is a delta: its centre tap for every input channel.
      for j in 0..<filters.weight.value.columns { filters.weight.value[0, j] = 0 }
      for c in 0..<input.channels { filters.weight.value[0, ((kernel / 2) * kernel + kernel / 2) * input.channels + c] = 1 }
      filters.bias.value[0, 0] = shift
      // The mix reads filter 0 at its centre tap only.
      let centre = (mixKernel / 2) * mixKernel + mixKernel / 2
      for o in 0..<outChannels {
        for tap in 0..<(mixKernel * mixKernel) { mix.weight.value[o, tap * channels] = tap == centre ? 1 : 0 }
      }
    }
    return Network(inputFeatures: input.features, body: Chain(Chain(Chain(filters, ReLU()), mix), Optionally(L2Normalize<T>(), enabled: normalize)))
  }
}
