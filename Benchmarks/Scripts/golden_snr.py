"""Golden values for PML's SNRDistance and SignalToNoiseRatioContrastiveLoss, in float64.

Writes Tests/DMLLossesTests/Golden/snr.json: distance cases in the layout of distances.json (a
12x8 batch against itself and against 5 reference rows, with vector-Jacobian products) and loss
cases in the layout of pair_losses.json. Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_snr.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners, distances

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261205)
snr = {"type": "SNRDistance", "normalize_embeddings": True, "is_inverted": False}
raw = {"type": "SNRDistance", "normalize_embeddings": False, "is_inverted": False}


def distance_case(name, dist, desc):
    q = rng.normal(size=(12, 8))
    r = rng.normal(size=(5, 8))
    cs = rng.normal(size=(12, 12))
    cr = rng.normal(size=(12, 5))
    qt = torch.tensor(q, requires_grad=True)
    m_self = dist(qt)
    (m_self * torch.tensor(cs)).sum().backward()
    g_self = qt.grad.clone()
    qt2 = torch.tensor(q, requires_grad=True)
    rt = torch.tensor(r, requires_grad=True)
    m_ref = dist(qt2, rt)
    (m_ref * torch.tensor(cr)).sum().backward()
    return {
        "name": name,
        "inputs": {"distance": desc, "query": q.tolist(), "reference": r.tolist(), "cotangent_self": cs.tolist(), "cotangent_ref": cr.tolist()},
        "outputs": {"matrix_self": m_self.tolist(), "matrix_ref": m_ref.tolist(), "grad_self": g_self.tolist(),
                    "grad_query_ref": qt2.grad.tolist(), "grad_reference_ref": rt.grad.tolist()},
    }


def loss_case(name, description, x, labels, loss, hyper, miner=None):
    e = torch.tensor(x, requires_grad=True)
    y = torch.tensor(labels)
    tuples = miner(e, y) if miner is not None else None
    value = loss(e, y, tuples)
    value.backward()
    g = e.grad if e.grad is not None else torch.zeros_like(e)
    ed = e.detach()
    computed = loss.compute_loss(ed, y, tuples, ed, y)
    counts, sub = {}, {}
    for key, d in computed.items():
        per = d["losses"]
        per = per.flatten() if torch.is_tensor(per) else torch.zeros(0)
        counts[key] = {"terms": int(per.numel()), "nonzero": int((per > 0).sum())}
        # The contrastive loss's AvgNonZeroReducer: each sub-loss is the mean of its non-zero terms.
        sub[key] = float(per[per > 0].mean()) if (per > 0).any() else 0.0
    out = {"loss": value.item(), "grad_embeddings": g.tolist(), "term_counts": counts, "sub_losses": sub}
    if miner is not None:
        a1, p, a2, n = tuples
        out["mined_pos_pairs"] = torch.stack([a1, p], 1).tolist()
        out["mined_neg_pairs"] = torch.stack([a2, n], 1).tolist()
        hyper = dict(hyper, miner={"type": type(miner).__name__, "epsilon": miner.epsilon})
    return {
        "name": name, "description": description, "loss": "snr-contrastive",
        "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": snr,
                   "reducer": {"type": "AvgNonZeroReducer"}},
        "outputs": out,
    }


cases = [
    distance_case("snr_normalized", distances.SNRDistance(), snr),
    distance_case("snr_unnormalized", distances.SNRDistance(normalize_embeddings=False), raw),
]
x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
x32 = rng.normal(size=(32, 8))
labels32 = [int(v) for v in rng.integers(0, 6, size=32)]
small = rng.normal(size=(6, 5))
cases += [
    loss_case("snr_contrastive_default", "PML `SignalToNoiseRatioContrastiveLoss()` (pos 0, neg 1), `SNRDistance()` on normalised rows; AvgNonZeroReducer per sub-loss.",
              x, labels, losses.SignalToNoiseRatioContrastiveLoss(), {"pos_margin": 0, "neg_margin": 1}),
    loss_case("snr_contrastive_margins", "PML `SignalToNoiseRatioContrastiveLoss(pos_margin=0.3, neg_margin=1.5)`.",
              x, labels, losses.SignalToNoiseRatioContrastiveLoss(pos_margin=0.3, neg_margin=1.5), {"pos_margin": 0.3, "neg_margin": 1.5}),
    loss_case("snr_contrastive_with_miner", "PML `SignalToNoiseRatioContrastiveLoss()` with the pairs of `MultiSimilarityMiner(epsilon=0.1)`.",
              x32, labels32, losses.SignalToNoiseRatioContrastiveLoss(), {"pos_margin": 0, "neg_margin": 1}, miner=miners.MultiSimilarityMiner(epsilon=0.1)),
    loss_case("snr_contrastive_single_class", "PML `SignalToNoiseRatioContrastiveLoss()` with one label: positive pairs only.",
              small, [2] * 6, losses.SignalToNoiseRatioContrastiveLoss(pos_margin=0.2), {"pos_margin": 0.2, "neg_margin": 1}),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_snr.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/snr.json", "w"))
print(len(cases), "cases")
