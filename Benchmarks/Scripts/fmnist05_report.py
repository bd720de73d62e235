"""The fmnist-05 generalisation report (issue 11): runs `dml train` for every network, loss and
recipe, and writes a Markdown table with every figure measured and every command.

Usage: fmnist05_report.py DML OUTPUT.md --tune            # first: dml tune for the MLP and each loss
       fmnist05_report.py DML OUTPUT.md [--networks mlp,convnet-s,local] [--recipes plain,tuned,transfer]
                          [--seeds 0,1,2] [--split 0-4:5-9]

Each run is `dml train ... --log json`; its last line holds the test metrics of the trained
network, the network at initialisation and the raw pixels. Runs are cached in OUTPUT.md.runs.json
(keyed by command), so an interrupted report resumes where it stopped.
"""
import argparse
import json
import os
import subprocess
import sys
import time

PML = {  # ../shared/BENCHMARKS.md, fmnist-05 after 5 epochs (PML 2.9.0): MAP@R
    ("mlp", "contrastive"): 0.3548, ("mlp", "triplet-semihard"): 0.2701, ("mlp", "triplet-batchhard"): 0.3123,
    ("mlp", "proxy-nca"): 0.2087, ("mlp", "proxy-anchor"): 0.2685, ("mlp", "multi-similarity"): 0.3357,
    ("mlp", "center"): 0.2559,
    ("convnet-s", "contrastive"): 0.3672, ("convnet-s", "triplet-semihard"): 0.1529,
    ("convnet-s", "triplet-batchhard"): 0.3071, ("convnet-s", "proxy-nca"): 0.1697,
    ("convnet-s", "proxy-anchor"): 0.2196, ("convnet-s", "multi-similarity"): 0.3266, ("convnet-s", "center"): 0.1692,
}

# Each loss: its flags and its batch sampler in PML's plain recipe.
LOSSES = {
    "contrastive": ["--loss", "contrastive", "--batch", "m-per-class:m=4,size=128"],
    "triplet-semihard": ["--loss", "triplet:margin=0.2", "--miner", "semihard:margin=0.2", "--batch", "m-per-class:m=4,size=128"],
    "triplet-batchhard": ["--loss", "triplet:margin=0.2", "--miner", "batch-hard", "--batch", "m-per-class:m=4,size=128"],
    "proxy-nca": ["--loss", "proxy-nca", "--batch", "shuffled:size=128"],
    "proxy-anchor": ["--loss", "proxy-anchor", "--batch", "shuffled:size=128"],
    "multi-similarity": ["--loss", "multi-similarity", "--miner", "multi-similarity", "--batch", "m-per-class:m=4,size=128"],
    "center": ["--loss", "softmax", "--loss", "center:weight=0.01", "--batch", "shuffled:size=128"],
    "supcon": ["--loss", "supcon:temperature=0.05", "--batch", "shuffled:size=128"],
}

# The network flags; `local` is LocalNet as a learned intensity curve (1×1 filters) smoothed by a
# 5×5 mix, starting as the raw pixels (a shift of 0.81 = Fashion-MNIST's mean / std).
NETWORKS = {"mlp": "mlp", "convnet-s": "convnet-s", "local": "local:kernel=1,mix=5,init=identity,shift=0.81"}


def network_flag(network, loss):
    # Center loss trains unnormalised embeddings, as in PML's reference runs.
    flag = NETWORKS.get(network, network)
    return flag + ((":" if ":" not in flag else ",") + "normalize=false" if loss == "center" else "")


def recipe(name, network, loss, train, test, seed):
    """The dml train arguments of a recipe."""
    base = ["--train-classes", train, "--test-classes", test, "--network", network_flag(network, loss), "--seed", str(seed)]
    if name == "plain":
        # PML's plain recipe: 5 epochs of Adam 1e-3 on every training class.
        return base + LOSSES[loss] + ["--optimizer", "adam:lr=0.001", "--epochs", "5"]
    if name == "tuned":
        # Ours: the settings `dml tune` chose for the MLP with this loss (class-disjoint folds of
        # the training classes, see tune_arguments), trained on every training class for the
        # epochs the folds chose. ConvNet-S reuses the MLP's choice: tuning it would take hours.
        # A network's own search where there is one (local-supcon), else the MLP's.
        own = os.path.join(TUNE_DIR, f"{network}-{loss}", "best.json")
        best = json.load(open(own if os.path.exists(own) else os.path.join(TUNE_DIR, f"mlp-{loss}", "best.json")))
        arguments = base[:]
        arguments[arguments.index("--network") + 1] = network_flag(network, loss)
        for part in best["loss"].split("+"):
            arguments += ["--loss", part]
        arguments += ["--miner", best["miner"], "--batch", best["batch"], "--optimizer", best["optimizer"],
                      "--augment", best["augment"], "--epochs", str(best["epochs"])]
        return arguments
    if name == "transfer":
        # The recipe that transfers to unseen classes: the last two training classes held out for
        # validation (early stopping on their MAP@R, best epoch kept), Adam 1e-3, 4 epochs at most.
        classes = expand(train)
        validation = ",".join(str(c) for c in classes[-2:])
        return base[:2] + ["--validation-classes", validation] + base[2:] + LOSSES[loss] + [
            "--optimizer", "adam:lr=0.001", "--epochs", "4", "--patience", "2"]
    raise SystemExit(f"unknown recipe {name}")


TUNE_DIR = "Docs/fmnist05-tune"


def tune_arguments(loss, train):
    """`dml tune` for the MLP with one loss: learning rate, the uniformity term and augmentation."""
    flags = LOSSES[loss]
    losses = "+".join(flags[i + 1] for i in range(len(flags)) if flags[i] == "--loss")
    miner = next((flags[i + 1] for i in range(len(flags)) if flags[i] == "--miner"), "none")
    batch = next(flags[i + 1] for i in range(len(flags)) if flags[i] == "--batch")
    return ["tune", "--train-classes", train, "--folds", "2", "--network", network_flag("mlp", loss),
            "--loss", losses, "--loss", losses + "+uniformity:weight={0.3..1 log}", "--miner", miner, "--batch", batch,
            "--optimizer", "adam:lr={1e-5..1e-3 log}", "--augment", "none", "--augment", "gamma:range={1.5..3}",
            "--epochs", "5", "--patience", "2", "--trials", "5", "--output", os.path.join(TUNE_DIR, f"mlp-{loss}")]


def expand(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def run(dml, arguments, cache):
    key = " ".join(arguments)
    if key in cache:
        return cache[key]
    start = time.time()
    p = subprocess.run([dml, "train", *arguments, "--log", "json", "--log-every", "0"], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAILED: dml train {key}\n{p.stderr}", file=sys.stderr)
        result = {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    else:
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        test = next(l for l in reversed(lines) if l.get("event") == "test")
        epochs = [l for l in lines if l.get("event") == "epoch"]
        result = {"test": test, "epochs": len(epochs), "seconds": round(time.time() - start, 1),
                  "images_per_second": epochs[-1]["images_per_second"] if epochs else None,
                  "best_validation": max((l.get("validation_map_at_r", -1) for l in epochs), default=None)}
    cache[key] = result
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dml")
    ap.add_argument("output")
    ap.add_argument("--networks", default="mlp,convnet-s")
    ap.add_argument("--recipes", default="plain,tuned")
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--split", default="0-4:5-9")
    ap.add_argument("--tune", action="store_true", help="run dml tune for the MLP and each loss instead of the report")
    args = ap.parse_args()
    if args.tune:
        for loss in args.losses.split(","):
            arguments = tune_arguments(loss, args.split.split(":")[0])
            print("dml " + " ".join(arguments), flush=True)
            subprocess.run([args.dml, *arguments], check=True)
        return
    cache_path = args.output + ".runs.json"
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    train, test = args.split.split(":")
    rows = []
    for network in args.networks.split(","):
        for loss in args.losses.split(","):
            for name in args.recipes.split(","):
                results = []
                for seed in [int(s) for s in args.seeds.split(",")]:
                    arguments = recipe(name, network, loss, train, test, seed)
                    r = run(args.dml, arguments, cache)
                    json.dump(cache, open(cache_path + ".tmp", "w"), indent=1)
                    os.replace(cache_path + ".tmp", cache_path)
                    results.append((seed, arguments, r))
                    if "test" in r:
                        t = r["test"]
                        print(f"{network:10s} {loss:18s} {name:6s} seed {seed}: MAP@R {t['trained']['map_at_r']:.4f}"
                              f" (init {t['untrained']['map_at_r']:.4f}, raw {t['raw_input']['map_at_r']:.4f}), {r['seconds']} s", flush=True)
                rows.append((network, loss, name, results))
    with open(args.output, "w") as f:
        f.write(f"<!-- written by Benchmarks/Scripts/fmnist05_report.py on {time.strftime('%Y-%m-%d')} -->\n")
        f.write(f"Split: train on classes {train}, test on {test}; seeds {args.seeds}; MAP@R on the test classes.\n\n")
        f.write("| network | loss | recipe | MAP@R (mean of seeds) | P@1 | epochs run | init MAP@R | raw MAP@R | PML plain MAP@R |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
        for network, loss, name, results in rows:
            ok = [r for _, _, r in results if "test" in r]
            if not ok:
                f.write(f"| {network} | {loss} | {name} | failed: {results[0][2].get('error', '?')} | | | | | |\n")
                continue
            mean = lambda key, part: sum(r["test"][part][key] for r in ok) / len(ok)
            pml = PML.get((network, loss)) if args.split == "0-4:5-9" else None
            f.write(f"| {network} | {loss} | {name} | {mean('map_at_r', 'trained'):.4f} | {mean('precision_at_1', 'trained'):.4f} | "
                    f"{'/'.join(str(r['epochs']) for r in ok)} | {mean('map_at_r', 'untrained'):.4f} | {mean('map_at_r', 'raw_input'):.4f} | "
                    f"{'' if pml is None else f'{pml:.4f}'} |\n")
        f.write("\nCommands (`dml train` plus `--log json --log-every 0`; seed as listed):\n\n")
        for network, loss, name, results in rows:
            f.write(f"- {network}, {loss}, {name}: `dml train {' '.join(results[0][1])}`\n")


if __name__ == "__main__":
    main()
