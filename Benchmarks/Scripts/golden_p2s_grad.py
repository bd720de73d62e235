"""Golden values for PML's P2SGradLoss, in float64.

Writes Tests/DMLLossesTests/Golden/p2s_grad.json: embeddings, labels and unit-column weights
(PML's `weight`, descriptors_dim x num_classes), the loss, the embeddings' gradient and PML's weight
gradient. PML renormalises the weights with `torch.renorm(2, 1, 1e-5) * 1e5` before each pass,
which divides each column by its norm plus 1e-7 (torch's guard), leaving norms of 1 − 1e-7 and
cosines 1e-7 too small; this script replaces that renormalisation by an exact one, so the values
are PML's formula with unit weights (`renorm_epsilon_effect` records what the guard changes in the
loss). Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_p2s_grad.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261208)


exact = lambda t, p, dim, maxnorm: t / t.norm(p=p, dim=dim, keepdim=True) * maxnorm
original = torch.Tensor.renorm


def case(name, description, x, labels, classes):
    d = x.shape[1]
    loss = losses.P2SGradLoss(descriptors_dim=d, num_classes=classes)
    w = rng.normal(size=(d, classes))
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    loss.weight.data = torch.tensor(w)
    with torch.no_grad():
        guarded = loss(torch.tensor(x), torch.tensor(labels)).item()
    loss.weight.data = torch.tensor(w)
    torch.Tensor.renorm = lambda t, p, dim, maxnorm: exact(t, p, 1 - dim, maxnorm)
    try:
        e = torch.tensor(x, requires_grad=True)
        value = loss(e, torch.tensor(labels))
        value.backward()
    finally:
        torch.Tensor.renorm = original
    return {
        "name": name, "description": description, "loss": "p2s-grad",
        "inputs": {"embeddings": x.tolist(), "labels": labels, "weights": loss.weight.data.tolist(), "hyperparameters": {"classes": classes}},
        "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist(), "grad_weights": loss.weight.grad.tolist(),
                    "renorm_epsilon_effect": guarded - value.item()},
    }


cases = [
    case("p2s_grad_default", "PML `P2SGradLoss(descriptors_dim=8, num_classes=5)` with given unit-column weights, 16 rows.",
         rng.normal(size=(16, 8)), [int(v) for v in rng.integers(0, 5, size=16)], 5),
    case("p2s_grad_one_class", "PML `P2SGradLoss` with one class: every row's target is 1.",
         rng.normal(size=(6, 4)), [0] * 6, 1),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_p2s_grad.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/p2s_grad.json", "w"))
print(len(cases), "cases")
