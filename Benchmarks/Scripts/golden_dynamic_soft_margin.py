"""Golden values for PML's DynamicSoftMarginLoss, in float64.

Writes Tests/DMLLossesTests/Golden/dynamic_soft_margin.json. Each case is a sequence of batches fed
to one loss object (its running histogram carries over): per batch the embeddings, labels, the
loss, `grad_embeddings` with the histogram held constant in the gradient (the paper's running
statistic; the script detaches it), `grad_embeddings_pml` (PML's own, through the histogram's bin
fractions; its first batch only: PML 2.9.0 cannot backpropagate a second batch, the first one's
graph being freed) and the histogram after the batch. Run from the repository root with the
benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_dynamic_soft_margin.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261211)


class Detached(losses.DynamicSoftMarginLoss):
    """PML's loss with its histogram kept out of the graph (the paper's weights)."""
    def update_histogram(self, data):
        super().update_histogram(data.detach())
        self.hist_ = self.hist_.detach()


def sequence(name, description, batches, kwargs, miner=None):
    ours = Detached(**kwargs)
    theirs = losses.DynamicSoftMarginLoss(**kwargs)
    steps = []
    for k, (x, labels) in enumerate(batches):
        y = torch.tensor(labels)
        e = torch.tensor(x, requires_grad=True)
        tuples = miner(e, y) if miner is not None else None
        value = ours(e, y, tuples)
        value.backward()
        step = {"embeddings": x.tolist(), "labels": labels, "loss": value.item(),
                "grad_embeddings": (e.grad if e.grad is not None else torch.zeros_like(e)).tolist(),
                "histogram": ours.hist_.tolist()}
        if tuples is not None:
            a1, p, a2, n = tuples
            step["indices_tuple"] = {"pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, n], 1).tolist()}
        if k == 0:
            e2 = torch.tensor(x, requires_grad=True)
            v2 = theirs(e2, y, tuples)
            v2.backward()
            assert abs(v2.item() - value.item()) <= 1e-12 * max(1, abs(value.item()))
            step["grad_embeddings_pml"] = (e2.grad if e2.grad is not None else torch.zeros_like(e2)).tolist()
        steps.append(step)
    return {"name": name, "description": description, "loss": "dynamic-soft-margin",
            "inputs": {"hyperparameters": kwargs, "steps": steps}, "outputs": {}}


def batch(n, d, classes):
    return rng.normal(size=(n, d)), [int(v) for v in rng.integers(0, classes, size=n)]


cases = [
    sequence("dsm_default", "PML `DynamicSoftMarginLoss()` (min_val -2, 10 bins, momentum 0.01), three batches of 16 x 8, 4 classes.",
             [batch(16, 8, 4) for _ in range(3)], {"min_val": -2.0, "num_bins": 10, "momentum": 0.01}),
    sequence("dsm_bins_momentum", "PML `DynamicSoftMarginLoss(min_val=-2.5, num_bins=25, momentum=0.3)`, three batches of 20 x 6, 5 classes.",
             [batch(20, 6, 5) for _ in range(3)], {"min_val": -2.5, "num_bins": 25, "momentum": 0.3}),
    sequence("dsm_with_miner", "PML `DynamicSoftMarginLoss()` on the pairs of `MultiSimilarityMiner(epsilon=0.1)`, two batches of 24 x 8.",
             [batch(24, 8, 6) for _ in range(2)], {"min_val": -2.0, "num_bins": 10, "momentum": 0.01}, miner=miners.MultiSimilarityMiner(epsilon=0.1)),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_dynamic_soft_margin.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/dynamic_soft_margin.json", "w"))
print(len(cases), "cases", [(c["name"], [round(s["loss"], 6) for s in c["inputs"]["steps"]]) for c in cases])
