"""Golden values for PML's ManifoldLoss, in float64.

Writes Tests/DMLLossesTests/Golden/manifold.json: per case the embeddings, the proxies, the meta-class
of each row (PML's `indices_tuple` for this loss), the hyperparameters, the loss, and the gradients
of the embeddings and of the proxies. PML inverts I - alpha S in float32 even for float64 input
(`.float()` before `torch.inverse`); the generator lets the inverse run in float64 (it makes
`Tensor.float` the identity during the call) and records what float32 changes in
`float32_inverse_effect`. Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_manifold.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261213)


def run(x, proxies, meta, kwargs, float64_inverse):
    loss = losses.ManifoldLoss(l=x.shape[1], K=proxies.shape[0], **kwargs)
    loss.proxies.data = torch.tensor(proxies)
    e = torch.tensor(x, requires_grad=True)
    original = torch.Tensor.float
    if float64_inverse:
        torch.Tensor.float = lambda self: self
    try:
        value = loss(e, indices_tuple=torch.tensor(meta))
    finally:
        torch.Tensor.float = original
    value.backward()
    return value.item(), e.grad, loss.proxies.grad


def case(name, description, n, d, k, kwargs, spread=1.0):
    x = spread * rng.normal(size=(n, d))
    proxies = rng.normal(size=(k, d))
    meta = [int(v) for v in np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])[rng.permutation(n)]]
    value, ge, gp = run(x, proxies, meta, kwargs, True)
    value32, _, _ = run(x, proxies, meta, kwargs, False)
    return {
        "name": name, "description": description, "loss": "manifold",
        "inputs": {"embeddings": x.tolist(), "proxies": proxies.tolist(), "meta_classes": meta,
                   "hyperparameters": dict(kwargs, K=k, l=d)},
        "outputs": {"loss": value, "grad_embeddings": ge.tolist(), "grad_proxies": gp.tolist(),
                    "float32_inverse_effect": abs(value - value32)},
    }


cases = [
    case("manifold_default", "PML `ManifoldLoss(l=8, K=5)` (lambdaC 1, alpha 0.8, margin 5e-4), 16 rows with given meta-classes.", 16, 8, 5, {}),
    case("manifold_params", "PML `ManifoldLoss(l=6, K=4, lambdaC=0.3, alpha=0.5, margin=0.05)`, 12 rows.", 12, 6, 4,
         {"lambdaC": 0.3, "alpha": 0.5, "margin": 0.05}),
    case("manifold_intrinsic_only", "PML `ManifoldLoss(l=8, K=6, lambdaC=0)`: the intrinsic term alone, 20 rows.", 20, 8, 6, {"lambdaC": 0.0}),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_manifold.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/manifold.json", "w"))
print(len(cases), "cases", [(c["name"], round(c["outputs"]["loss"], 8), c["outputs"]["float32_inverse_effect"]) for c in cases])
