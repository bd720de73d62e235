#!/usr/bin/env bash
# The image pipeline beside torchvision (make bench-images): writes runs/bench-images.md.
# 1. decode + random-resized-crop + flip + normalise to 3x112x112 on 2 workers over 10,000 JPEGs of
#    500x375 (generated once into .build-bench), dml against torchvision's ImageFolder with a
#    2-worker DataLoader (Debian's python3-torchvision), rounds interleaved, best of each;
# 2. dml train on that folder with ConvNet-S at 3x64x64: the share of step time spent waiting for input;
# 3. peak memory of one epoch through the pipeline over 10,000 and 100,000 small JPEGs.
set -euo pipefail
BENCH=${BENCH:-.build/release/dml-bench}
DML=${DML:-.build/release/dml}
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-3}
big=.build-bench/jpeg-500x375
[ -d "$big" ] && [ "$(find "$big" -name '*.jpg' | wc -l)" = 10000 ] || "$BENCH" images generate "$big" 10000 500 375
best_dml=0; best_tv=0
for r in $(seq "$ROUNDS"); do
  d=$("$BENCH" images throughput "$big" --rounds 1 | sed -n 's/^dml: \([0-9]*\) images.*/\1/p')
  t=$("$PY" Benchmarks/Scripts/torchvision_images.py "$big" --rounds 1 | sed -n 's/^torchvision [^:]*: \([0-9]*\) images.*/\1/p')
  echo "round $r: dml $d images/s, torchvision $t images/s" >&2
  [ "$d" -gt "$best_dml" ] && best_dml=$d
  [ "$t" -gt "$best_tv" ] && best_tv=$t
done
tv_version=$("$PY" -c "import torchvision, torch; print(f'torchvision {torchvision.__version__}, torch {torch.__version__}')")
# End to end: ConvNet-S on 3x64x64 crops of the 500x375 JPEGs, classes 0-7 trained, 8-9 tested.
log=$(mktemp); trap 'rm -f "$log"' EXIT
"$DML" train --data "folder:$big" --image-size 64 --train-classes 0-7 --test-classes 8-9 --network convnet-s \
  --loss contrastive --miner pair-margin --epochs 1 --log json --log-every 0 --threads 2 --workers 2 > "$log"
epoch=$(grep '"event":"epoch"' "$log")
wait_s=$(echo "$epoch" | sed -n 's/.*"input_wait_seconds":\([0-9.]*\).*/\1/p')
step_s=$(echo "$epoch" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
train_ips=$(echo "$epoch" | sed -n 's/.*"images_per_second":\([0-9.]*\).*/\1/p')
# Memory: the same pipeline over 10,000 and 100,000 JPEGs of 96x72.
for n in 10000 100000; do
  f=.build-bench/jpeg-96x72-$n
  [ -d "$f" ] && [ "$(find "$f" -name '*.jpg' | wc -l)" = "$n" ] || "$BENCH" images generate "$f" "$n" 96 72 >&2
done
m10=$("$BENCH" images memory .build-bench/jpeg-96x72-10000)
m100=$("$BENCH" images memory .build-bench/jpeg-96x72-100000)
{
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $tv_version; best of $ROUNDS interleaved rounds"
  echo
  echo "| pipeline (10,000 JPEGs of 500x375 → 3x112x112, 2 workers) | images/s |"
  echo "|---|---|"
  echo "| dml (libjpeg-turbo with DCT scaling, swscale) | $best_dml |"
  echo "| torchvision ImageFolder + DataLoader (PIL) | $best_tv |"
  echo "| ratio | $(awk -v a="$best_dml" -v b="$best_tv" 'BEGIN { printf "%.2f×", a / b }') |"
  echo
  echo "dml train, ConvNet-S on 3x64x64, 8,000 JPEGs of 500x375, 2 threads and 2 decoding workers: $train_ips img/s, waiting for input $wait_s s of $step_s s ($(awk -v w="$wait_s" -v s="$step_s" 'BEGIN { printf "%.1f%%", 100 * w / s }'))."
  echo
  echo "Peak memory of one epoch through the pipeline (96x72 JPEGs → 3x64x64, batches of 64, 2 workers, 2 batches ahead):"
  echo "- 10,000 images: $m10"
  echo "- 100,000 images: $m100"
} | tee runs/bench-images.md
