#!/usr/bin/env python3
"""torchvision's ImageFolder with a DataLoader of N workers over FOLDER: decode (PIL) +
RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize to 3×S×S, batches of B; images/s,
best of R rounds. The reference of `make bench-images`."""
import argparse
import time

import torch
import torchvision
from torchvision import transforms as T

ap = argparse.ArgumentParser()
ap.add_argument("folder")
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--size", type=int, default=112)
ap.add_argument("--rounds", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(1)
t = T.Compose([T.RandomResizedCrop(a.size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
data = torchvision.datasets.ImageFolder(a.folder, transform=t)
best = 0
for r in range(a.rounds):
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers)
    start = time.time()
    n = 0
    for x, y in loader:
        n += x.shape[0]
    rate = n / (time.time() - start)
    best = max(best, rate)
    print(f"round {r + 1}: {rate:.0f} images/s")
print(f"torchvision {torchvision.__version__}: {best:.0f} images/s (best of {a.rounds}), {a.workers} workers, {len(data)} files, 3x{a.size}x{a.size}")
