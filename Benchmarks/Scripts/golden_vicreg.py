"""Golden values for PML's VICRegLoss, in float64.

Writes Tests/DMLLossesTests/Golden/vicreg.json: two views `embeddings` and `ref_emb` of the same
samples, PML's loss on them (`loss(embeddings, ref_emb=ref_emb)`), each of its four sub-losses and
the gradients of both views. Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_vicreg.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261207)


def case(name, description, z, z2, hyper):
    a = torch.tensor(z, requires_grad=True)
    b = torch.tensor(z2, requires_grad=True)
    loss = losses.VICRegLoss(**hyper)
    value = loss(a, ref_emb=b)
    value.backward()
    parts = loss.compute_loss(a.detach(), None, None, b.detach(), None)
    sub = {k: float(v["losses"].mean()) for k, v in parts.items()}
    return {
        "name": name, "description": description, "loss": "vicreg",
        "inputs": {"embeddings": z.tolist(), "ref_emb": z2.tolist(), "hyperparameters": hyper},
        "outputs": {"loss": value.item(), "sub_losses": sub, "grad_embeddings": a.grad.tolist(), "grad_ref_emb": b.grad.tolist()},
    }


z = rng.normal(size=(12, 6))
cases = [
    case("vicreg_default", "PML `VICRegLoss()` (λ 25, μ 25, ν 1, ε 1e-4) on two noisy views of 12 samples of 6 features.",
         0.3 * z, 0.3 * z + 0.1 * rng.normal(size=(12, 6)), {"invariance_lambda": 25, "variance_mu": 25, "covariance_v": 1, "eps": 1e-4}),
    case("vicreg_weights", "PML `VICRegLoss(invariance_lambda=5, variance_mu=10, covariance_v=2, eps=1e-3)`, views of 9 samples of 4 features, some spread above 1.",
         rng.normal(size=(9, 4)) * np.array([0.2, 2.0, 0.5, 1.5]), rng.normal(size=(9, 4)), {"invariance_lambda": 5, "variance_mu": 10, "covariance_v": 2, "eps": 1e-3}),
    case("vicreg_two_samples", "PML `VICRegLoss()` on the smallest batch: two samples.",
         rng.normal(size=(2, 5)), rng.normal(size=(2, 5)), {"invariance_lambda": 25, "variance_mu": 25, "covariance_v": 1, "eps": 1e-4}),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_vicreg.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/vicreg.json", "w"))
print(len(cases), "cases")
