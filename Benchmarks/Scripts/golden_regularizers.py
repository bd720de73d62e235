"""Golden values for PML's regularizers, alone and attached to losses, in float64.

Writes Tests/DMLLossesTests/Golden/regularizers.json: for each regularizer its value and gradient on
fixed inputs; for losses with `embedding_regularizer` or `weight_regularizer`, the total loss and
the gradients of the embeddings and of the class weights or proxies (classes x dimension, the
transpose of PML's ArcFace `W`). Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_regularizers.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, regularizers

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261204)

def regularizer_case(name, description, make, x, hyper):
    reg = make()
    t = torch.tensor(x, requires_grad=True)
    value = reg(t)
    value.backward()
    return {"name": name, "description": description, "inputs": {"x": x.tolist(), "hyperparameters": hyper},
            "outputs": {"loss": value.item(), "grad_x": t.grad.tolist()}}

x = rng.normal(size=(8, 5))
x_zero = x.copy(); x_zero[3] = 0.0
w = rng.normal(size=(6, 5))
cases = [
    regularizer_case("lp_default", "LpRegularizer() (p 2, power 1): mean of row norms.", regularizers.LpRegularizer, x, {"p": 2, "power": 1}),
    regularizer_case("lp_p1_power2", "LpRegularizer(p=1, power=2), a zero row included (its gradient is 0).",
                     lambda: regularizers.LpRegularizer(p=1, power=2), x_zero, {"p": 1, "power": 2}),
    regularizer_case("lp_p3", "LpRegularizer(p=3, power=0.5).", lambda: regularizers.LpRegularizer(p=3, power=0.5), x, {"p": 3, "power": 0.5}),
    regularizer_case("zero_mean", "ZeroMeanRegularizer(): mean of |row sums|.", regularizers.ZeroMeanRegularizer, x, {}),
    regularizer_case("center_invariant", "CenterInvariantRegularizer() on 6 class weights.", regularizers.CenterInvariantRegularizer, w, {}),
    regularizer_case("regular_face", "RegularFaceRegularizer() on 6 class weights.", regularizers.RegularFaceRegularizer, w, {}),
    regularizer_case("sparse_centers", "SparseCentersRegularizer(num_classes=3, centers_per_class=2) on 6 centers.",
                     lambda: regularizers.SparseCentersRegularizer(num_classes=3, centers_per_class=2), w, {"num_classes": 3, "centers_per_class": 2}),
]

def loss_case(name, description, loss, e, labels, hyper, weights=None, weight_attr=None, transpose=False):
    if weights is not None:
        p = getattr(loss, weight_attr)
        with torch.no_grad():
            p.copy_(torch.tensor(weights.T if transpose else weights))
    t = torch.tensor(e, requires_grad=True)
    value = loss(t, torch.tensor(labels))
    value.backward()
    out = {"loss": value.item(), "grad_embeddings": t.grad.tolist()}
    if weights is not None:
        g = getattr(loss, weight_attr).grad
        out["grad_weights"] = (g.T if transpose else g).tolist()
    inputs = {"embeddings": e.tolist(), "labels": labels, "hyperparameters": hyper}
    if weights is not None: inputs["weights"] = weights.tolist()
    return {"name": name, "description": description, "inputs": inputs, "outputs": out}

e = rng.normal(size=(12, 8))
labels = [int(v) for v in rng.integers(0, 4, size=12)]
cw = rng.normal(size=(4, 8)) * 0.5
cases += [
    loss_case("contrastive_lp", "ContrastiveLoss() with embedding_regularizer=LpRegularizer(), embedding_reg_weight=0.3.",
              losses.ContrastiveLoss(embedding_regularizer=regularizers.LpRegularizer(), embedding_reg_weight=0.3), e, labels,
              {"loss": "contrastive", "embedding_regularizer": "lp", "embedding_reg_weight": 0.3}),
    loss_case("arcface_regular_face", "ArcFaceLoss(4, 8) with weight_regularizer=RegularFaceRegularizer(), weight_reg_weight=0.5, and embedding_regularizer=ZeroMeanRegularizer(), embedding_reg_weight=0.1.",
              losses.ArcFaceLoss(4, 8, weight_regularizer=regularizers.RegularFaceRegularizer(), weight_reg_weight=0.5,
                                 embedding_regularizer=regularizers.ZeroMeanRegularizer(), embedding_reg_weight=0.1),
              e, labels, {"loss": "arcface", "weight_regularizer": "regular-face", "weight_reg_weight": 0.5,
                          "embedding_regularizer": "zero-mean", "embedding_reg_weight": 0.1},
              weights=cw, weight_attr="W", transpose=True),
    loss_case("proxy_anchor_center_invariant", "ProxyAnchorLoss(4, 8) with weight_regularizer=CenterInvariantRegularizer(), weight_reg_weight=0.2.",
              losses.ProxyAnchorLoss(4, 8, weight_regularizer=regularizers.CenterInvariantRegularizer(), weight_reg_weight=0.2),
              e, labels, {"loss": "proxy-anchor", "weight_regularizer": "center-invariant", "weight_reg_weight": 0.2},
              weights=cw, weight_attr="proxies"),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_regularizers.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/regularizers.json", "w"), indent=1)
print("wrote", len(cases), "cases")
