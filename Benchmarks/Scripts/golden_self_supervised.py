"""Golden values for PML's SelfSupervisedLoss, in float64.

Writes Tests/DMLLossesTests/Golden/self_supervised.json: per case the two views (`embeddings`,
`ref_emb`, n x d each), the inner loss and its arguments, `symmetric`, the loss and both views'
gradients. The library sees the views as one batch whose rows i and n + i share label i.
Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_self_supervised.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261210)


def case(name, inner_name, inner, hyper, symmetric, n=8, d=6):
    a = rng.normal(size=(n, d))
    b = a + 0.5 * rng.normal(size=(n, d))
    ea = torch.tensor(a, requires_grad=True)
    eb = torch.tensor(b, requires_grad=True)
    value = losses.SelfSupervisedLoss(inner, symmetric=symmetric)(ea, eb)
    value.backward()
    return {
        "name": name, "loss": inner_name,
        "inputs": {"embeddings": a.tolist(), "ref_emb": b.tolist(), "hyperparameters": hyper, "symmetric": symmetric},
        "outputs": {"loss": value.item(), "grad_embeddings": ea.grad.tolist(), "grad_ref_emb": eb.grad.tolist()},
    }


cases = [
    case("ntxent_symmetric", "ntxent", losses.NTXentLoss(temperature=0.1), {"temperature": 0.1}, True),
    case("ntxent_one_way", "ntxent", losses.NTXentLoss(temperature=0.1), {"temperature": 0.1}, False),
    case("contrastive_one_way", "contrastive", losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.9), {"pos_margin": 0.1, "neg_margin": 0.9}, False),
    case("triplet_one_way", "triplet", losses.TripletMarginLoss(margin=0.3), {"margin": 0.3}, False),
    case("triplet_symmetric", "triplet", losses.TripletMarginLoss(margin=0.3), {"margin": 0.3}, True),
    case("supcon_one_way", "supcon", losses.SupConLoss(temperature=0.2), {"temperature": 0.2}, False),
    case("multi_similarity_one_way", "multi-similarity", losses.MultiSimilarityLoss(), {"alpha": 2, "beta": 50, "base": 0.5}, False),
    case("circle_one_way", "circle", losses.CircleLoss(m=0.3, gamma=16), {"m": 0.3, "gamma": 16}, False),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_self_supervised.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/self_supervised.json", "w"))
print(len(cases), "cases", [(c["name"], round(c["outputs"]["loss"], 6)) for c in cases])
