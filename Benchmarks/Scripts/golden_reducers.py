"""Golden values for PML's ThresholdReducer and PerAnchorReducer, in float64.

Writes Tests/DMLLossesTests/Golden/reducers.json in the layout of pair_losses.json: contrastive,
triplet and circle losses with a ThresholdReducer, and the contrastive loss with a PerAnchorReducer
(its default mean) and with MultipleReducers (a mean for the positive sub-loss, a threshold for the
negative) and ClassWeightedReducer on contrastive, triplet and circle, each with the value, the sub-losses and the embeddings' gradient.
Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_reducers.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners, reducers

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261214)


def case(name, description, loss_name, loss, hyper, x, labels, miner=None):
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    tuples = miner(e, y) if miner is not None else None
    value = loss(e, y, tuples)
    value.backward()
    inputs = {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper}
    if tuples is not None:
        a1, p, a2, n = tuples
        inputs["indices_tuple"] = {"pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, n], 1).tolist()}
    return {"name": name, "description": description, "loss": loss_name, "inputs": inputs,
            "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist()}}


x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
x32 = rng.normal(size=(32, 8))
labels32 = [int(v) for v in rng.integers(0, 6, size=32)]
cases = [
    case("contrastive_threshold", "PML `ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=ThresholdReducer(low=0.05, high=0.5))`.",
         "contrastive", losses.ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=reducers.ThresholdReducer(low=0.05, high=0.5)),
         {"pos_margin": 0.2, "neg_margin": 0.9, "reduction": "threshold", "low": 0.05, "high": 0.5}, x, labels),
    case("contrastive_per_anchor", "PML `ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=PerAnchorReducer())`.",
         "contrastive", losses.ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=reducers.PerAnchorReducer()),
         {"pos_margin": 0.2, "neg_margin": 0.9, "reduction": "per-anchor"}, x, labels),
    case("contrastive_per_anchor_miner", "PML `ContrastiveLoss(reducer=PerAnchorReducer())` on `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         "contrastive", losses.ContrastiveLoss(reducer=reducers.PerAnchorReducer()),
         {"pos_margin": 0.0, "neg_margin": 1.0, "reduction": "per-anchor"}, x32, labels32, miner=miners.MultiSimilarityMiner(epsilon=0.1)),
    case("triplet_threshold", "PML `TripletMarginLoss(margin=0.3, reducer=ThresholdReducer(low=0.1))`.",
         "triplet", losses.TripletMarginLoss(margin=0.3, reducer=reducers.ThresholdReducer(low=0.1)),
         {"margin": 0.3, "reduction": "threshold", "low": 0.1, "high": 1e300}, x, labels),
    case("contrastive_multiple", "PML `ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=MultipleReducers({'pos_loss': MeanReducer()}, default_reducer=ThresholdReducer(low=0.1)))`.",
         "contrastive", losses.ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=reducers.MultipleReducers(
             {"pos_loss": reducers.MeanReducer()}, default_reducer=reducers.ThresholdReducer(low=0.1))),
         {"pos_margin": 0.2, "neg_margin": 0.9, "reduction": "threshold", "low": 0.1, "high": 1e300, "pos_reduction": "mean"}, x, labels),
    case("contrastive_class_weighted", "PML `ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=ClassWeightedReducer(torch.tensor([0.5, 2, 1, 0.25])))`.",
         "contrastive", losses.ContrastiveLoss(pos_margin=0.2, neg_margin=0.9, reducer=reducers.ClassWeightedReducer(torch.tensor([0.5, 2.0, 1.0, 0.25]))),
         {"pos_margin": 0.2, "neg_margin": 0.9, "reduction": "class-weighted", "class_weights": [0.5, 2, 1, 0.25]}, x, labels),
    case("triplet_class_weighted", "PML `TripletMarginLoss(margin=0.3, reducer=ClassWeightedReducer(torch.tensor([0.5, 2, 1, 0.25])))`.",
         "triplet", losses.TripletMarginLoss(margin=0.3, reducer=reducers.ClassWeightedReducer(torch.tensor([0.5, 2.0, 1.0, 0.25]))),
         {"margin": 0.3, "reduction": "class-weighted", "class_weights": [0.5, 2, 1, 0.25]}, x, labels),
    case("circle_class_weighted", "PML `CircleLoss(m=0.3, gamma=8, reducer=ClassWeightedReducer(weights of 6 classes))`.",
         "circle", losses.CircleLoss(m=0.3, gamma=8, reducer=reducers.ClassWeightedReducer(torch.tensor([1.0, 0.5, 3.0, 0.0, 2.0, 1.5]))),
         {"m": 0.3, "gamma": 8, "reduction": "class-weighted", "class_weights": [1, 0.5, 3, 0, 2, 1.5]}, x32, labels32),
    case("circle_threshold", "PML `CircleLoss(m=0.3, gamma=8, reducer=ThresholdReducer(high=19))`.",
         "circle", losses.CircleLoss(m=0.3, gamma=8, reducer=reducers.ThresholdReducer(high=19.0)),
         {"m": 0.3, "gamma": 8, "reduction": "threshold", "low": -1e300, "high": 19.0}, x32, labels32),
]
# PML's circle loss returns its per-row losses as an N x 1 column, which ClassWeightedReducer
# multiplies by the N weights as a row: an N x N broadcast whose mean is mean(losses) * mean(weights),
# not the mean of the weighted losses. The case records the weighted mean (what the reducer means to
# compute, and the library computes) with its gradient (with an exact softplus, see golden_circle.py),
# and PML's value as `loss_pml`.
c = next(c for c in cases if c["name"] == "circle_class_weighted")
e = torch.tensor(x32, requires_grad=True)
y = torch.tensor(labels32)
w = torch.tensor([1.0, 0.5, 3.0, 0.0, 2.0, 1.5])
class ExactSoftplus(torch.nn.Module):
    """log(1 + exp(z)) at every z (torch's Softplus returns z above 20)."""
    def forward(self, z):
        return torch.logaddexp(torch.zeros_like(z), z)


circle = losses.CircleLoss(m=0.3, gamma=8)
circle.soft_plus = ExactSoftplus()
per = circle.compute_loss(e, y, None, e, y)["loss"]["losses"].flatten()
weighted = (per * w[y]).mean()
weighted.backward()
c["outputs"]["loss_pml"] = c["outputs"]["loss"]
c["outputs"]["loss"] = weighted.item()
c["outputs"]["grad_embeddings"] = e.grad.tolist()
c["description"] += " Outputs: the weighted mean of the rows' losses (PML's broadcast value in loss_pml)."
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_reducers.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/reducers.json", "w"))
print(len(cases), "cases", [(c["name"], round(c["outputs"]["loss"], 6)) for c in cases])
