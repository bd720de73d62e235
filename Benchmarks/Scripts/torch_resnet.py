#!/usr/bin/env python3
"""torch's side of `dml-bench resnet`: forward + backward of torchvision's ResNet-18 and ResNet-50
(training mode, fc of 512) per batch, median seconds of 3 trials after a warm-up, on
--threads threads. Prints the same CSV."""
import argparse, time
import torch, torchvision

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=32)
p.add_argument("--sizes", default="112,224")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
print("network,size,batch,seconds,images_per_second,gflops")
for size in [int(s) for s in a.sizes.split(",")]:
    x = torch.rand(a.batch, 3, size, size) - 0.5
    g = torch.rand(a.batch, 512) - 0.5
    for name, macs in [("resnet18", 1.82e9), ("resnet50", 4.11e9)]:
        model = getattr(torchvision.models, name)(num_classes=512).train()
        def step():
            model.zero_grad(set_to_none=True)
            model(x).backward(g)
        step()
        times = []
        for _ in range(3):
            t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
        s = sorted(times)[1]
        flops = macs * size * size / (224 * 224) * 2 * 3 * a.batch
        print(f"{name},{size},{a.batch},{s:.3f},{a.batch / s:.1f},{flops / s / 1e9:.1f}")
