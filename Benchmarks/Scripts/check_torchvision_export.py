#!/usr/bin/env python3
"""Loads a network written by `dml export-weights` into torchvision with load_state_dict(strict=True)
and compares its embeddings with dml's on the same inputs:

    python3 check_torchvision_export.py --arch resnet18 --weights exported.safetensors \
        --inputs inputs.npy --embeddings dml-embeddings.npy [--normalize]

inputs.npy holds the network inputs as dml sees them (rows of height x width x channels floats,
NHWC) with their side in --size; the model runs in eval mode (running BatchNorm statistics), as
`dml embed` does. Prints the largest difference and exits 1 above --tolerance."""
import argparse, sys
import numpy as np
import torch, torchvision
from export_torchvision import read_safetensors


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--normalize", action="store_true", help="L2-normalise the outputs (dml's normalize=true)")
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    state = read_safetensors(a.weights)
    if "fc.weight" in state:
        model = getattr(torchvision.models, a.arch)(num_classes=state["fc.weight"].shape[0])
    else:
        # head_bn=true: the embedding layer and its BatchNorm, as nn.Sequential in place of fc.
        model = getattr(torchvision.models, a.arch)()
        out, features = state["fc.0.weight"].shape
        model.fc = torch.nn.Sequential(torch.nn.Linear(features, out), torch.nn.BatchNorm1d(out))
    model.load_state_dict(state, strict=True)
    model.eval()
    x = np.load(a.inputs).astype(np.float32).reshape(-1, a.size, a.size, a.channels).transpose(0, 3, 1, 2)
    with torch.no_grad():
        e = model(torch.from_numpy(np.ascontiguousarray(x)))
        if a.normalize:
            e = torch.nn.functional.normalize(e, dim=1)
    ours = np.load(a.embeddings)
    worst = float(np.abs(e.numpy() - ours).max())
    print(f"strict load of {len(state)} tensors: ok; {ours.shape[0]} embeddings, largest difference {worst:.3g}")
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
