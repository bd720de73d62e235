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
  @usableFromInline var normalized = Matrix<Scalar>()
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
  }

  public func outputFeatures(forInput n: Int) -> Int {
    precondition(n % channels == 0, "BatchNorm over \(channels) channels got \(n) features")
    return n
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
    normalized.resize(rows: input.rows, columns: input.columns)
    let eps = epsilon, m = momentum, training = mode == .training && !frozen
    precondition(!training || n > 1, "BatchNorm in training mode needs more than one value per channel")
    // Rows outside, channels inside (contiguous): each channel's sums still run over the rows in
    // order, as a per-channel loop would add them, at memory speed.
    input.withUnsafeBufferPointer { x in
      normalized.withUnsafeMutableBufferPointer { xh in
        inverseStd.withUnsafeMutableBufferPointer { inv in
          runningMeanParameter.value.withUnsafeMutableBufferPointer { rm in
            runningVarianceParameter.value.withUnsafeMutableBufferPointer { rv in
              withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 2 * c) { scratch in
                let mu = UnsafeMutableBufferPointer(rebasing: scratch[0..<c]), v = UnsafeMutableBufferPointer(rebasing: scratch[c..<(2 * c)])
                if training {
                  // Two passes over the channel, for accuracy.
                  mu.initialize(repeating: 0)
                  v.initialize(repeating: 0)
                  for r in 0..<n {
                    for ch in 0..<c { mu[ch] += x[r * c + ch] }
                  }
                  for ch in 0..<c { mu[ch] /= Scalar(n) }
                  for r in 0..<n {
                    for ch in 0..<c {
                      let d = x[r * c + ch] - mu[ch]
                      v[ch] += d * d
                    }
                  }
                  for ch in 0..<c {
                    inv[ch] = 1 / Scalar.sqrt(v[ch] / Scalar(n) + eps)
                    rm[ch] = (1 - m) * rm[ch] + m * mu[ch]
                    rv[ch] = (1 - m) * rv[ch] + m * v[ch] / Scalar(n - 1)
                  }
                } else {
                  for ch in 0..<c {
                    mu[ch] = rm[ch]
                    inv[ch] = 1 / Scalar.sqrt(rv[ch] + eps)
                  }
                }
                for r in 0..<n {
                  for ch in 0..<c { xh[r * c + ch] = (x[r * c + ch] - mu[ch]) * inv[ch] }
                }
              }
            }
          }
        }
      }
    }
    scale.value.withUnsafeBufferPointer { gamma in
      shift.value.withUnsafeBufferPointer { beta in
        normalized.withUnsafeBufferPointer { xh in
          output.withUnsafeMutableBufferPointer { y in
            for r in 0..<n {
              for ch in 0..<c { y[r * c + ch] = gamma[ch] * xh[r * c + ch] + beta[ch] }
            }
          }
        }
      }
    }
  }

  @inlinable
  public mutating func backward(
    input: Matrix<Scalar>, output: Matrix<Scalar>, outputGradient: Matrix<Scalar>,
    inputGradient: inout Matrix<Scalar>, propagate: Bool, compute: ComputeContext
  ) {
    let c = channels
    let n = input.count / c
    let training = lastMode == .training
    if propagate { inputGradient.resize(rows: input.rows, columns: input.columns) }
    outputGradient.withUnsafeBufferPointer { g in
      normalized.withUnsafeBufferPointer { xh in
        scale.gradient.withUnsafeMutableBufferPointer { dGamma in
          shift.gradient.withUnsafeMutableBufferPointer { dBeta in
            // Rows outside, channels inside; each channel's sums in row order, as before.
            dGamma.initialize(repeating: 0)
            dBeta.initialize(repeating: 0)
            for r in 0..<n {
              for ch in 0..<c {
                dBeta[ch] += g[r * c + ch]
                dGamma[ch] += g[r * c + ch] * xh[r * c + ch]
              }
            }
          }
        }
      }
    }
    guard propagate else { return }
    outputGradient.withUnsafeBufferPointer { g in
      normalized.withUnsafeBufferPointer { xh in
        scale.value.withUnsafeBufferPointer { gamma in
          scale.gradient.withUnsafeBufferPointer { dGamma in
            shift.gradient.withUnsafeBufferPointer { dBeta in
              inputGradient.withUnsafeMutableBufferPointer { gx in
                withUnsafeTemporaryAllocation(of: Scalar.self, capacity: 3 * c) { scratch in
                  for ch in 0..<c {
                    scratch[ch] = gamma[ch] * inverseStd[ch]
                    scratch[c + ch] = training ? dBeta[ch] / Scalar(n) : 0
                    scratch[2 * c + ch] = training ? dGamma[ch] / Scalar(n) : 0
                  }
                  for r in 0..<n {
                    for ch in 0..<c {
                      let i = r * c + ch
                      gx[i] = scratch[ch] * (g[i] - scratch[c + ch] - xh[i] * scratch[2 * c + ch])
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

  @inlinable
  public mutating func visitParameters<V: ParameterVisitor>(_ visitor: inout V) where V.Scalar == Scalar {
    visitor.visit(&scale)
    visitor.visit(&shift)
    visitor.visit(&runningMeanParameter)
    visitor.visit(&runningVarianceParameter)
  }
}
