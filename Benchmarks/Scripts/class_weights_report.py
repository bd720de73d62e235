"""fmnist-05 with the class-weight losses (ArcFace, CosFace, normalized softmax): dml against
pytorch-metric-learning 2.9.0, same recipe (MLP 784-512-128, Adam 1e-3 for the network and the
class weights, shuffled batches of 128, 5 epochs, train classes 0-4, test classes 5-9), seeds 0-2,
interleaved in one run. Writes a Markdown table with the raw rows beside it (OUTPUT.runs.json).

Usage: class_weights_report.py DML PYTHON OUTPUT [--seeds 0,1,2] [--epochs 5]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

LOSSES = ["arcface", "cosface", "normalized-softmax"]
here = os.path.dirname(os.path.abspath(__file__))


def run_dml(dml, loss, seed, epochs):
    args = [dml, "train", "--train-classes", "0-4", "--test-classes", "5-9", "--network", "mlp", "--loss", loss,
            "--batch", "shuffled:size=128", "--optimizer", "adam:lr=0.001", "--epochs", str(epochs), "--seed", str(seed),
            "--threads", "2", "--log", "json", "--log-every", "0"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    test = [json.loads(l) for l in out.splitlines() if '"event":"test"' in l][-1]
    epochs_rows = [json.loads(l) for l in out.splitlines() if '"event":"epoch"' in l]
    return {"map_at_r": test["trained"]["map_at_r"], "precision_at_1": test["trained"]["precision_at_1"],
            "images_per_second": statistics.median(r["images_per_second"] for r in epochs_rows)}


def run_pml(python, loss, seed, epochs):
    args = [python, os.path.join(here, "pml_reference.py"), "train", "--network", "mlp", "--loss", loss, "--epochs",
            str(epochs), "--seed", str(seed), "--threads", "2"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dml")
    parser.add_argument("python")
    parser.add_argument("output")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    started = time.time()
    for loss in LOSSES:
        for seed in seeds:  # interleaved: one run of each side in turn
            d = run_dml(args.dml, loss, seed, args.epochs)
            p = run_pml(args.python, loss, seed, args.epochs)
            rows.append({"loss": loss, "seed": seed, "dml": d, "pml": p})
            print(f"{loss} seed {seed}: dml MAP@R {d['map_at_r']:.4f}, PML {p['map_at_r']:.4f}", file=sys.stderr)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = [
        "# Class-weight losses on fmnist-05: dml against PML 2.9.0",
        "",
        f"Written by `make report-class-weights` on {time.strftime('%Y-%m-%d', time.gmtime())}, {cpu}, "
        f"{os.cpu_count()} cores, {(time.time() - started) / 60:.1f} minutes. Same recipe on both sides: MLP 784-512-128 "
        f"(L2-normalised), Adam 1e-3 for the network and the class weights, shuffled batches of 128, "
        f"{args.epochs} epochs, train classes 0-4, test classes 5-9 (MAP@R over all 5,000 test images), seeds "
        f"{args.seeds}. Target: dml's mean MAP@R no lower than PML's minus 0.01.",
        "",
        "| loss | dml MAP@R (mean ± sd) | PML MAP@R (mean ± sd) | difference | target met | dml img/s | PML img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for loss in LOSSES:
        d = [r["dml"]["map_at_r"] for r in rows if r["loss"] == loss]
        p = [r["pml"]["map_at_r"] for r in rows if r["loss"] == loss]
        di = [r["dml"]["images_per_second"] for r in rows if r["loss"] == loss]
        pi = [r["pml"]["images_per_second"] for r in rows if r["loss"] == loss]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
        diff = statistics.mean(d) - statistics.mean(p)
        summary[loss] = diff >= -0.01
        lines.append(f"| {loss} | {statistics.mean(d):.4f} ± {sd(d):.4f} | {statistics.mean(p):.4f} ± {sd(p):.4f} | "
                     f"{diff:+.4f} | {'yes' if diff >= -0.01 else 'no'} | {statistics.median(di):,.0f} | {statistics.median(pi):,.0f} |")
    lines += ["", "Per seed:", "", "| loss | seed | dml MAP@R | PML MAP@R |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['loss']} | {r['seed']} | {r['dml']['map_at_r']:.4f} | {r['pml']['map_at_r']:.4f} |")
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(args.output + ".runs.json", "w") as f:
        json.dump(rows, f, indent=1)
    print("\n".join(lines))
    sys.exit(0 if all(summary.values()) else 1)


if __name__ == "__main__":
    main()
