import Foundation
import MetricLearning

/// The registries the commands build components from, one per kind. They start with the
/// library's standard components; a researcher's package registers its own (networks, losses,
/// miners, batch samplers, optimizers, schedules, augmentations) before calling `DML.main()`, and they appear in
/// `dml list` and in every `name:key=value` flag like the built-in ones.
public enum CommandRegistry {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var _losses = LossRegistry.standard
  nonisolated(unsafe) private static var _networks = NetworkRegistry.standard
  nonisolated(unsafe) private static var _miners = MinerRegistry.standard
  nonisolated(unsafe) private static var _batches = BatchSamplerRegistry.standard
  nonisolated(unsafe) private static var _optimizers = OptimizerRegistry.standard
  nonisolated(unsafe) private static var _schedules = ScheduleRegistry.standard
  nonisolated(unsafe) private static var _augmentations = AugmentationRegistry.standard

  /// The losses (`--loss`).
  public static var losses: LossRegistry {
    get { lock.withLock { _losses } }
    set { lock.withLock { _losses = newValue } }
  }
  /// The networks (`--network`).
  public static var networks: NetworkRegistry {
    get { lock.withLock { _networks } }
    set { lock.withLock { _networks = newValue } }
  }
  /// The miners (`--miner`).
  public static var miners: MinerRegistry {
    get { lock.withLock { _miners } }
    set { lock.withLock { _miners = newValue } }
  }
  /// The batch samplers (`--batch`).
  public static var batches: BatchSamplerRegistry {
    get { lock.withLock { _batches } }
    set { lock.withLock { _batches = newValue } }
  }
  /// The optimizers (`--optimizer`).
  public static var optimizers: OptimizerRegistry {
    get { lock.withLock { _optimizers } }
    set { lock.withLock { _optimizers = newValue } }
  }
  /// The learning-rate schedules (`--schedule`).
  public static var schedules: ScheduleRegistry {
    get { lock.withLock { _schedules } }
    set { lock.withLock { _schedules = newValue } }
  }

  /// The image augmentation operations (`--augment`, several joined by commas).
  public static var augmentations: AugmentationRegistry {
    get { lock.withLock { _augmentations } }
    set { lock.withLock { _augmentations = newValue } }
  }

  /// The declared hyperparameters of the component `name` of the flag `kind` ("network",
  /// "loss", "miner", "batch", "optimizer", "schedule", "augment"), or `nil` if there is none of
  /// that name.
  static func hyperparameters(kind: String, name: String) -> [HyperparameterSpec]? {
    switch kind {
    case "loss": return losses.factories[name]?.hyperparameters
    case "network": return networks.factory(named: name)?.hyperparameters
    case "miner": return miners.factory(named: name)?.hyperparameters
    case "batch": return batches.factory(named: name)?.hyperparameters
    case "optimizer": return optimizers.factory(named: name)?.hyperparameters
    case "schedule": return schedules.factory(named: name)?.hyperparameters
    case "augment": return augmentations.factory(named: name)?.hyperparameters
    default: return nil
    }
  }
}
