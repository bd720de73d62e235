#!/usr/bin/env python3
"""Golden values of torchvision's ResNet-18, -34 and -50 in float64 (Debian's python3-torchvision),
for Tests/DMLNetworksTests/ResNetTests.swift. Writes resnet18.json, resnet34.json and resnet50.json
beside itself.

Every parameter and the input are set from an integer hash, not from a random generator, so that
the Swift test rebuilds them exactly without storing 25 million weights:
    u(k, i) = ((i * 2654435761 + k * 40503 + 12345) mod 2^32) / 2^32 - 0.5     (exact in float64)
where k numbers the state dict's tensors in order (the input is k = 1000) and i is the element's
index in torch's layout. Conv and linear weights are u * 2 * sqrt(3 / fan_in) (He-uniform's scale),
biases u * 0.2, BatchNorm weights 1 + 0.2 u, biases 0.2 u, running means 0.2 u, running variances
1 + 0.5 (u + 0.5). The fc layer is Linear(features, 8): the embedding.

For each mode (train: batch statistics; frozen: running statistics, as model.eval() for the
BatchNorm layers only) the file holds the embeddings of a batch of 4 images of 3x64x64 and, for
the scalar loss L = sum(embedding * r) with r = u(2000, i), every parameter's gradient digest:
its projection on u(3000 + j, i), j its place in the file's list of names, and its Euclidean norm (the full gradients would take
hundreds of megabytes)."""
import json, os, sys
import torch, torchvision

M = 2 ** 32

def u(k, n):
    i = torch.arange(n, dtype=torch.int64)
    return ((i * 2654435761 + k * 40503 + 12345) % M).double() / M - 0.5

def fill(model):
    for k, (name, t) in enumerate(model.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            continue
        v = u(k, t.numel()).reshape(t.shape)
        if name.endswith("running_mean"): v = 0.2 * v
        elif name.endswith("running_var"): v = 1 + 0.5 * (v + 0.5)
        elif t.dim() == 1 and ("bn" in name or "downsample.1" in name): v = 1 + 0.2 * v if name.endswith("weight") else 0.2 * v
        elif t.dim() == 1: v = 0.2 * v
        else: v = v * 2 * (3.0 / (t[0].numel())) ** 0.5
        t.copy_(v)

def run(arch):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=8).double()
    with torch.no_grad():
        fill(model)
    # Each tensor's name, torch shape and k (its place in the state dict, num_batches_tracked included).
    names = [(n, list(t.shape), k) for k, (n, t) in enumerate(model.state_dict().items()) if not n.endswith("num_batches_tracked")]
    x = u(1000, 4 * 3 * 64 * 64).reshape(4, 3, 64, 64)
    out = {"names": names, "modes": {}}
    state = {n: t.clone() for n, t in model.state_dict().items()}
    for mode in ["train", "frozen"]:
        model.load_state_dict(state)
        model.train()
        if mode == "frozen":
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d): m.eval()
        model.zero_grad()
        e = model(x)
        r = u(2000, e.numel()).reshape(e.shape)
        (e * r).sum().backward()
        params = dict(model.named_parameters())
        digests = {}
        for k, (n, _, _) in enumerate(names):
            if n in params:
                g = params[n].grad.reshape(-1)
                digests[n] = [float((g * u(3000 + k, g.numel())).sum()), float(g.norm())]
        running = {n: [float(t.double().sum()), float(t.double().norm())] for n, t in model.state_dict().items() if n.endswith("running_mean") or n.endswith("running_var")}
        out["modes"][mode] = {"embedding": e.detach().reshape(-1).tolist(), "gradients": digests, "running_after": running}
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, f"{arch}.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(arch, "written", len(names), "tensors")

if __name__ == "__main__":
    for arch in sys.argv[1:] or ["resnet18", "resnet34", "resnet50"]:
        run(arch)
