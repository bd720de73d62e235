"""Golden values for PML's CircleLoss, in float64.

Writes Tests/DMLLossesTests/Golden/circle.json in the layout of pair_losses.json. PML (like the
paper's code) holds the pair weights alpha constant in the gradient; each case also records
`naive_loss`, the paper's formula written out in torch, and `grad_exact`, the exact derivative of
that formula (alpha included), which the library computes with detach_weights=false.
PML's `torch.nn.Softplus()` returns z itself above z = 20 (its threshold), off the exact
log(1 + exp(z)) by up to 2e-9; the cases replace it by an exact softplus (torch.logaddexp(0, z)) and record
what the threshold changes in `threshold_effect` (the largest difference in the loss and the gradient).
Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_circle.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261207)
cos = {"type": "CosineSimilarity", "normalize_embeddings": True, "is_inverted": True}


class ExactSoftplus(torch.nn.Module):
    def forward(self, z):
        return torch.logaddexp(torch.zeros_like(z), z)


def naive(e, labels, m, gamma, pairs=None):
    """Sun et al.'s loss per anchor, the mean over anchors with a positive and a negative."""
    x = e / e.norm(dim=1, keepdim=True)
    s = x @ x.T
    y = torch.tensor(labels)
    n = len(labels)
    pos = (y[:, None] == y[None, :]) & ~torch.eye(n, dtype=torch.bool)
    neg = y[:, None] != y[None, :]
    if pairs is not None:
        a1, p, a2, q = pairs
        pos = torch.zeros(n, n, dtype=torch.bool); pos[a1, p] = True
        neg = torch.zeros(n, n, dtype=torch.bool); neg[a2, q] = True
    terms = []
    for i in range(n):
        if not pos[i].any() or not neg[i].any():
            continue
        sp, sn = s[i][pos[i]], s[i][neg[i]]
        lp = torch.logsumexp(-gamma * torch.relu(1 + m - sp) * (sp - (1 - m)), 0)
        ln = torch.logsumexp(gamma * torch.relu(sn + m) * (sn - m), 0)
        terms.append(torch.logaddexp(torch.zeros(()), lp + ln))
    return torch.stack(terms).mean() if terms else e.sum() * 0


def case(name, description, x, labels, m, gamma, miner=None):
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    loss = losses.CircleLoss(m=m, gamma=gamma)
    pairs = miner(e, y) if miner is not None else None
    e0 = torch.tensor(x, requires_grad=True)
    value0 = loss(e0, y, pairs)
    value0.backward()
    loss.soft_plus = ExactSoftplus()
    value = loss(e, y, pairs)
    value.backward()
    effect = {"loss": abs(value.item() - value0.item()), "grad_embeddings": float((e.grad - e0.grad).abs().max())}
    ed = e.detach()
    per = loss.compute_loss(ed, y, pairs, ed, y)["loss"]["losses"].flatten()
    e2 = torch.tensor(x, requires_grad=True)
    exact = naive(e2, labels, m, gamma, pairs)
    exact.backward()
    hyper = {"m": m, "gamma": gamma}
    inputs = {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": cos,
              "reducer": {"type": "AvgNonZeroReducer"}}
    if pairs is not None:
        a1, p, a2, q = pairs
        inputs["indices_tuple"] = {"pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, q], 1).tolist()}
    return {
        "name": name, "description": description, "loss": "circle", "inputs": inputs,
        "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist(), "naive_loss": exact.item(), "grad_exact": e2.grad.tolist(), "threshold_effect": effect,
                    "term_counts": {"loss": {"terms": int(per.numel()), "nonzero": int((per > 0).sum())}},
                    "sub_losses": {"loss": float(per[per > 0].mean()) if (per > 0).any() else 0.0}},
    }


x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
x32 = rng.normal(size=(32, 8))
labels32 = [int(v) for v in rng.integers(0, 6, size=32)]
cases = [
    case("circle_default", "PML `CircleLoss()` (m 0.4, gamma 80), `CosineSimilarity()`; AvgNonZeroReducer over rows.", x, labels, 0.4, 80),
    case("circle_faces", "PML `CircleLoss(m=0.25, gamma=256)` (the paper's face-recognition setting).", x, labels, 0.25, 256),
    case("circle_small_gamma", "PML `CircleLoss(m=0.3, gamma=8)`, 32 rows of 6 classes.", x32, labels32, 0.3, 8),
    case("circle_with_miner", "PML `CircleLoss()` on the pairs of `MultiSimilarityMiner(epsilon=0.1)`.", x32, labels32, 0.4, 80,
         miner=miners.MultiSimilarityMiner(epsilon=0.1)),
    case("circle_single_class", "PML `CircleLoss()` with one label: no negatives, loss 0.", rng.normal(size=(6, 5)), [3] * 6, 0.4, 80),
]
for c in cases:
    assert abs(c["outputs"]["loss"] - c["outputs"]["naive_loss"]) <= 1e-12 * max(1, abs(c["outputs"]["loss"])), c["name"]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_circle.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/circle.json", "w"))
print(len(cases), "cases", [(c["name"], round(c["outputs"]["loss"], 6), c["outputs"]["threshold_effect"]) for c in cases])
