/// A hidden block of the MLP: `Linear → [BatchNorm] → ReLU`.
public typealias DenseBlock<T: DMLScalar> = Chain<Chain<Linear<T>, Optionally<BatchNorm<T>>>, ReLU<T>>

/// The MLP's layers: hidden blocks, then `Linear → [L2Normalize]`.
public typealias MLPBody<T: DMLScalar> =
  Chain<Stack<DenseBlock<T>>, Chain<Linear<T>, Optionally<L2Normalize<T>>>>

/// A convolutional block of ConvNet-S: `Conv3×3 → [BatchNorm] → ReLU → MaxPool2`.
public typealias ConvBlock<T: DMLScalar> =
  Chain<Chain<Chain<Conv2D<T>, Optionally<BatchNorm<T>>>, ReLU<T>>, MaxPool2D<T>>

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
      let conv = Conv2D<T>(input: shape, outChannels: c, kernel: 3, padding: 1, rng: &rng)
      let pool = MaxPool2D<T>(input: conv.outputShape, size: 2)
      blocks.append(
        Chain(Chain(Chain(conv, Optionally(BatchNorm(channels: c), enabled: batchNorm)), ReLU()), pool))
      shape = pool.outputShape
    }
    let head = Chain(
      Linear<T>(shape.features, embeddingDimension, rng: &rng),
      Optionally(L2Normalize<T>(), enabled: normalize))
    return Network(inputFeatures: input.features, body: Chain(Stack(blocks), head))
  }
}
