"""Golden values for PML's LpDistance with orders and powers other than the Euclidean ones, in float64.

Writes Tests/DMLLossesTests/Golden/lp_distances.json: distance cases in the layout of distances.json
(a 12x8 batch against itself and against 5 reference rows, with vector-Jacobian products), and loss
cases in the layout of losses.json: TripletMarginLoss and ContrastiveLoss on an Lp distance.
Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_lp_distance.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, distances

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261208)


def desc(p, power, normalize):
    return {"type": "LpDistance", "p": p, "power": power, "normalize_embeddings": normalize, "is_inverted": False}


def distance_case(name, p, power, normalize):
    dist = distances.LpDistance(p=p, power=power, normalize_embeddings=normalize)
    q = rng.normal(size=(12, 8))
    r = rng.normal(size=(5, 8))
    cs = rng.normal(size=(12, 12))
    cr = rng.normal(size=(12, 5))
    qt = torch.tensor(q, requires_grad=True)
    m_self = dist(qt)
    # The diagonal is 0 apart; PML's gradient there is torch.cdist's (0), and our value is exactly 0.
    (m_self * torch.tensor(cs)).sum().backward()
    g_self = qt.grad.clone()
    qt2 = torch.tensor(q, requires_grad=True)
    rt = torch.tensor(r, requires_grad=True)
    m_ref = dist(qt2, rt)
    (m_ref * torch.tensor(cr)).sum().backward()
    return {
        "name": name,
        "inputs": {"distance": desc(p, power, normalize), "query": q.tolist(), "reference": r.tolist(),
                   "cotangent_self": cs.tolist(), "cotangent_ref": cr.tolist()},
        "outputs": {"matrix_self": m_self.tolist(), "matrix_ref": m_ref.tolist(), "grad_self": g_self.tolist(),
                    "grad_query_ref": qt2.grad.tolist(), "grad_reference_ref": rt.grad.tolist()},
    }


def loss_case(name, loss_name, loss, hyper, p, power, x, labels):
    e = torch.tensor(x, requires_grad=True)
    value = loss(e, torch.tensor(labels))
    value.backward()
    return {
        "name": name, "loss": loss_name,
        "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": desc(p, power, True)},
        "outputs": {"loss": value.item(), "grad_embeddings": e.grad.tolist()},
    }


cases = [
    distance_case("lp_p1_power1_normalized", 1, 1, True),
    distance_case("lp_p3_power2_normalized", 3, 2, True),
    distance_case("lp_p1.5_power1_unnormalized", 1.5, 1, False),
    distance_case("lp_p2_power3_normalized", 2, 3, True),
    distance_case("lp_p4_power0.5_unnormalized", 4, 0.5, False),
]
x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
cases += [
    loss_case("triplet_l1", "triplet", losses.TripletMarginLoss(margin=0.2, distance=distances.LpDistance(p=1)), {"margin": 0.2}, 1, 1, x, labels),
    loss_case("contrastive_l3_squared", "contrastive",
              losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.6, distance=distances.LpDistance(p=3, power=2)),
              {"pos_margin": 0.1, "neg_margin": 0.6}, 3, 2, x, labels),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_lp_distance.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/lp_distances.json", "w"))
print(len(cases), "cases")
