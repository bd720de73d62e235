"""Reference values for the Poincaré-ball distance (Hyp-ViT, Ermolov et al. 2022), in float64.

Neither PML nor OML has a hyperbolic distance: this script writes it in torch as hyptorch (the
Hyp-ViT authors' library) does: feature clipping at norm r (Guo et al. 2022), the exponential map at
0, hyptorch's projection into the ball, and the distance 2/sqrt(c) artanh(sqrt(c) |(-x) (+)_c y|) of
its Moebius addition (the library computes the equivalent arcosh form from one GEMM). Writes
Tests/DMLLossesTests/Golden/poincare.json in the layout of distances.json, with autograd's
vector-Jacobian products. Run from the repository root with the benchmark venv:
.build-bench/venv/bin/python Benchmarks/Scripts/golden_poincare.py
"""
import json, platform
import numpy as np, torch

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261212)


def to_ball(x, c, r):
    if r > 0:
        norm = x.norm(dim=-1, keepdim=True)
        x = x * torch.minimum(torch.ones_like(norm), r / norm)
    sc = c ** 0.5
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-5)
    u = torch.tanh(sc * norm) * x / (sc * norm)
    norm = u.norm(dim=-1, keepdim=True).clamp_min(1e-5)
    maxnorm = (1 - 1e-3) / sc
    return torch.where(norm > maxnorm, u / norm * maxnorm, u)


def mobius_add_batch(x, y, c):
    xy = torch.einsum("ij,kj->ik", (x, y))
    x2 = x.pow(2).sum(-1, keepdim=True)
    y2 = y.pow(2).sum(-1, keepdim=True)
    num = 1 + 2 * c * xy + c * y2.permute(1, 0)
    num = num.unsqueeze(2) * x.unsqueeze(1)
    num = num + (1 - c * x2).unsqueeze(2) * y
    denom = 1 + 2 * c * xy + c ** 2 * x2 * y2.permute(1, 0)
    return num / (denom.unsqueeze(2) + 1e-15)


def dist_matrix(x, y, c):
    sc = c ** 0.5
    return 2 / sc * torch.atanh(sc * torch.norm(mobius_add_batch(-x, y, c), dim=-1).clamp(max=(1 - 1e-15) / sc))


def case(name, c, r, scale):
    q = scale * rng.normal(size=(12, 8))
    ref = scale * rng.normal(size=(5, 8))
    cs = rng.normal(size=(12, 12))
    cr = rng.normal(size=(12, 5))
    qt = torch.tensor(q, requires_grad=True)
    b = to_ball(qt, c, r)
    m_self = dist_matrix(b, b, c)
    # The diagonal: a point is 0 from itself (the Moebius sum is exactly 0 there); its gradient 0.
    m_self = m_self * (1 - torch.eye(12))
    (m_self * torch.tensor(cs)).sum().backward()
    g_self = qt.grad.clone()
    qt2 = torch.tensor(q, requires_grad=True)
    rt = torch.tensor(ref, requires_grad=True)
    m_ref = dist_matrix(to_ball(qt2, c, r), to_ball(rt, c, r), c)
    (m_ref * torch.tensor(cr)).sum().backward()
    return {
        "name": name,
        "inputs": {"distance": {"type": "Poincare", "c": c, "clip_r": r, "is_inverted": False}, "query": q.tolist(), "reference": ref.tolist(),
                   "cotangent_self": cs.tolist(), "cotangent_ref": cr.tolist()},
        "outputs": {"matrix_self": m_self.tolist(), "matrix_ref": m_ref.tolist(), "grad_self": g_self.tolist(),
                    "grad_query_ref": qt2.grad.tolist(), "grad_reference_ref": rt.grad.tolist()},
    }


cases = [
    case("poincare_hypvit", 0.1, 2.3, 1.0),           # Hyp-ViT's c and clipping; rows of norm ~2.8 are clipped
    case("poincare_unit_c_no_clip", 1.0, 0.0, 0.2),    # c = 1, no clipping, points well inside the ball
    case("poincare_projected", 1.0, 0.0, 2.0),         # no clipping, far rows: hyptorch's projection to the ball's edge
    case("poincare_small_rows", 0.5, 3.0, 0.3),        # clipping radius above every row: no clipping happens
]
json.dump({"generator": f"torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_poincare.py, hyptorch's formulas)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/poincare.json", "w"))
print(len(cases), "cases")
