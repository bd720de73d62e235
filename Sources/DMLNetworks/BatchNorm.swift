/// Batch normalisation over channels (Ioffe and Szegedy 2015), PyTorch's `BatchNorm1d` and
/// `BatchNorm2d` in one type.
///
/// ```
/// y = γ (x − μ) / √(σ² + ε) + β
/// ```
/// The statistics run over every row and pixel of each channel: for feature rows the channels are
/// the features (1-D); for NHWC image rows they are the last axis (2-D). Training mode uses the
/// batch's mean and biased variance and updates the running estimates with `momentum` (the
/// running variance is unbiased, as in PyTorch); inference mode uses the running estimates.
public struct BatchNorm<Scalar: DMLScalar>: Layer {
  /// The scale γ, one per channel (initially 1).
  public var scale: Parameter<Scalar>
  /// The shift β, one per channel (initially 0).
  public var shift: Parameter<Scalar>
  /// The running mean, used in inference mode: a non-trainable parameter, so that checkpoints
  /// keep it.
  public var runningMeanParameter: Parameter<Scalar>
  /// The running (unbiased) variance, used in inference mode: a non-trainable parameter
  /// (`running_var`, initially 1), so that checkpoints keep it.
  public var runningVarianceParameter: Parameter<Scalar>
  /// The running mean.
  public var runningMean: [Scalar] {
    get { runningMeanParameter.value.elements }
    set { runningMeanParameter.value = Matrix(rows: 1, columns: newValue.count, elements: newValue) }
  }
  /// The running (unbiased) variance.
  public var runningVariance: [Scalar] {
    get { runningVarianceParameter.value.elements }
    set { runningVarianceParameter.value = Matrix(rows: 1, columns: newValue.count, elements: newValue) }
  }
  /// Channels normalised.
  public let channels: Int
  /// Added to the variance for stability.
  public var epsilon: Scalar
  /// The weight of the current batch in the running estimates.
  public var momentum: Scalar
  /// The mean and inverse standard deviation the last forward pass used, per channel: the
  /// backward pass recomputes the normalised values from them and its input.
  @usableFromInline var batchMean: [Scalar]
  @usableFromInline var inverseStd: [Scalar]
  /// Frozen statistics: the running mean and variance are used and kept in training too (as a
  /// PyTorch BatchNorm in `eval()` inside a model in `train()`: the usual way to fine-tune a
  /// pretrained network on small batches). γ and β still train.
  public var frozen = false
  @usableFromInline var lastMode = ForwardMode.training

  /// A layer over `channels` channels with γ = 1, β = 0, running mean 0 and running variance 1.
  ///
  /// - Parameters:
  ///   - channels: the number of channels (features, or the last NHWC axis); at least 1.
  ///   - epsilon: added to the variance for stability (1e-5, as PyTorch).
  ///   - momentum: the weight of the current batch in the running estimates (0.1, as PyTorch).
  public init(channels: Int, epsilon: Scalar = 1e-5, momentum: Scalar = 0.1) {
    precondition(channels > 0, "BatchNorm needs at least one channel")
    self.channels = channels
    self.epsilon = epsilon
    self.momentum = momentum
    scale = Parameter(
      name: "weight", shape: [channels], value: Matrix(rows: 1, columns: channels, repeating: 1),
      decays: false)
    shift = Parameter(
      name: "bias", shape: [channels], value: Matrix(rows: 1, columns: channels), decays: false)
    runningMeanParameter = Parameter(
      name: "running_mean", shape: [channels], value: Matrix(rows: 1, columns: channels), decays: false,
      trainable: false)
    runningVarianceParameter = Parameter(
      name: "running_var", shape: [channels], value: Matrix(rows: 1, columns: channels, repeating: 1),
      decays: false, trainable: false)
    inverseStd = [Scalar](repeating: 0, count: channels)
    batchMean = [Scalar](repeating: 0, count: channels)
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n % channels == 0, "BatchNorm over \(channels) channels got \(n) features")
    return n
  }

  /// The channel ranges that run in parallel: `threads` pieces of whole 16-channel groups (one
  /// piece when the work is small). Each channel's sums run over the rows in order within one
  /// piece, so the results are the same for every thread count.
  @inlinable
  func channelRanges(values n: Int, compute: ComputeContext) -> [Range<Int>] {
    let groups = (channels + 15) / 16
    let pieces = compute.chunkCount(rows: groups, workPerRow: 16 * n)
    return (0..<pieces).map { piece in
      let g = BatchParallelism.rows(ofChunk: piece, chunks: pieces, rows: groups)
      return Swift.min(channels, 16 * g.lowerBound)..<Swift.min(channels, 16 * g.upperBound)
    }
  }

  @inlinable
  public mutating func forward(
    _ input: Matrix<Scalar>, into output: inout Matrix<Scalar>, mode: ForwardMode, compute: ComputeContext
  ) {
    precondition(
      input.columns % channels == 0,
      "BatchNorm over \(channels) channels got \(input.columns) features")
    let c = channels
    let n = input.count / c  // values per channel
    lastMode = frozen ? .inference : mode
    output.resize(rows: input.rows, columns: input.columns)
    let eps = epsilon, m = momentum, training = mode == .training && !frozen
    precondition(!training || n > 1, "BatchNorm in training mode needs more than one value per channel")
    guard n > 0 else { return }  // an empty batch: nothing to normalise
    let ranges = channelRanges(values: n, compute: compute)
    // Rows outside, channels inside (contiguous): each channel's sums still run over the rows in
    // order, as a per-channel loop would add them, at memory speed. Pieces of the channels run in
    // parallel.
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        batchMean.withUnsafeMutableBufferPointer { mean in
          inverseStd.withUnsafeMutableBufferPointer { inv in
            runningMeanParameter.value.withUnsafeMutableBufferPointer { rm in
              runningVarianceParameter.value.withUnsafeMutableBufferPointer { rv in
                scale.value.withUnsafeBufferPointer { gamma in
                  shift.value.withUnsafeBufferPointer { beta in
                    BatchParallelism.forEachChunk(rows: ranges.count, chunks: ranges.count) { piece, _ in
                      Scalar.batchNormForward(
                        x.baseAddress!, rows: n, channels: c, range: ranges[piece], training: training, epsilon: eps,
                        momentum: m, mean: mean.baseAddress!, inverse: inv.baseAddress!, runningMean: rm.baseAddress!,
                        runningVariance: rv.baseAddress!, gamma: gamma.baseAddress!, beta: beta.baseAddress!,
                        into: y.baseAddress!)
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /// γ's and β's gradients, and, if `propagate`, the input's: the normalised values are
  /// recomputed from `input` and the forward pass's mean and inverse standard deviation.
  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let c = channels
    let n = input.count / c
    let training = lastMode == .training
    if propagate { inputGradient.resize(rows: input.rows, columns: input.columns) }
    guard n > 0 else {
      scale.gradient.resize(rows: 1, columns: c, zeroed: true)
      shift.gradient.resize(rows: 1, columns: c, zeroed: true)
      return
    }
    let ranges = channelRanges(values: n, compute: compute)
    scale.gradient.resize(rows: 1, columns: c)
    shift.gradient.resize(rows: 1, columns: c)
    func run(_ gx: UnsafeMutablePointer<Scalar>?) {
      outputGradient.withUnsafeBufferPointer { g in
        input.withUnsafeBufferPointer { x in
          scale.value.withUnsafeBufferPointer { gamma in
            scale.gradient.withUnsafeMutableBufferPointer { dGamma in
              shift.gradient.withUnsafeMutableBufferPointer { dBeta in
                batchMean.withUnsafeBufferPointer { mean in
                  inverseStd.withUnsafeBufferPointer { inv in
                    withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 3 * c) { scratch in
                      BatchParallelism.forEachChunk(rows: ranges.count, chunks: ranges.count) { piece, _ in
                        Scalar.batchNormBackward(
                          g.baseAddress!, input: x.baseAddress!, rows: n, channels: c, range: ranges[piece],
                          mean: mean.baseAddress!, inverse: inv.baseAddress!, gamma: gamma.baseAddress!, training: training,
                          dGamma: dGamma.baseAddress!, dBeta: dBeta.baseAddress!, scratch: scratch.baseAddress!,
                          inputGradient: gx)
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    if propagate {
      inputGradient.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
    } else {
      run(nil)
    }
  }

  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&scale)
    visitor.visit(&shift)
    visitor.visit(&runningMeanParameter)
    visitor.visit(&runningVarianceParameter)
  }
}
