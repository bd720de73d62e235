/// A learning-rate schedule: the factor applied to every group's base rate at a step.
public protocol LearningRateSchedule: Sendable {
  /// The factor at `step` (0-based, counted in optimizer steps).
  func factor(at step: Int) -> Double
}

/// The base rate throughout.
public struct ConstantSchedule: LearningRateSchedule {
  /// The constant schedule (factor 1).
  public init() {}
  public func factor(at step: Int) -> Double { 1 }
}

/// Multiplies the rate by `gamma` every `stepSize` steps (PyTorch's `StepLR`).
public struct StepSchedule: LearningRateSchedule {
  /// Steps between decays.
  public var stepSize: Int
  /// The factor at each decay.
  public var gamma: Double

  /// Multiplies by `gamma` (default 0.1) every `stepSize` steps; `stepSize` must be positive.
  public init(stepSize: Int, gamma: Double = 0.1) {
    precondition(stepSize > 0, "StepSchedule: stepSize must be positive")
    self.stepSize = stepSize
    self.gamma = gamma
  }

  public func factor(at step: Int) -> Double { Double.pow(gamma, Double(step / stepSize)) }
}

/// Cosine annealing from 1 to `minimumFactor` over `totalSteps` (PyTorch's
/// `CosineAnnealingLR` with `eta_min = minimumFactor × base`), then flat.
public struct CosineSchedule: LearningRateSchedule {
  /// Steps of the decay.
  public var totalSteps: Int
  /// The final factor.
  public var minimumFactor: Double

  /// Anneals over `totalSteps` (positive) down to `minimumFactor` (default 0).
  public init(totalSteps: Int, minimumFactor: Double = 0) {
    precondition(totalSteps > 0, "CosineSchedule: totalSteps must be positive")
    self.totalSteps = totalSteps
    self.minimumFactor = minimumFactor
  }

  public func factor(at step: Int) -> Double {
    let t = Double(min(step, totalSteps)) / Double(totalSteps)
    return minimumFactor + (1 - minimumFactor) * (1 + Double.cos(Double.pi * t)) / 2
  }
}

/// A linear warm-up over `warmupSteps`, from `1 / warmupSteps` up to 1, then `base` counted from
/// the end of the warm-up.
public struct WarmupSchedule<Base: LearningRateSchedule>: LearningRateSchedule {
  /// Steps of the warm-up.
  public var warmupSteps: Int
  /// The schedule after the warm-up.
  public var base: Base

  /// Warms up over `warmupSteps` (0: no warm-up), then follows `base`.
  public init(warmupSteps: Int, then base: Base) {
    precondition(warmupSteps >= 0, "WarmupSchedule: warmupSteps must be non-negative")
    self.warmupSteps = warmupSteps
    self.base = base
  }

  public func factor(at step: Int) -> Double {
    if step < warmupSteps { return Double(step + 1) / Double(warmupSteps) }
    return base.factor(at: step - warmupSteps)
  }
}
