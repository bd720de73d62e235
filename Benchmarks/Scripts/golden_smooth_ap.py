"""Golden values for PML's SmoothAPLoss, in float64.

Writes Tests/DMLLossesTests/Golden/smooth_ap.json in the layout of pair_losses.json. PML groups the
batch into consecutive blocks of `batch // classes` rows and treats each block as a class, which is
right only when the batch holds as many classes as rows per class, in consecutive runs; the cases
here are of that shape (the loss's own tests check other shapes against the paper's formula).
`naive_loss` is that formula written out in numpy, for every case. Run from the repository root with
the benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_smooth_ap.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261206)
cos = {"type": "CosineSimilarity", "normalize_embeddings": True, "is_inverted": True}


def naive(x, labels, t):
    """1 − mean over anchors a of AP_a; AP_a = mean over the members b of a's class (a included) of
    (1 + Σ_{k in class, k≠b} σ((s_ak − s_ab)/t)) / (1 + Σ_{k≠b} σ((s_ak − s_ab)/t))."""
    e = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = e @ e.T
    y = np.array(labels)
    sig = lambda v: 1 / (1 + np.exp(-v))
    ap = []
    for a in range(len(y)):
        members = np.flatnonzero(y == y[a])
        total = 0.0
        for b in members:
            u = sig((s[a] - s[a, b]) / t)
            u[b] = 0
            total += (1 + u[members].sum()) / (1 + u.sum())
        ap.append(total / len(members))
    return float(np.mean(1 - np.array(ap)))


def case(name, description, x, labels, t):
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    loss = losses.SmoothAPLoss(temperature=t)
    value = loss(e, y)
    value.backward()
    ed = e.detach()
    per = loss.compute_loss(ed, y, None, ed, y)["ap_loss"]["losses"].flatten()
    return {
        "name": name, "description": description, "loss": "smooth-ap",
        "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": {"temperature": t}, "distance": cos,
                   "reducer": {"type": "MeanReducer"}},
        "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist(), "naive_loss": naive(x, labels, t),
                    "term_counts": {"ap_loss": {"terms": int(per.numel()), "nonzero": int((per > 0).sum())}},
                    "sub_losses": {"ap_loss": float(per.mean())}},
    }


cases = [
    case("smooth_ap_default", "PML `SmoothAPLoss()` (temperature 0.01), 4 classes of 4 consecutive rows, `CosineSimilarity()`; MeanReducer over rows.",
         rng.normal(size=(16, 8)), [c for c in range(4) for _ in range(4)], 0.01),
    case("smooth_ap_temperature", "PML `SmoothAPLoss(temperature=0.1)`, 5 classes of 5 consecutive rows.",
         rng.normal(size=(25, 6)), [c for c in (3, 0, 7, 1, 2) for _ in range(5)], 0.1),
    case("smooth_ap_pairs", "PML `SmoothAPLoss(temperature=0.05)`, 2 classes of 2 rows.",
         rng.normal(size=(4, 5)), [1, 1, 0, 0], 0.05),
    case("smooth_ap_singletons", "PML `SmoothAPLoss(temperature=0.1)`, 1 class of 1 row: each anchor is its class's only member.",
         rng.normal(size=(1, 5)), [4], 0.1),
]
for c in cases:
    assert abs(c["outputs"]["loss"] - c["outputs"]["naive_loss"]) < 1e-12, c["name"]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_smooth_ap.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/smooth_ap.json", "w"))
print(len(cases), "cases")
