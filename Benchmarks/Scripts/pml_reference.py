"""The reference side of `make bench` (issue 7): the same cases as `dml-bench cases`, run through
pytorch-metric-learning 2.9.0, torch, numpy and faiss, and PML's end-to-end fmnist-05 training.

Run by Benchmarks/Scripts/compare.py inside the benchmark virtual environment (Debian's
python3-torch and python3-faiss, PML 2.9.0 and numpy from PyPI), which sets the thread count and
the BLAS kernels in the environment.

Usage: pml_reference.py cases [--quick] [--kinds gemm,distance,...] [--threads N]
       pml_reference.py train --network mlp|convnet-s --loss NAME [--epochs 5] [--seed 0] [--threads N]
                              [--probe-steps N]
Each prints one JSON object on its last line of stdout.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import faiss
import pytorch_metric_learning
from pytorch_metric_learning import distances, losses, miners, samplers
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_gemm import corename as numpy_corename, median_seconds, openblas_core  # noqa: E402

FMNIST = os.environ.get("DML_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


def median_ms(body, trials):
    """The median milliseconds per call, timed as dml-bench times ours."""
    return median_seconds(body, trials) * 1e3


def unit_batch(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


# ----------------------------------------------------------------------------------------------
# Micro-benchmarks. Names match dml-bench's ComparisonCases.

GEMM_SHAPES = [(128, 512, 784), (128, 128, 512), (100352, 32, 9), (25088, 64, 288), (128, 128, 3136), (1024, 1024, 1024)]


def gemm_cases(quick, trials):
    out = {}
    for m, n, k in GEMM_SHAPES[:1] if quick else GEMM_SHAPES:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        out[f"gemm {m}x{n}x{k}"] = median_ms(lambda: np.matmul(a, b, out=c), trials)
    return out


DISTANCES = {
    "euclidean": lambda: distances.LpDistance(),
    "squared-euclidean": lambda: distances.LpDistance(power=2),
    "cosine": lambda: distances.CosineSimilarity(),
    "dot": lambda: distances.DotProductSimilarity(),
}


def distance_cases(quick, trials):
    out = {}
    for n in [256] if quick else [256, 1024]:
        x = unit_batch(n, 128, 1)
        for name, make in DISTANCES.items():
            if quick and name != "euclidean":
                continue
            dist = make()
            with torch.no_grad():
                out[f"distance {name} {n}"] = median_ms(lambda: dist(x), trials)
    return out


class CenterPlusSoftmax:
    """Cross-entropy over Linear(d, C) plus 0.01 x mean 1/2 |f - c_y|^2, the centers moved by Wen et
    al.'s rule with alpha = 0.5 after each step (shared/BENCHMARKS.md; PML has no center loss)."""

    def __init__(self, classes, dimension, alpha=0.5, weight=0.01):
        self.classifier = nn.Linear(dimension, classes)
        self.centers = torch.zeros(classes, dimension)
        self.alpha, self.weight, self.classes = alpha, weight, classes

    def parameters(self):
        return self.classifier.parameters()

    def __call__(self, x, y, tuples=None):
        ce = F.cross_entropy(self.classifier(x), y)
        diff = x - self.centers[y]
        loss = ce + self.weight * 0.5 * (diff * diff).sum(1).mean()
        with torch.no_grad():
            delta = torch.zeros_like(self.centers).index_add_(0, y, self.centers[y] - x.detach())
            counts = torch.bincount(y, minlength=self.classes).to(x.dtype)
            self.centers -= self.alpha * delta / (1 + counts)[:, None]
        return loss


class SoftmaxCE(nn.Module):
    """Cross-entropy over a learned linear classifier (no bias), our `softmax` loss."""

    def __init__(self, classes, dimension):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dimension) * dimension ** -0.5)

    def forward(self, x, y, tuples=None):
        return F.cross_entropy(x @ self.weight.t(), y)


class Uniformity(nn.Module):
    """log mean exp(-t |f_i - f_j|^2) over pairs i < j (Wang and Isola 2020); torch, not PML."""

    def forward(self, x, y=None, tuples=None):
        return torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log()


class DynamicSoftMarginDetached(losses.DynamicSoftMarginLoss):
    """PML's DynamicSoftMarginLoss with its histogram kept out of the autograd graph: PML 2.9.0's own
    cannot backpropagate a second batch (the first one's graph is freed), so a timing loop needs this."""

    def update_histogram(self, data):
        super().update_histogram(data.detach())
        self.hist_ = self.hist_.detach()


class ManifoldUnlabelled(nn.Module):
    """PML's ManifoldLoss refuses labels: its meta-classes are drawn at random."""

    def __init__(self, dimension):
        super().__init__()
        self.loss = losses.ManifoldLoss(l=dimension)

    def forward(self, x, y=None, tuples=None):
        return self.loss(x)


class VICRegViews(nn.Module):
    """PML's VICRegLoss on a batch of two views per sample, rows 2i and 2i + 1 (as our `vicreg`
    reads the two rows of each label)."""

    def __init__(self):
        super().__init__()
        self.loss = losses.VICRegLoss()

    def forward(self, x, y=None, tuples=None):
        return self.loss(x[0::2], ref_emb=x[1::2])


def loss_factories(classes):
    return {
        "contrastive": (lambda: losses.ContrastiveLoss(pos_margin=0, neg_margin=1), None),
        "triplet + semihard miner": (lambda: losses.TripletMarginLoss(margin=0.2),
                                     lambda: miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")),
        "triplet + batch-hard miner": (lambda: losses.TripletMarginLoss(margin=0.2), lambda: miners.BatchHardMiner()),
        "proxy-nca": (lambda: losses.ProxyNCALoss(classes, 128), None),
        "proxy-anchor": (lambda: losses.ProxyAnchorLoss(classes, 128, margin=0.1, alpha=32), None),
        "multi-similarity + miner": (lambda: losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5),
                                     lambda: miners.MultiSimilarityMiner(epsilon=0.1)),
        "center + cross-entropy": (lambda: CenterPlusSoftmax(classes, 128), None),
        "softmax": (lambda: SoftmaxCE(classes, 128), None),
        "normalized-softmax": (lambda: losses.NormalizedSoftmaxLoss(classes, 128, temperature=0.05), None),
        "arcface": (lambda: losses.ArcFaceLoss(classes, 128, margin=28.6, scale=64), None),
        "cosface": (lambda: losses.CosFaceLoss(classes, 128, margin=0.35, scale=64), None),
        "uniformity": (lambda: Uniformity(), None),
        "lifted-structure": (lambda: losses.LiftedStructureLoss(), None),
        "generalized-lifted-structure": (lambda: losses.GeneralizedLiftedStructureLoss(), None),
        "ntxent": (lambda: losses.NTXentLoss(), None),
        "nca": (lambda: losses.NCALoss(), None),
        "intra-pair-variance": (lambda: losses.IntraPairVarianceLoss(), None),
        "tuplet-margin": (lambda: losses.TupletMarginLoss(), None),
        "angular": (lambda: losses.AngularLoss(), None),
        "npairs": (lambda: losses.NPairsLoss(), None),
        "ranked-list": (lambda: losses.RankedListLoss(margin=0.4, Tn=10), None),
        "histogram": (lambda: losses.HistogramLoss(), None),
        "tcm": (lambda: losses.ThresholdConsistentMarginLoss(), None),
        "fast-ap": (lambda: losses.FastAPLoss(), None),
        "margin": (lambda: losses.MarginLoss(), None),
        "snr-contrastive": (lambda: losses.SignalToNoiseRatioContrastiveLoss(), None),
        "smooth-ap": (lambda: losses.SmoothAPLoss(), None),
        "p2s-grad": (lambda: losses.P2SGradLoss(128, classes), None),
        "circle": (lambda: losses.CircleLoss(), None),
        "large-margin-softmax": (lambda: losses.LargeMarginSoftmaxLoss(classes, 128), None),
        "sphereface": (lambda: losses.SphereFaceLoss(classes, 128), None),
        "dynamic-soft-margin": (lambda: DynamicSoftMarginDetached(), None),
        "manifold": (lambda: ManifoldUnlabelled(128), None),
        "vicreg": (lambda: VICRegViews(), None),
    }


QUICK_LOSS = "triplet + semihard miner"
# PML builds matrices of positive × negative pairs (or every triplet, n × n × n for Smooth-AP, or
# for the SNR distance every pair's n × n × d differences) for these: at 1,024 rows several need tens of GB, so they are
# measured at 256 rows only.
SMALL_ONLY = {"lifted-structure", "generalized-lifted-structure", "ntxent", "nca", "intra-pair-variance", "tuplet-margin",
              "angular", "npairs", "ranked-list", "histogram", "tcm", "fast-ap", "margin", "snr-contrastive", "smooth-ap"}


def loss_cases(quick, trials):
    out = {}
    for n in [256] if quick else [256, 1024]:
        base = unit_batch(n, 128, 1)
        labels = torch.arange(n) // 4
        for name, (make_loss, make_miner) in loss_factories(n // 4).items():
            if quick and name != QUICK_LOSS:
                continue
            if n > 256 and name in SMALL_ONLY:
                continue
            torch.manual_seed(2)
            loss_fn, miner = make_loss(), make_miner() if make_miner else None
            x = base.clone().requires_grad_(True)
            params = [x] + (list(loss_fn.parameters()) if hasattr(loss_fn, "parameters") else [])

            def step():
                for p in params:
                    p.grad = None
                tuples = miner(x, labels) if miner else None
                loss = loss_fn(x, labels, tuples) if tuples is not None else loss_fn(x, labels)
                loss.backward()

            out[f"loss {name} {n}"] = median_ms(step, trials)
    return out


MINERS = {
    "semihard": lambda: miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"),
    "triplet-margin all": lambda: miners.TripletMarginMiner(margin=0.2, type_of_triplets="all"),
    "batch-hard": lambda: miners.BatchHardMiner(),
    "multi-similarity": lambda: miners.MultiSimilarityMiner(epsilon=0.1),
    "pair-margin": lambda: miners.PairMarginMiner(pos_margin=0.2, neg_margin=0.8),
    "distance-weighted": lambda: miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4),
    "batch-easy-hard": lambda: miners.BatchEasyHardMiner(),
    "hdc": lambda: miners.HDCMiner(),
    "uniform-histogram": lambda: miners.UniformHistogramMiner(),
    "angular": lambda: miners.AngularMiner(),
}


def miner_cases(quick, trials):
    out = {}
    for n in [256] if quick else [256, 1024]:
        x = unit_batch(n, 128, 5)
        labels = torch.arange(n) // 4
        for name, make in MINERS.items():
            if quick and name != "semihard":
                continue
            if n > 256 and name == "angular":  # PML materialises every triplet
                continue
            miner = make()
            torch.manual_seed(1)
            with torch.no_grad():
                out[f"miner {name} {n}"] = median_ms(lambda: miner(x, labels), trials)
    return out


class MLP(nn.Sequential):
    def __init__(self, normalize=True):
        super().__init__(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 128))
        self.normalize = normalize

    def forward(self, x):
        y = super().forward(x)
        return F.normalize(y, dim=1) if self.normalize else y


class ConvNetS(nn.Module):
    def __init__(self, normalize=True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128))
        self.normalize = normalize

    def forward(self, x):
        y = self.body(x.view(-1, 1, 28, 28))
        return F.normalize(y, dim=1) if self.normalize else y


NETWORKS = {"mlp": MLP, "convnet-s": ConvNetS}


def network_cases(quick, trials):
    out = {}
    for name, make in NETWORKS.items():
        if quick and name != "mlp":
            continue
        torch.manual_seed(0)
        net = make()
        x = torch.randn(128, 784, generator=torch.Generator().manual_seed(1))

        def step():
            net.zero_grad(set_to_none=True)
            y = net(x)
            y.backward(y.detach())  # the stand-in gradient dml-bench uses: d = embeddings

        out[f"network {name} forward+backward 128"] = median_ms(step, trials)
    return out


def knn_cases(quick, trials):
    x = unit_batch(10_000, 128, 1).numpy()
    y = unit_batch(10_000, 128, 2).numpy()

    def search():
        index = faiss.IndexFlatL2(128)
        index.add(y)
        index.search(x, 10)

    search()
    times = []
    for _ in range(1 if quick else 3):
        t = time.perf_counter()
        search()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"knn 10000x10000x128 k=10": times[len(times) // 2] * 1e3}


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fmnist(split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(FMNIST, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(FMNIST, f"{prefix}-labels-idx1-ubyte.gz"))
    x = (images.reshape(len(images), 784).astype(np.float32) / 255 - 0.2860) / 0.3530
    return x, labels.astype(np.int64)


def read_cases(quick, trials):
    times = []
    for _ in range(3 if quick else 5):
        t = time.perf_counter()
        fmnist("train")
        times.append(time.perf_counter() - t)
    times.sort()
    return {"read fashion-mnist train": times[len(times) // 2] * 1e3}


KINDS = {"gemm": gemm_cases, "distance": distance_cases, "loss": loss_cases, "miner": miner_cases,
         "network": network_cases, "knn": knn_cases, "read": read_cases}


# ----------------------------------------------------------------------------------------------
# End-to-end fmnist-05 with PML's plain recipe (shared/BENCHMARKS.md).

PAIR_LOSSES = {"contrastive", "triplet-semihard", "triplet-batchhard", "multi-similarity"}


def make_training_loss(name, classes):
    """(loss, miner, extra parameter groups) of the reference runs."""
    if name == "contrastive":
        return losses.ContrastiveLoss(pos_margin=0, neg_margin=1), None, []
    if name == "triplet-semihard":
        return losses.TripletMarginLoss(margin=0.2), miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"), []
    if name == "triplet-batchhard":
        return losses.TripletMarginLoss(margin=0.2), miners.BatchHardMiner(), []
    if name == "multi-similarity":
        return losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner(), []
    if name == "proxy-nca":
        loss = losses.ProxyNCALoss(classes, 128)
        return loss, None, [{"params": loss.parameters()}]
    if name == "proxy-anchor":
        loss = losses.ProxyAnchorLoss(classes, 128)
        return loss, None, [("sgd", loss.parameters(), 0.01)]
    if name == "center":
        loss = CenterPlusSoftmax(classes, 128)
        return loss, None, [{"params": loss.parameters()}]
    if name in ("arcface", "cosface", "normalized-softmax"):
        # PML's defaults; the class weights train in the model's Adam at its learning rate.
        loss = {"arcface": lambda: losses.ArcFaceLoss(classes, 128, margin=28.6, scale=64),
                "cosface": lambda: losses.CosFaceLoss(classes, 128, margin=0.35, scale=64),
                "normalized-softmax": lambda: losses.NormalizedSoftmaxLoss(classes, 128, temperature=0.05)}[name]()
        return loss, None, [{"params": loss.parameters()}]
    if name in PML_LOSSES:
        make, pair = PML_LOSSES[name]
        loss = make(classes)
        params = list(loss.parameters())
        return loss, None, ([{"params": params}] if params else [])
    raise SystemExit(f"unknown loss {name}")


# The rest of PML 2.9.0's losses at their defaults, by our names, for the fmnist-05 comparison
# (Benchmarks/Scripts/pml_losses_report.py): (constructor of the number of classes, pair loss?).
# Learned tensors train in the model's Adam.
PML_LOSSES = {
    "lifted-structure": (lambda c: losses.LiftedStructureLoss(), True),
    "generalized-lifted-structure": (lambda c: losses.GeneralizedLiftedStructureLoss(), True),
    "ntxent": (lambda c: losses.NTXentLoss(), True),
    "nca": (lambda c: losses.NCALoss(), True),
    "intra-pair-variance": (lambda c: losses.IntraPairVarianceLoss(), True),
    "tuplet-margin": (lambda c: losses.TupletMarginLoss(), True),
    "angular": (lambda c: losses.AngularLoss(), True),
    "npairs": (lambda c: losses.NPairsLoss(), True),
    "ranked-list": (lambda c: losses.RankedListLoss(margin=0.4, Tn=10), True),
    "histogram": (lambda c: losses.HistogramLoss(), True),
    "tcm": (lambda c: losses.ThresholdConsistentMarginLoss(), True),
    "fast-ap": (lambda c: losses.FastAPLoss(), True),
    "pnp": (lambda c: losses.PNPLoss(), True),
    "margin": (lambda c: losses.MarginLoss(), True),
    "snr-contrastive": (lambda c: losses.SignalToNoiseRatioContrastiveLoss(), True),
    "smooth-ap": (lambda c: losses.SmoothAPLoss(), True),
    "circle": (lambda c: losses.CircleLoss(), True),
    "dynamic-soft-margin": (lambda c: DynamicSoftMarginDetached(), True),
    "instance": (lambda c: losses.InstanceLoss(), False),
    "subcenter-arcface": (lambda c: losses.SubCenterArcFaceLoss(num_classes=c, embedding_size=128), False),
    "soft-triple": (lambda c: losses.SoftTripleLoss(c, 128), False),
    "p2s-grad": (lambda c: losses.P2SGradLoss(128, c), False),
    "large-margin-softmax": (lambda c: losses.LargeMarginSoftmaxLoss(c, 128), False),
    "sphereface": (lambda c: losses.SphereFaceLoss(c, 128), False),
    "manifold": (lambda c: ManifoldUnlabelled(128), False),
}


def batches(labels, pair_loss, epoch_rng):
    n = len(labels)
    if pair_loss:
        # PML refuses batch_size=128 with 5 classes and m=4; its sampler runs without it and is
        # read in chunks of 128 (shared/BENCHMARKS.md).
        sampler = samplers.MPerClassSampler(labels, m=4, length_before_new_iter=n)
        order = np.fromiter(iter(sampler), dtype=np.int64)
    else:
        order = torch.randperm(n, generator=epoch_rng).numpy()
    for i in range(0, len(order) - 127, 128):
        yield order[i:i + 128]


def embed(net, x):
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    net.train()
    return out


def train(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    xtr, ytr = fmnist("train")
    xte, yte = fmnist("test")
    train_classes = list(range(5))
    keep = np.isin(ytr, train_classes)
    xtr, ytr = torch.from_numpy(xtr[keep]), torch.from_numpy(ytr[keep])  # labels 0..4 already
    keep = np.isin(yte, range(5, 10))
    xte, yte = torch.from_numpy(xte[keep]), torch.from_numpy(yte[keep])

    net = NETWORKS[args.network](normalize=args.loss != "center")
    loss_fn, miner, extra = make_training_loss(args.loss, len(train_classes))
    adam_groups = [{"params": net.parameters()}] + [g for g in extra if isinstance(g, dict)]
    optimizers = [torch.optim.Adam(adam_groups, lr=1e-3)]
    optimizers += [torch.optim.SGD(params, lr=lr) for kind, params, lr in (g for g in extra if isinstance(g, tuple))]
    epoch_rng = torch.Generator().manual_seed(args.seed)

    images, seconds, steps_without_tuples, steps = 0, 0.0, 0, 0
    for _ in range(args.epochs):
        if args.probe_steps and steps >= args.probe_steps:
            break
        t = time.perf_counter()
        pair = args.loss in PAIR_LOSSES or (args.loss in PML_LOSSES and PML_LOSSES[args.loss][1])
        for idx in batches(ytr.numpy(), pair, epoch_rng):
            if args.probe_steps and steps >= args.probe_steps:
                break
            xb, yb = xtr[idx], ytr[idx]
            for o in optimizers:
                o.zero_grad()
            e = net(xb)
            tuples = miner(e, yb) if miner is not None else None
            if tuples is not None and all(len(t) == 0 for t in tuples):
                steps_without_tuples += 1
            loss = loss_fn(e, yb, tuples) if tuples is not None else loss_fn(e, yb)
            loss.backward()
            for o in optimizers:
                o.step()
            images += len(idx)
            steps += 1
        seconds += time.perf_counter() - t

    if args.probe_steps:  # a throughput probe: no evaluation
        return {"images_per_second": images / seconds, "steps": steps}
    calculator = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                                    k="max_bin_count")
    metrics = calculator.get_accuracy(embed(net, xte), yte)
    return {"images_per_second": images / seconds, "steps": steps, "steps_without_tuples": steps_without_tuples,
            "precision_at_1": metrics["precision_at_1"], "r_precision": metrics["r_precision"],
            "map_at_r": metrics["mean_average_precision_at_r"]}


def versions():
    return {"debian_openblas_core": openblas_core("libopenblas.so.0", ["openblas_get_corename"]),
            "numpy_openblas_core": numpy_corename(),
            "pml": pytorch_metric_learning.__version__, "torch": torch.__version__, "faiss": faiss.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cases", "train", "versions"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--network", default="mlp")
    parser.add_argument("--loss", default="contrastive")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=0, help="train: stop after N steps, report images/s only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.mode == "versions":
        print(json.dumps(versions()))
    elif args.mode == "cases":
        out = {}
        for kind in args.kinds.split(","):
            if kind not in KINDS:
                raise SystemExit(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
            out.update(KINDS[kind](args.quick, 3 if args.quick else args.trials))
        print(json.dumps(out))
    else:
        print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
