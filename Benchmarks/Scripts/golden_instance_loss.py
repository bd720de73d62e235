"""Golden values for InstanceLoss from pytorch-metric-learning, in float64.

Writes Tests/DMLLossesTests/Golden/instance_loss.json (embeddings, labels, gamma; loss and the
embedding gradient). Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_instance_loss.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261207)

def case(name, description, x, labels, gamma):
    t = torch.tensor(x, requires_grad=True)
    value = losses.InstanceLoss(gamma=gamma)(t, torch.tensor(labels))
    value.backward()
    return {"name": name, "description": description,
            "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": {"gamma": gamma}},
            "outputs": {"loss": value.item(), "grad_embeddings": t.grad.tolist()}}

x = rng.normal(size=(10, 6))
cases = [
    case("instance_labels", "InstanceLoss() with instance labels 0..9 in order: each row's target is itself.", x, list(range(10)), 64),
    case("instance_classes", "InstanceLoss(gamma=8) with class labels: the target is the column of the label's rank.",
         x, [int(v) for v in rng.integers(0, 4, size=10)], 8),
    case("instance_single_class", "InstanceLoss(gamma=16), every row labelled 3: every target is column 0.", x, [3] * 10, 16),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_instance_loss.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/instance_loss.json", "w"), indent=1)
print("wrote", len(cases), "cases")
