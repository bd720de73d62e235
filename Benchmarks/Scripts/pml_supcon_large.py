"""PML's SupConLoss over one large batch (forward and backward), for the anchor-block benchmark:
time and peak resident memory beside `dml-bench resources anchor-blocks:ROWS`.

Usage: python pml_supcon_large.py [N] [THREADS]   (N 16384, THREADS 2 by default)
"""
import resource
import sys
import time

import torch
from pytorch_metric_learning import losses

n = int(sys.argv[1]) if len(sys.argv) > 1 else 16384
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
torch.manual_seed(0)
x = torch.nn.functional.normalize(torch.randn(n, 128), dim=1).requires_grad_(True)
y = torch.arange(n) % 512
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.time()
loss = losses.SupConLoss(temperature=0.1)(x, y)
loss.backward()
seconds = time.time() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"PML SupConLoss at batch {n:,} × 128: loss {loss.item():.6f}, {seconds:.2f} s, "
      f"peak {peak:.0f} MB ({peak - base:.0f} MB above the start), {torch.get_num_threads()} threads")
