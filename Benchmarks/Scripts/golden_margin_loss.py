"""Golden values for MarginLoss (fixed and learned β) from pytorch-metric-learning, in float64.

Writes Tests/DMLLossesTests/Golden/margin_loss.json: inputs, then outputs (loss, sub-losses,
grad_embeddings, grad_beta when β is learned, mined triplets where a miner is used). Run from the
repository root with the benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_margin_loss.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners, distances

torch.set_default_dtype(torch.float64)

def case(name, description, x, labels, hyper, distance_desc, distance=None, miner=None):
    kwargs = {k: v for k, v in hyper.items() if k in ("margin", "nu", "beta", "learn_beta", "num_classes")}
    if distance is not None: kwargs["distance"] = distance
    loss = losses.MarginLoss(**kwargs)
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    tuples = miner(e, y) if miner is not None else None
    value = loss(e, y, tuples)
    value.backward()
    g = e.grad if e.grad is not None else torch.zeros_like(e)
    ed = e.detach()
    computed = loss.compute_loss(ed, y, tuples, ed, y)
    out = {"loss": value.item(), "grad_embeddings": g.tolist()}
    m = computed["margin_loss"]
    out["margin_loss_terms"] = int(torch.as_tensor(m["losses"]).numel()) if torch.is_tensor(m["losses"]) else 0
    if hyper.get("learn_beta"):
        out["grad_beta"] = (loss.beta.grad if loss.beta.grad is not None else torch.zeros_like(loss.beta)).tolist()
    if miner is not None:
        out["mined_triplets"] = torch.stack(list(tuples), 1).tolist()
    return {"name": name, "description": description,
            "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": distance_desc,
                       "reducer": {"type": "DivisorReducer"}},
            "outputs": out}

rng = np.random.default_rng(20261205)
cos = {"type": "CosineSimilarity", "normalize_embeddings": True, "is_inverted": True}
lp = {"type": "LpDistance", "p": 2, "power": 1, "normalize_embeddings": True, "is_inverted": False}
x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
small = rng.normal(size=(6, 5))
cases = [
    case("margin_default", "PML `MarginLoss()` (margin 0.2, nu 0, beta 1.2, fixed), `LpDistance()` on normalised rows; DivisorReducer.",
         x, labels, {"margin": 0.2, "nu": 0, "beta": 1.2}, lp),
    case("margin_learned_beta", "PML `MarginLoss(margin=0.1, nu=0.1, beta=1.0, learn_beta=True)`: one learned β.",
         x, labels, {"margin": 0.1, "nu": 0.1, "beta": 1.0, "learn_beta": True}, lp),
    case("margin_learned_beta_per_class", "PML `MarginLoss(nu=0.05, beta=0.9, learn_beta=True, num_classes=4)`: one learned β per class.",
         x, labels, {"margin": 0.2, "nu": 0.05, "beta": 0.9, "learn_beta": True, "num_classes": 4}, lp),
    case("margin_cosine_learned", "PML `MarginLoss(margin=0.1, beta=0.3, learn_beta=True, distance=CosineSimilarity())`.",
         x, labels, {"margin": 0.1, "nu": 0, "beta": 0.3, "learn_beta": True}, cos, distance=distances.CosineSimilarity()),
    case("margin_with_miner", "PML `MarginLoss(learn_beta=True, nu=0.01)` with the triplets of `TripletMarginMiner(margin=0.2, type_of_triplets='semihard')`.",
         x, labels, {"margin": 0.2, "nu": 0.01, "beta": 1.2, "learn_beta": True}, lp,
         miner=miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")),
    case("margin_single_class", "PML `MarginLoss(learn_beta=True, nu=0.1)` with one label only: no triplet, loss 0.",
         small, [2] * 6, {"margin": 0.2, "nu": 0.1, "beta": 1.2, "learn_beta": True}, lp),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_margin_loss.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/margin_loss.json", "w"), indent=1)
for c in cases: print(c["name"], c["outputs"]["loss"], c["outputs"].get("grad_beta"))
