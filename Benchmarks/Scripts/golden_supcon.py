"""Golden values for SupConLoss from pytorch-metric-learning, in float64.

Writes Tests/DMLLossesTests/Golden/supcon.json in the layout of the other golden files (inputs,
then outputs: loss, grad_embeddings, term counts, mined pairs where a miner is used). Run from
the repository root with the benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_supcon.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners, distances

torch.set_default_dtype(torch.float64)

def case(name, description, x, labels, loss, distance_desc, temperature, miner=None):
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    tuples = miner(e, y) if miner is not None else None
    value = loss(e, y, tuples)
    value.backward()
    g = e.grad if e.grad is not None else torch.zeros_like(e)
    # Per-anchor losses, for the term counts (PML's AvgNonZeroReducer divides by the non-zero ones).
    per = loss.compute_loss(e.detach(), y, tuples, None, None)["loss"]["losses"]
    per = per if torch.is_tensor(per) and per.ndim > 0 else torch.zeros(len(labels))
    out = {
        "loss": value.item(),
        "grad_embeddings": g.tolist(),
        "term_counts": {"loss": {"terms": len(labels), "nonzero": int((per > 0).sum())}},
    }
    hyper = {"temperature": temperature}
    if miner is not None:
        a1, p, a2, n = tuples
        out["mined_pos_pairs"] = torch.stack([a1, p], 1).tolist()
        out["mined_neg_pairs"] = torch.stack([a2, n], 1).tolist()
        hyper["miner"] = {"type": type(miner).__name__, "epsilon": miner.epsilon}
    return {
        "name": name, "description": description,
        "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": distance_desc,
                   "reducer": {"type": "AvgNonZeroReducer"}},
        "outputs": out,
    }

rng = np.random.default_rng(20261130)
cos = {"type": "CosineSimilarity", "normalize_embeddings": True, "is_inverted": True}
lp = {"type": "LpDistance", "p": 2, "power": 1, "normalize_embeddings": True, "is_inverted": False}
x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
x32 = rng.normal(size=(32, 8))
labels32 = [int(v) for v in rng.integers(0, 6, size=32)]
single = rng.normal(size=(6, 5))
cases = [
    case("supcon_default", "PML `SupConLoss()` (temperature 0.1), default distance `CosineSimilarity()`; AvgNonZeroReducer.",
         x, labels, losses.SupConLoss(), cos, 0.1),
    case("supcon_temperature_0.5", "PML `SupConLoss(temperature=0.5)`, `CosineSimilarity()`.",
         x, labels, losses.SupConLoss(temperature=0.5), cos, 0.5),
    case("supcon_euclidean", "PML `SupConLoss(temperature=0.3, distance=LpDistance())` (normalised Euclidean; the loss negates distances).",
         x, labels, losses.SupConLoss(temperature=0.3, distance=distances.LpDistance()), lp, 0.3),
    case("supcon_with_miner", "PML `SupConLoss()` called with the pairs of `MultiSimilarityMiner(epsilon=0.1)`.",
         x32, labels32, losses.SupConLoss(), cos, 0.1, miner=miners.MultiSimilarityMiner(epsilon=0.1)),
    case("supcon_singletons", "PML `SupConLoss()` where most labels occur once (anchors without positives count as 0).",
         single, [0, 1, 2, 3, 0, 4], losses.SupConLoss(), cos, 0.1),
    case("edge_all_same_label_supcon", "PML `SupConLoss()` with one label only: no negative pair, loss 0.",
         single, [2] * 6, losses.SupConLoss(), cos, 0.1),
    case("edge_all_distinct_labels_supcon", "PML `SupConLoss()` with distinct labels: no positive pair, loss 0.",
         single, list(range(6)), losses.SupConLoss(), cos, 0.1),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_supcon.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/supcon.json", "w"), indent=1)
for c in cases: print(c["name"], c["outputs"]["loss"], c["outputs"]["term_counts"])
