"""Golden index sets for BatchEasyHardMiner from pytorch-metric-learning, in float64.

Writes Tests/DMLSamplersTests/Golden/batch_easy_hard.json: the inputs, then each strategy pair's
mined positive and negative pairs (PML's (a1, p, a2, n)). Run from the repository root with the
benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_batch_easy_hard.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import miners, distances

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261206)
x = rng.normal(size=(24, 8))
labels = [int(v) for v in rng.integers(0, 5, size=24)]
e, y = torch.tensor(x), torch.tensor(labels)
cases = []
for distance_name, distance in [("euclidean", distances.LpDistance()), ("cosine", distances.CosineSimilarity())]:
    for pos in ["easy", "semihard", "hard", "all"]:
        for neg in ["easy", "semihard", "hard", "all"]:
            try:
                miner = miners.BatchEasyHardMiner(pos_strategy=pos, neg_strategy=neg, distance=distance)
            except ValueError:
                continue
            a1, p, a2, n = miner(e, y)
            cases.append({"name": f"{distance_name}_{pos}_{neg}", "distance": distance_name, "pos_strategy": pos, "neg_strategy": neg,
                          "pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, n], 1).tolist()})
for name, kwargs, distance_name in [
    ("euclidean_hard_hard_ranges", {"pos_strategy": "hard", "neg_strategy": "hard", "allowed_pos_range": (0.3, 1.2), "allowed_neg_range": (0.5, 1.6)}, "euclidean"),
    ("cosine_easy_semihard_ranges", {"pos_strategy": "easy", "neg_strategy": "semihard", "allowed_pos_range": (-0.2, 0.9), "allowed_neg_range": (-0.5, 0.6),
                                     "distance": distances.CosineSimilarity()}, "cosine"),
]:
    a1, p, a2, n = miners.BatchEasyHardMiner(**kwargs)(e, y)
    ranges = {k: list(v) for k, v in kwargs.items() if k.startswith("allowed")}
    cases.append({"name": name, "distance": distance_name, "pos_strategy": kwargs["pos_strategy"], "neg_strategy": kwargs["neg_strategy"],
                  **ranges, "pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, n], 1).tolist()})
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_batch_easy_hard.py)",
           "embeddings": x.tolist(), "labels": labels, "cases": cases}, open("Tests/DMLSamplersTests/Golden/batch_easy_hard.json", "w"), indent=1)
for c in cases: print(c["name"], len(c["pos_pairs"]), len(c["neg_pairs"]))
