// The library's `dml` command line, with the binomial deviance loss registered beside the standard
// losses, the hardest-pairs miner beside the built-in miners and the residual MLP beside the
// built-in networks.
import DMLCommands
import DMLLosses
import ResearchRecipe

var registry = LossRegistry.standard
registry.register(LossFactory(BinomialDevianceLoss<Float>.self))
CommandRegistry.losses = registry
CommandRegistry.miners.register(
  ComponentFactory(
    "hardest-pairs", summary: "each anchor's hardest positive and negative pair (example package)", hyperparameters: [.distance(default: "cosine")]
  ) { values, _ in AnyTupleSampler(HardestPairsMiner<Float>(distance: try values.distance())) })
CommandRegistry.networks.register(ResidualMLP.factory)
DML.main()
