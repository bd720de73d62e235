import DMLCore
import DMLNetworks
import DMLRun

/// A residual MLP composed from the library's layers: Linear → blocks of
/// Residual(ReLU → Linear) → Linear → L2 normalisation.
public enum ResidualMLP {
  /// The network for rows of `inputFeatures` features.
  public static func make(inputFeatures: Int, width: Int = 128, blocks: Int = 2, embedding: Int = 64, seed: UInt64 = 0)
    -> Network<some Layer<Float>>
  {
    var rng = RandomSource(seed: seed)
    var residuals: [Residual<Chain<ReLU<Float>, Linear<Float>>>] = []
    for _ in 0..<blocks { residuals.append(Residual(Chain(ReLU<Float>(), Linear<Float>(width, width, rng: &rng)))) }
    return Network(inputFeatures: inputFeatures, body: sequential {
      Linear<Float>(inputFeatures, width, rng: &rng)
      Stack(residuals)
      Linear<Float>(width, embedding, rng: &rng)
      L2Normalize<Float>()
    })
  }

  /// Its registry entry: `--network residual-mlp:width=…,blocks=…,embedding=…`.
  public static let factory = ComponentFactory<AnyEmbeddingNetwork<Float>, NetworkContext>(
    "residual-mlp", summary: "Linear → blocks × Residual(ReLU → Linear) → Linear (example package)",
    hyperparameters: [
      HyperparameterSpec("width", .integer, default: "128", "width of the residual blocks", range: .closed(1, 65536)),
      HyperparameterSpec("blocks", .integer, default: "2", "residual blocks", range: .closed(0, 64)),
      HyperparameterSpec("embedding", .integer, default: "64", "embedding dimension", range: .closed(1, 65536)),
    ]
  ) { v, c in
    AnyEmbeddingNetwork(make(
      inputFeatures: c.inputFeatures, width: try v.integer("width"), blocks: try v.integer("blocks"), embedding: try v.integer("embedding"),
      seed: c.seed))
  }
}
