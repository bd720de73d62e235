#!/usr/bin/env bash
# Data-parallel scaling on this machine (make bench-mpi): one epoch of Fashion-MNIST (60,000
# images, global batch 128, contrastive loss with the pair-margin miner) on 1 rank × 2 threads
# against 2 ranks × 1 thread, in the global and the local-anchor modes, for the MLP and ConvNet-S;
# rounds interleaved, the best of each kept. Prints a Markdown table and writes it to
# runs/bench-mpi.md. The communication share is the time a rank spent in collectives (waiting for
# the other included) over the epoch's step time.
set -euo pipefail
DML=${DML:-.build/release/dml}
ROUNDS=${ROUNDS:-3}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(grep -qw avx512f /proc/cpuinfo && echo SkylakeX || echo Haswell)}
mkdir -p runs
out=runs/bench-mpi.md
A=(train --train-classes 0-9 --test-classes 0-9 --allow-overlap --epochs 1 --log json --log-every 0 --loss contrastive --miner pair-margin
  --batch m-per-class:m=4,size=128 --seed 1)
declare -A best comm
epoch() { grep '"event":"epoch"' | head -1; }
field() { sed -n "s/.*\"$1\":\([0-9.e-]*\).*/\1/p"; }
for round in $(seq "$ROUNDS"); do
  for net in mlp convnet-s; do
    for setup in "1x2" "2x1" "2x1-local"; do
      case $setup in
        1x2) line=$("$DML" "${A[@]}" --network $net --threads 2 2>/dev/null | epoch) ;;
        2x1) line=$(mpirun --allow-run-as-root --oversubscribe -np 2 -x OPENBLAS_CORETYPE "$DML" "${A[@]}" --network $net --threads 1 2>/dev/null | epoch) ;;
        2x1-local) line=$(mpirun --allow-run-as-root --oversubscribe -np 2 -x OPENBLAS_CORETYPE "$DML" "${A[@]}" --network $net --threads 1 --local-anchors 2>/dev/null | epoch) ;;
      esac
      ips=$(echo "$line" | field images_per_second)
      seconds=$(echo "$line" | field seconds)
      c=$(echo "$line" | field communication_seconds); c=${c:-0}
      key="$net $setup"
      if [ -z "${best[$key]:-}" ] || awk -v a="$ips" -v b="${best[$key]}" 'BEGIN { exit !(a > b) }'; then
        best[$key]=$ips
        comm[$key]=$(awk -v c="$c" -v s="$seconds" 'BEGIN { printf "%.1f", 100 * c / s }')
      fi
      echo "round $round: $key: $ips img/s, communication $c s of $seconds s" >&2
    done
  done
done
{
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; OpenBLAS kernels: $OPENBLAS_CORETYPE; Open MPI $(mpirun --version | head -1 | awk '{print $NF}'); best of $ROUNDS interleaved rounds"
  echo
  echo "| network | 1 rank × 2 threads | 2 ranks × 1 thread (global) | ratio | communication | 2 ranks × 1 thread (local anchors) | ratio | communication |"
  echo "|---|---|---|---|---|---|---|---|"
  for net in mlp convnet-s; do
    one=${best["$net 1x2"]}; g=${best["$net 2x1"]}; l=${best["$net 2x1-local"]}
    printf "| %s | %.0f img/s | %.0f img/s | %.2f× | %s%% | %.0f img/s | %.2f× | %s%% |\n" "$net" "$one" "$g" "$(awk -v a="$g" -v b="$one" 'BEGIN{print a/b}')" \
      "${comm["$net 2x1"]}" "$l" "$(awk -v a="$l" -v b="$one" 'BEGIN{print a/b}')" "${comm["$net 2x1-local"]}"
  done
} | tee "$out"
