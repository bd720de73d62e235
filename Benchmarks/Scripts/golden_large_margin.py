"""Golden values for PML's LargeMarginSoftmaxLoss and SphereFaceLoss, in float64.

Writes Tests/DMLLossesTests/Golden/large_margin.json: per case the embeddings, labels, the class
weights (PML's W, embedding_size x num_classes), the loss, the embeddings' gradient and W's gradient.
`naive_loss` is the papers' formula written out in numpy (cos(m theta) from the angle itself).
Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_large_margin.py
"""
import json, math, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261209)


def naive(x, labels, W, m, s, sphere):
    xn = np.linalg.norm(x, axis=1)
    wn = np.linalg.norm(W, axis=0)
    cos = (x / xn[:, None]) @ (W / wn[None, :])
    total = 0.0
    for i, y in enumerate(labels):
        theta = math.acos(max(-1, min(1, cos[i, y])))
        k = math.floor(theta * m / math.pi)
        a = cos[i].copy()
        a[y] = (-1) ** k * math.cos(m * theta) - 2 * k
        logits = s * xn[i] * a * (1 if sphere else wn)
        top = logits.max()
        total += math.log(np.exp(logits - top).sum()) + top - logits[y]
    return total / len(labels)


def case(name, description, cls, x, labels, classes, m, s):
    loss = cls(num_classes=classes, embedding_size=x.shape[1], margin=m, scale=s)
    W = rng.normal(size=(x.shape[1], classes)) * rng.uniform(0.5, 2, size=(1, classes))
    loss.W.data = torch.tensor(W)
    e = torch.tensor(x, requires_grad=True)
    value = loss(e, torch.tensor(labels))
    value.backward()
    sphere = cls is losses.SphereFaceLoss
    return {
        "name": name, "description": description, "loss": "sphereface" if sphere else "large-margin-softmax",
        "inputs": {"embeddings": x.tolist(), "labels": labels, "weights": W.tolist(),
                   "hyperparameters": {"num_classes": classes, "margin": m, "scale": s}},
        "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist(), "grad_weights": loss.W.grad.tolist(),
                    "naive_loss": naive(x, labels, W, m, s, sphere)},
    }


x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 5, size=16)]
cases = [
    case("large_margin_default", "PML `LargeMarginSoftmaxLoss(num_classes=5, embedding_size=8)` (margin 4, scale 1), given W; MeanReducer.",
         losses.LargeMarginSoftmaxLoss, x, labels, 5, 4, 1),
    case("large_margin_m2_s3", "PML `LargeMarginSoftmaxLoss(margin=2, scale=3)`.", losses.LargeMarginSoftmaxLoss, x, labels, 5, 2, 3),
    case("large_margin_m3", "PML `LargeMarginSoftmaxLoss(margin=3, scale=0.5)` (an odd margin), 24 rows of 7 classes.",
         losses.LargeMarginSoftmaxLoss, rng.normal(size=(24, 6)), [int(v) for v in rng.integers(0, 7, size=24)], 7, 3, 0.5),
    case("sphereface_default", "PML `SphereFaceLoss(num_classes=5, embedding_size=8)` (margin 4, scale 1), given W.",
         losses.SphereFaceLoss, x, labels, 5, 4, 1),
    case("sphereface_m1_s2", "PML `SphereFaceLoss(margin=1, scale=2)`: no margin, the normalised-weight softmax.",
         losses.SphereFaceLoss, x, labels, 5, 1, 2),
    case("sphereface_one_class", "PML `SphereFaceLoss(num_classes=1)`: one class, loss 0.", losses.SphereFaceLoss, rng.normal(size=(4, 5)), [0] * 4, 1, 4, 1),
]
for c in cases:
    o = c["outputs"]
    assert abs(o["loss"] - o["naive_loss"]) <= 1e-10 * max(1, abs(o["loss"])), (c["name"], o["loss"], o["naive_loss"])
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_large_margin.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/large_margin.json", "w"))
print(len(cases), "cases", [(c["name"], round(c["outputs"]["loss"], 5)) for c in cases])
