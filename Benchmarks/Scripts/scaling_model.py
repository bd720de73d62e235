#!/usr/bin/env python3
"""The data-parallel scaling model of Docs/distributed.md: the share of a training step spent in
communication on N nodes, for a global batch B, per network and mode.

Per step (ring algorithms, as Open MPI uses for large messages; no overlap of communication with
computation, as in dml's step):
  all-reduce of the P parameter gradients:   T_ar = 2(N-1)·alpha + 2(N-1)/N · 4P / beta
  all-gather of the B×D embeddings:          T_ag =  (N-1)·alpha +  (N-1)/N · 4BD / beta
  network forward + backward on B/N rows:    T_net = (B/N) · a
  miner + loss on the gathered batch:        T_loss = kappa · B²      (global mode: every rank, whole batch)
                                             T_loss = kappa · B² / N  (local-anchor mode: own anchors)
  communication share = (T_ar + T_ag) / (T_net + T_loss + T_ar + T_ag)

a and kappa are measured on one node (make bench-mpi and the batch sweep in Docs/distributed.md);
alpha and beta describe the link. Give your own with the options.
"""
import argparse

NETWORKS = {
    # name: (parameters, seconds per image of forward + backward on one node, kappa: seconds per B² of miner + loss)
    "mlp": (467_584, 7.4e-6, 18.7e-9),
    "convnet-s": (420_352, 85e-6, 18.7e-9),
}


def step(network, nodes, batch, mode, alpha, beta, dimension):
    p, a, kappa = NETWORKS[network]
    n = nodes
    t_ar = 2 * (n - 1) * alpha + 2 * (n - 1) / n * 4 * p / beta
    t_ag = (n - 1) * alpha + (n - 1) / n * 4 * batch * dimension / beta
    t_net = batch / n * a
    t_loss = kappa * batch * batch / (n if mode == "local" else 1)
    comm = t_ar + t_ag
    return comm / (t_net + t_loss + comm), t_net + t_loss + comm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alpha", type=float, default=25e-6, help="link latency per message, s (25 GbE with TCP: about 25 µs)")
    ap.add_argument("--beta", type=float, default=25e9 / 8 * 0.9, help="link bandwidth, bytes/s (25 GbE at 90%%)")
    ap.add_argument("--dimension", type=int, default=128)
    args = ap.parse_args()
    batches = [128, 512, 1024, 2048, 4096, 8192, 16384, 65536]
    print(f"link: alpha {args.alpha * 1e6:.0f} µs, beta {args.beta / 1e9:.2f} GB/s; embedding dimension {args.dimension}\n")
    print("| network | mode | nodes | " + " | ".join(f"B={b}" for b in batches) + " | smallest B under 20% |")
    print("|---|---|---|" + "---|" * len(batches) + "---|")
    for network in NETWORKS:
        for mode in ["global", "local"]:
            for nodes in [8, 64]:
                cells = []
                for b in batches:
                    share, t = step(network, nodes, b, mode, args.alpha, args.beta, args.dimension)
                    cells.append(f"{100 * share:.0f}%")
                under = next((b for b in range(nodes, 1 << 22, nodes) if step(network, nodes, b, mode, args.alpha, args.beta, args.dimension)[0] < 0.2), None)
                print(f"| {network} | {mode} | {nodes} | " + " | ".join(cells) + f" | {under if under else '> 4M'} |")
    print("\nSpeed-up over one node at the same global batch (T_1 = B·a + kappa·B², no communication):\n")
    print("| network | mode | nodes | " + " | ".join(f"B={b}" for b in batches) + " |")
    print("|---|---|---|" + "---|" * len(batches))
    for network in NETWORKS:
        _, a, kappa = NETWORKS[network]
        for mode in ["global", "local"]:
            for nodes in [8, 64]:
                cells = []
                for b in batches:
                    _, t = step(network, nodes, b, mode, args.alpha, args.beta, args.dimension)
                    cells.append(f"{(b * a + kappa * b * b) / t:.1f}×")
                print(f"| {network} | {mode} | {nodes} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
