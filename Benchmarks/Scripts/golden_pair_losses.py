"""Golden values for the lifted structure losses, NT-Xent, NCA, the intra-pair variance, tuplet margin, angular, N-pair, ranked list, histogram, threshold-consistent margin, FastAP and PNP losses from pytorch-metric-learning, in float64.

Writes Tests/DMLLossesTests/Golden/pair_losses.json in the layout of the other golden files (inputs,
then outputs: loss, grad_embeddings, term counts, mined pairs where a miner is used). Run from the
repository root with the benchmark venv: .build-bench/venv/bin/python Benchmarks/Scripts/golden_pair_losses.py
"""
import json, platform
import numpy as np, torch
import pytorch_metric_learning as pml
from pytorch_metric_learning import losses, miners, distances

torch.set_default_dtype(torch.float64)

def case(name, description, x, labels, loss, registry, hyper, distance_desc, miner=None):
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
        per = per.flatten() if torch.is_tensor(per) else torch.zeros(0)  # an already-reduced value is one term
        counts[key] = {"terms": int(per.numel()), "nonzero": int((per > 0).sum())}
        sub[key] = float(per.mean()) if per.numel() > 0 else 0.0
    out = {
        "loss": value.item(),
        "grad_embeddings": g.tolist(),
        "term_counts": counts,
        "sub_losses": sub,
    }
    if miner is not None:
        a1, p, a2, n = tuples
        out["mined_pos_pairs"] = torch.stack([a1, p], 1).tolist()
        out["mined_neg_pairs"] = torch.stack([a2, n], 1).tolist()
        hyper = dict(hyper, miner={"type": type(miner).__name__, "epsilon": miner.epsilon})
    return {
        "name": name, "description": description, "loss": registry,
        "inputs": {"embeddings": x.tolist(), "labels": labels, "hyperparameters": hyper, "distance": distance_desc,
                   "reducer": {"type": "MeanReducer"}},
        "outputs": out,
    }

rng = np.random.default_rng(20261204)
cos = {"type": "CosineSimilarity", "normalize_embeddings": True, "is_inverted": True}
lp = {"type": "LpDistance", "p": 2, "power": 1, "normalize_embeddings": True, "is_inverted": False}
lp2 = {"type": "LpDistance", "p": 2, "power": 2, "normalize_embeddings": True, "is_inverted": False}
dot = {"type": "DotProductSimilarity", "normalize_embeddings": True, "is_inverted": True}
rawdot = {"type": "DotProductSimilarity", "normalize_embeddings": False, "is_inverted": True}
x = rng.normal(size=(16, 8))
labels = [int(v) for v in rng.integers(0, 4, size=16)]
x32 = rng.normal(size=(32, 8))
labels32 = [int(v) for v in rng.integers(0, 6, size=32)]
small = rng.normal(size=(6, 5))
ms = lambda: miners.MultiSimilarityMiner(epsilon=0.1)
unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)

def quirk_angular():
    """Raw rows: PML's value (negatives left unnormalised) beside the paper's (all rows normalised)."""
    c = case("quirk_angular_raw_rows", "PML `AngularLoss()` on rows of norm ≠ 1: `loss` is PML's (negatives not normalised); "
             "`loss_paper` is the paper's formula with every row normalised (PML on the normalised rows).",
             x, labels, losses.AngularLoss(), "angular", {"alpha": 40}, lp)
    c["outputs"]["loss_paper"] = losses.AngularLoss()(torch.tensor(unit(x)), torch.tensor(labels)).item()
    return c
cases = [
    case("lifted_default", "PML `LiftedStructureLoss()` (neg 1, pos 0), default `LpDistance()` on normalised rows; MeanReducer over positive pairs.",
         x, labels, losses.LiftedStructureLoss(), "lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp),
    case("lifted_margins_cosine", "PML `LiftedStructureLoss(neg_margin=0.3, pos_margin=0.8, distance=CosineSimilarity())`.",
         x, labels, losses.LiftedStructureLoss(neg_margin=0.3, pos_margin=0.8, distance=distances.CosineSimilarity()),
         "lifted-structure", {"neg_margin": 0.3, "pos_margin": 0.8}, cos),
    case("lifted_with_miner", "PML `LiftedStructureLoss()` called with the pairs of `MultiSimilarityMiner(epsilon=0.1)`.",
         x32, labels32, losses.LiftedStructureLoss(), "lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp, miner=ms()),
    case("lifted_single_class", "PML `LiftedStructureLoss()` with one label only: no negative pair, loss 0.",
         small, [1] * 6, losses.LiftedStructureLoss(), "lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp),
    case("generalized_lifted_default", "PML `GeneralizedLiftedStructureLoss()` (neg 1, pos 0), `LpDistance()`; MeanReducer over rows.",
         x, labels, losses.GeneralizedLiftedStructureLoss(), "generalized-lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp),
    case("generalized_lifted_margins_cosine", "PML `GeneralizedLiftedStructureLoss(neg_margin=0.2, pos_margin=0.9, distance=CosineSimilarity())`.",
         x, labels, losses.GeneralizedLiftedStructureLoss(neg_margin=0.2, pos_margin=0.9, distance=distances.CosineSimilarity()),
         "generalized-lifted-structure", {"neg_margin": 0.2, "pos_margin": 0.9}, cos),
    case("generalized_lifted_with_miner", "PML `GeneralizedLiftedStructureLoss()` with `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         x32, labels32, losses.GeneralizedLiftedStructureLoss(), "generalized-lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp, miner=ms()),
    case("generalized_lifted_single_class", "PML `GeneralizedLiftedStructureLoss()` with one label only: positives alone.",
         small, [1] * 6, losses.GeneralizedLiftedStructureLoss(), "generalized-lifted-structure", {"neg_margin": 1, "pos_margin": 0}, lp),
    case("ntxent_default", "PML `NTXentLoss()` (temperature 0.07), default `CosineSimilarity()`; MeanReducer over positive pairs.",
         x, labels, losses.NTXentLoss(), "ntxent", {"temperature": 0.07}, cos),
    case("ntxent_euclidean", "PML `NTXentLoss(temperature=0.5, distance=LpDistance())` (the loss negates distances).",
         x, labels, losses.NTXentLoss(temperature=0.5, distance=distances.LpDistance()), "ntxent", {"temperature": 0.5}, lp),
    case("ntxent_with_miner", "PML `NTXentLoss(temperature=0.2)` with `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         x32, labels32, losses.NTXentLoss(temperature=0.2), "ntxent", {"temperature": 0.2}, cos, miner=ms()),
    case("ntxent_single_class", "PML `NTXentLoss()` with one label only: no negative pair, loss 0.",
         small, [3] * 6, losses.NTXentLoss(), "ntxent", {"temperature": 0.07}, cos),
    case("nca_default", "PML `NCALoss()` (softmax_scale 1), default `LpDistance(power=2)` on normalised rows; MeanReducer over rows kept.",
         x, labels, losses.NCALoss(), "nca", {"softmax_scale": 1}, lp2),
    case("nca_scale_cosine", "PML `NCALoss(softmax_scale=4, distance=CosineSimilarity())`.",
         x, labels, losses.NCALoss(softmax_scale=4, distance=distances.CosineSimilarity()), "nca", {"softmax_scale": 4}, cos),
    case("nca_singletons", "PML `NCALoss()` where most labels occur once: rows without a same-label neighbour drop out.",
         small, [0, 1, 2, 3, 0, 1], losses.NCALoss(), "nca", {"softmax_scale": 1}, lp2),
    case("nca_single_class", "PML `NCALoss()` with one label only: every neighbour is the same label, loss 0.",
         small, [2] * 6, losses.NCALoss(), "nca", {"softmax_scale": 1}, lp2),
    case("intra_pair_variance_default", "PML `IntraPairVarianceLoss()` (pos_eps 0.01, neg_eps 0.01), default `CosineSimilarity()`; MeanReducer per sub-loss.",
         x, labels, losses.IntraPairVarianceLoss(), "intra-pair-variance", {"pos_eps": 0.01, "neg_eps": 0.01}, cos),
    case("intra_pair_variance_euclidean", "PML `IntraPairVarianceLoss(pos_eps=0.1, neg_eps=0.05, distance=LpDistance())`.",
         x, labels, losses.IntraPairVarianceLoss(pos_eps=0.1, neg_eps=0.05, distance=distances.LpDistance()),
         "intra-pair-variance", {"pos_eps": 0.1, "neg_eps": 0.05}, lp),
    case("intra_pair_variance_with_miner", "PML `IntraPairVarianceLoss()` with `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         x32, labels32, losses.IntraPairVarianceLoss(), "intra-pair-variance", {"pos_eps": 0.01, "neg_eps": 0.01}, cos, miner=ms()),
    case("intra_pair_variance_single_class", "PML `IntraPairVarianceLoss()` with one label only: no negative pair, neg_loss 0.",
         small, [1] * 6, losses.IntraPairVarianceLoss(), "intra-pair-variance", {"pos_eps": 0.01, "neg_eps": 0.01}, cos),
    case("tuplet_margin_default", "PML `TupletMarginLoss()` (margin 5.73°, scale 64), `CosineSimilarity()`; MeanReducer over positive pairs.",
         x, labels, losses.TupletMarginLoss(), "tuplet-margin", {"margin": 5.73, "scale": 64}, cos),
    case("tuplet_margin_10_32", "PML `TupletMarginLoss(margin=10, scale=32)`.",
         x, labels, losses.TupletMarginLoss(margin=10, scale=32), "tuplet-margin", {"margin": 10, "scale": 32}, cos),
    case("tuplet_margin_with_miner", "PML `TupletMarginLoss()` with `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         x32, labels32, losses.TupletMarginLoss(), "tuplet-margin", {"margin": 5.73, "scale": 64}, cos, miner=ms()),
    case("tuplet_margin_single_class", "PML `TupletMarginLoss()` with one label only: no negative pair, loss 0.",
         small, [0] * 6, losses.TupletMarginLoss(), "tuplet-margin", {"margin": 5.73, "scale": 64}, cos),
    # PML's AngularLoss normalises the anchors and positives but not the negatives (ref_emb); the
    # paper's formula has all three unit-length. On unit-length inputs the two agree.
    case("angular_default", "PML `AngularLoss()` (alpha 40°) on unit-length rows, its required `LpDistance()`; MeanReducer over positive pairs.",
         unit(x), labels, losses.AngularLoss(), "angular", {"alpha": 40}, lp),
    case("angular_alpha_30", "PML `AngularLoss(alpha=30)` on unit-length rows.",
         unit(x), labels, losses.AngularLoss(alpha=30), "angular", {"alpha": 30}, lp),
    case("angular_with_miner", "PML `AngularLoss()` on unit-length rows with `MultiSimilarityMiner(epsilon=0.1)` pairs (negatives: every other label).",
         unit(x32), labels32, losses.AngularLoss(), "angular", {"alpha": 40}, lp, miner=ms()),
    case("angular_single_class", "PML `AngularLoss()` with one label only: no negative pair, loss 0.",
         unit(small), [0] * 6, losses.AngularLoss(), "angular", {"alpha": 40}, lp),
    quirk_angular(),
    case("npairs_default", "PML `NPairsLoss()`, default `DotProductSimilarity()` (which normalises rows: cosine); MeanReducer over the chosen anchors.",
         x32, labels32, losses.NPairsLoss(), "npairs", {}, dot),
    case("npairs_plain_dot", "PML `NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))`.",
         x32, labels32, losses.NPairsLoss(distance=distances.DotProductSimilarity(normalize_embeddings=False)), "npairs", {}, rawdot),
    case("npairs_with_miner", "PML `NPairsLoss()` with `MultiSimilarityMiner(epsilon=0.1)` pairs (the first pair of each label, in the miner's order).",
         x32, labels32, losses.NPairsLoss(), "npairs", {}, dot, miner=ms()),
    case("ranked_list_simpler", "PML `RankedListLoss(margin=0.4, Tn=10)` (imbalance 0.5, Tp 0, alpha 1.2), `LpDistance()`; MeanReducer over rows.",
         x, labels, losses.RankedListLoss(margin=0.4, Tn=10), "ranked-list", {"margin": 0.4, "tn": 10, "imbalance": 0.5, "tp": 0, "alpha": 1.2}, lp),
    case("ranked_list_weighted_positives", "PML `RankedListLoss(margin=0.2, Tn=4, imbalance=0.3, alpha=1.1, Tp=2)`.",
         x32, labels32, losses.RankedListLoss(margin=0.2, Tn=4, imbalance=0.3, alpha=1.1, Tp=2), "ranked-list",
         {"margin": 0.2, "tn": 4, "imbalance": 0.3, "tp": 2, "alpha": 1.1}, lp),
    case("ranked_list_single_class", "PML `RankedListLoss(margin=0.4, Tn=10)` with one label only: positives alone.",
         small, [0] * 6, losses.RankedListLoss(margin=0.4, Tn=10), "ranked-list", {"margin": 0.4, "tn": 10, "imbalance": 0.5, "tp": 0, "alpha": 1.2}, lp),
    case("histogram_default", "PML `HistogramLoss()` (100 bins), `CosineSimilarity()`; already reduced.",
         x, labels, losses.HistogramLoss(), "histogram", {"bins": 100}, cos),
    case("histogram_20_bins", "PML `HistogramLoss(n_bins=20)`.",
         x32, labels32, losses.HistogramLoss(n_bins=20), "histogram", {"bins": 20}, cos),
    case("histogram_with_miner", "PML `HistogramLoss(n_bins=50)` with `MultiSimilarityMiner(epsilon=0.1)` pairs (turned into triplets, then unique pairs).",
         x32, labels32, losses.HistogramLoss(n_bins=50), "histogram", {"bins": 50}, cos, miner=ms()),
    case("tcm_default", "PML `ThresholdConsistentMarginLoss()` (lambdas 1, margins 0.9 / 0.5), `CosineSimilarity()`; already reduced.",
         x, labels, losses.ThresholdConsistentMarginLoss(), "tcm", {"lambda_plus": 1, "lambda_minus": 1, "margin_plus": 0.9, "margin_minus": 0.5}, cos),
    case("tcm_weights_margins", "PML `ThresholdConsistentMarginLoss(lambda_plus=0.5, lambda_minus=2, margin_plus=0.3, margin_minus=0.1)`.",
         x32, labels32, losses.ThresholdConsistentMarginLoss(lambda_plus=0.5, lambda_minus=2, margin_plus=0.3, margin_minus=0.1), "tcm",
         {"lambda_plus": 0.5, "lambda_minus": 2, "margin_plus": 0.3, "margin_minus": 0.1}, cos),
    case("tcm_with_miner", "PML `ThresholdConsistentMarginLoss()` with `MultiSimilarityMiner(epsilon=0.1)` pairs.",
         x32, labels32, losses.ThresholdConsistentMarginLoss(), "tcm", {"lambda_plus": 1, "lambda_minus": 1, "margin_plus": 0.9, "margin_minus": 0.5}, cos, miner=ms()),
    case("fast_ap_default", "PML `FastAPLoss()` (10 bins), its `LpDistance(power=2)` on normalised rows; MeanReducer over rows with a positive.",
         x, labels, losses.FastAPLoss(), "fast-ap", {"bins": 10}, lp2),
    case("fast_ap_25_bins", "PML `FastAPLoss(num_bins=25)`.",
         x32, labels32, losses.FastAPLoss(num_bins=25), "fast-ap", {"bins": 25}, lp2),
    case("fast_ap_singletons", "PML `FastAPLoss()` where most labels occur once: rows without a positive drop out.",
         small, [0, 1, 2, 3, 0, 1], losses.FastAPLoss(), "fast-ap", {"bins": 10}, lp2),
    case("pnp_O", "PML `PNPLoss(variant='O', anneal=0.1)` (b 2, alpha 1), `CosineSimilarity()`; already reduced.",
         x, labels, losses.PNPLoss(variant="O", anneal=0.1), "pnp", {"b": 2, "alpha": 1, "anneal": 0.1, "variant": "O"}, cos),
    case("pnp_Ds", "PML `PNPLoss(variant='Ds', anneal=0.1)` (b 2, alpha 1), `CosineSimilarity()`; already reduced.",
         x, labels, losses.PNPLoss(variant="Ds", anneal=0.1), "pnp", {"b": 2, "alpha": 1, "anneal": 0.1, "variant": "Ds"}, cos),
    case("pnp_Dq", "PML `PNPLoss(variant='Dq', anneal=0.1)` (b 2, alpha 1), `CosineSimilarity()`; already reduced.",
         x, labels, losses.PNPLoss(variant="Dq", anneal=0.1), "pnp", {"b": 2, "alpha": 1, "anneal": 0.1, "variant": "Dq"}, cos),
    case("pnp_Iu", "PML `PNPLoss(variant='Iu', anneal=0.1)` (b 2, alpha 1), `CosineSimilarity()`; already reduced.",
         x, labels, losses.PNPLoss(variant="Iu", anneal=0.1), "pnp", {"b": 2, "alpha": 1, "anneal": 0.1, "variant": "Iu"}, cos),
    case("pnp_Ib", "PML `PNPLoss(variant='Ib', anneal=0.1)` (b 2, alpha 1), `CosineSimilarity()`; already reduced.",
         x, labels, losses.PNPLoss(variant="Ib", anneal=0.1), "pnp", {"b": 2, "alpha": 1, "anneal": 0.1, "variant": "Ib"}, cos),
    case("pnp_default", "PML `PNPLoss()` (variant O, anneal 0.01: most sigmoids clamped).",
         x32, labels32, losses.PNPLoss(), "pnp", {"b": 2, "alpha": 1, "anneal": 0.01, "variant": "O"}, cos),
    case("pnp_Dq_alpha_2", "PML `PNPLoss(variant='Dq', alpha=2, anneal=0.05)`.",
         x32, labels32, losses.PNPLoss(variant="Dq", alpha=2, anneal=0.05), "pnp", {"b": 2, "alpha": 2, "anneal": 0.05, "variant": "Dq"}, cos),
    case("npairs_single_class", "PML `NPairsLoss()` with one label only: one pair, a softmax over itself, loss 0.",
         small, [0] * 6, losses.NPairsLoss(), "npairs", {}, dot),
    case("ntxent_distinct", "PML `NTXentLoss()` with distinct labels: no positive pair, loss 0.",
         small, list(range(6)), losses.NTXentLoss(), "ntxent", {"temperature": 0.07}, cos),
]
json.dump({"generator": f"pytorch-metric-learning {pml.__version__}, torch {torch.__version__}, Python {platform.python_version()} (Benchmarks/Scripts/golden_pair_losses.py)",
           "cases": cases}, open("Tests/DMLLossesTests/Golden/pair_losses.json", "w"), indent=1)
for c in cases: print(c["name"], c["outputs"]["loss"], c["outputs"]["term_counts"])
