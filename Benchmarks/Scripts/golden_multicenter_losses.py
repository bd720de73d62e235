"""Golden values for SubCenterArcFaceLoss and SoftTripleLoss from pytorch-metric-learning, in float64.

Writes Tests/DMLLossesTests/Golden/multicenter_losses.json: inputs (embeddings, labels, the centers
as classes*K x dimension rows, the transpose of PML's W and fc), then the loss and the gradients of
the embeddings and of the centers. Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_multicenter_losses.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, regularizers

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261206)

def case(name, description, loss, attr, centers, e, labels, hyper):
    with torch.no_grad():
        getattr(loss, attr).copy_(torch.tensor(centers.T))
    t = torch.tensor(e, requires_grad=True)
    value = loss(t, torch.tensor(labels))
    value.backward()
    return {"name": name, "description": description,
            "inputs": {"embeddings": e.tolist(), "labels": labels, "centers": centers.tolist(), "hyperparameters": hyper},
            "outputs": {"loss": value.item(), "grad_embeddings": t.grad.tolist(), "grad_centers": getattr(loss, attr).grad.T.tolist()}}

e = rng.normal(size=(10, 6))
labels = [int(v) for v in rng.integers(0, 3, size=10)]
single = [1] * 10
c3 = rng.normal(size=(9, 6))       # 3 classes x 3 sub-centers
c4 = rng.normal(size=(12, 6))      # 3 classes x 4 centers
cases = [
    case("subcenter_default", "SubCenterArcFaceLoss(num_classes=3, embedding_size=6) (margin 28.6, scale 64, 3 sub-centers).",
         losses.SubCenterArcFaceLoss(num_classes=3, embedding_size=6), "W", c3, e, labels, {"margin": 28.6, "scale": 64, "sub_centers": 3}),
    case("subcenter_custom", "SubCenterArcFaceLoss(num_classes=3, embedding_size=6, margin=10, scale=8, sub_centers=4).",
         losses.SubCenterArcFaceLoss(num_classes=3, embedding_size=6, margin=10, scale=8, sub_centers=4), "W", c4, e, labels,
         {"margin": 10, "scale": 8, "sub_centers": 4}),
    case("softtriple_default", "SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=3) (la 20, gamma 0.1, margin 0.01).",
         losses.SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=3), "fc", c3, e, labels,
         {"centers_per_class": 3, "la": 20, "gamma": 0.1, "margin": 0.01}),
    case("softtriple_custom", "SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=4, la=5, gamma=0.5, margin=0.2).",
         losses.SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=4, la=5, gamma=0.5, margin=0.2), "fc", c4, e, labels,
         {"centers_per_class": 4, "la": 5, "gamma": 0.5, "margin": 0.2}),
    case("softtriple_sparse_centers", "SoftTripleLoss(3, 6, centers_per_class=4) with weight_regularizer=SparseCentersRegularizer(3, 4), weight_reg_weight=0.5.",
         losses.SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=4,
                               weight_regularizer=regularizers.SparseCentersRegularizer(3, 4), weight_reg_weight=0.5), "fc", c4, e, labels,
         {"centers_per_class": 4, "la": 20, "gamma": 0.1, "margin": 0.01, "weight_regularizer": "sparse-centers", "weight_reg_weight": 0.5}),
    case("softtriple_single_class", "SoftTripleLoss(3, 6, centers_per_class=3), every row of class 1.",
         losses.SoftTripleLoss(num_classes=3, embedding_size=6, centers_per_class=3), "fc", c3, e, single,
         {"centers_per_class": 3, "la": 20, "gamma": 0.1, "margin": 0.01}),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_multicenter_losses.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/multicenter_losses.json", "w"), indent=1)
print("wrote", len(cases), "cases")
