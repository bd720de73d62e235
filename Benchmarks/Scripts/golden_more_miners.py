"""Golden index sets for AngularMiner and HDCMiner from pytorch-metric-learning, in float64.

Writes Tests/DMLSamplersTests/Golden/more_miners.json. AngularMiner runs on unit-length rows (PML
measures the rows as given; the angle is defined on normalised ones). Run from the repository root
with the benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_more_miners.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import miners, distances

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261207)
x = rng.normal(size=(20, 6))
unit = x / np.linalg.norm(x, axis=1, keepdims=True)
labels = [int(v) for v in rng.integers(0, 4, size=20)]
y = torch.tensor(labels)
cases = []
for angle in [20, 35]:
    a, p, n = miners.AngularMiner(angle=angle)(torch.tensor(unit), y)
    cases.append({"name": f"angular_{angle}", "miner": "angular", "angle": angle, "unit_rows": True,
                  "triplets": torch.stack([a, p, n], 1).tolist()})
for name, fp, distance, dname in [("hdc_default", 0.5, distances.LpDistance(), "euclidean"),
                                  ("hdc_0.3_cosine", 0.3, distances.CosineSimilarity(), "cosine")]:
    a1, p, a2, n = miners.HDCMiner(filter_percentage=fp, distance=distance)(torch.tensor(x), y)
    cases.append({"name": name, "miner": "hdc", "filter_percentage": fp, "distance": dname, "unit_rows": False,
                  "pos_pairs": torch.stack([a1, p], 1).tolist(), "neg_pairs": torch.stack([a2, n], 1).tolist()})
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_more_miners.py)",
           "embeddings": x.tolist(), "unit_embeddings": unit.tolist(), "labels": labels, "cases": cases},
          open("Tests/DMLSamplersTests/Golden/more_miners.json", "w"), indent=1)
for c in cases: print(c["name"], {k: len(v) for k, v in c.items() if isinstance(v, list)})
