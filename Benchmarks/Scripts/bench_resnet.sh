#!/usr/bin/env bash
# ResNets beside torch (make bench-resnet): writes runs/bench-resnet.md.
# 1. forward + backward of ResNet-18 and ResNet-50 (training mode, fc of 512) at batch 32, on
#    3x112x112 and 3x224x224, 2 threads: dml-bench resnet against Benchmarks/Scripts/torch_resnet.py
#    (Debian's torch 1.13), rounds interleaved, the best of each;
# 2. fine-tuning ResNet-18 on 3x112x112 crops of the 500x375 JPEG folder of make bench-images:
#    dml train's images/s in its second epoch (the first also allocates every buffer), best of
#    the rounds as above, against the forward + backward figure.
set -euo pipefail
BENCH=${BENCH:-.build/release/dml-bench}
DML=${DML:-.build/release/dml}
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-3}
out=runs/bench-resnet.md
mkdir -p runs
declare -A best_dml best_torch
big=.build-bench/jpeg-500x375
best_tune=0; first_tune=0; tune_wait=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
for r in $(seq "$ROUNDS"); do
  while IFS=, read -r net size batch seconds ips gflops; do
    [ "$net" = network ] && continue
    k="$net,$size"; if [ -z "${best_dml[$k]:-}" ] || awk "BEGIN{exit !($seconds < ${best_dml[$k]%%,*})}"; then best_dml[$k]="$seconds,$ips,$gflops"; fi
  done < <("$BENCH" resnet --batch 32 --sizes 112,224 --threads 2)
  while IFS=, read -r net size batch seconds ips gflops; do
    [ "$net" = network ] && continue
    k="$net,$size"; if [ -z "${best_torch[$k]:-}" ] || awk "BEGIN{exit !($seconds < ${best_torch[$k]%%,*})}"; then best_torch[$k]="$seconds,$ips,$gflops"; fi
  done < <("$PY" Benchmarks/Scripts/torch_resnet.py --batch 32 --sizes 112,224 --threads 2)
  if [ -d "$big" ]; then
    "$DML" train --data "folder:$big" --image-size 112 --train-classes 0-1 --test-classes 8-9 --network resnet18:embedding=512 \
      --loss contrastive --miner pair-margin --batch m-per-class:m=16,size=32 --epochs 2 --log json --log-every 0 --threads 2 --workers 2 > "$log"
    first=$(grep '"event":"epoch"' "$log" | head -1 | sed -n 's/.*"images_per_second":\([0-9.]*\).*/\1/p')
    second=$(grep '"event":"epoch"' "$log" | tail -1 | sed -n 's/.*"images_per_second":\([0-9.]*\).*/\1/p')
    if awk "BEGIN{exit !($second > $best_tune)}"; then
      best_tune=$second; first_tune=$first
      tune_wait=$(grep '"event":"epoch"' "$log" | tail -1 | sed -n 's/.*"input_wait_seconds":\([0-9.]*\).*/\1/p')
    fi
  fi
  echo "round $r done" >&2
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mhz=$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
flags=$(grep -qw avx512f /proc/cpuinfo && echo 64 || echo 32)
peak=$(awk "BEGIN{printf \"%.0f\", 2 * $flags * $mhz / 1000}")
{
  echo "# ResNets: forward + backward beside torch"
  echo
  echo "CPU: $cpu, 2 threads; $($PY -c 'import torch; print("torch", torch.__version__)'); best of $ROUNDS interleaved rounds;"
  echo "nominal peak ${peak} GFLOP/s (2 cores x $flags float32 flops per cycle x $mhz MHz); OpenBLAS kernels: ${OPENBLAS_CORETYPE:-auto}."
  echo
  echo "| network | input | dml s/batch | torch s/batch | dml / torch speed | dml GFLOP/s | share of peak |"
  echo "|---|---|---|---|---|---|---|"
  for k in resnet18,112 resnet50,112 resnet18,224 resnet50,224; do
    IFS=, read -r ds di dg <<< "${best_dml[$k]}"; IFS=, read -r ts ti tg <<< "${best_torch[$k]}"
    echo "| ${k%,*} | 3x${k#*,}x${k#*,}, batch 32 | $ds | $ts | $(awk "BEGIN{printf \"%.2fx\", $ts / $ds}") | $dg | $(awk "BEGIN{printf \"%.0f%%\", 100 * $dg / $peak}") |"
  done
} > "$out"
if [ -d "$big" ]; then
  IFS=, read -r ds di dg <<< "${best_dml[resnet18,112]}"
  echo >> "$out"
  echo "Fine-tuning ResNet-18 on 3x112x112 random crops of 2,000 JPEGs of 500x375 (dml train, batch 32, 2 threads, 2 decoding workers, best second epoch of $ROUNDS runs): $best_tune images/s (that run's first epoch, which also allocates every buffer: $first_tune), $(awk "BEGIN{printf \"%.2f\", $best_tune / $di}")x the forward + backward figure ($di images/s); input wait ${tune_wait} s in the epoch." >> "$out"
fi
cat "$out"
