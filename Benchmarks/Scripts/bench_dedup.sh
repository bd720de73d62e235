#!/usr/bin/env bash
# Near-duplicate photos (make bench-dedup): writes runs/bench-dedup.md.
# A folder of generated scenes (dml export-images --scenes: tinted Fashion-MNIST items on colour
# gradients, no two alike); dml dedup --plant adds four edited copies of test images (JPEG quality
# 50, 75% size, 5% crop, 20% brighter) and scores the groups found. The threshold is calibrated on
# copies planted in one class that neither training nor the test uses.
#   1. raw pixels (the evaluation transforms' input, L2-normalised);
#   2. an instance-level embedding: ConvNet-S trained with NT-Xent on two random views of each scene
#      (SimCLR), on classes 0-3 only;
#   3. for contrast, raw pixels on tinted Fashion-MNIST items themselves, which hold near-identical
#      items of their own (not planted), so that precision there is not the method's alone.
set -euo pipefail
DML=${DML:-.build/release/dml}
out=runs/bench-dedup
mkdir -p "$out"
scenes=$out/scenes
[ -d "$scenes" ] || "$DML" export-images --scenes ${SCENES:-4000} --size 128 --output "$scenes"
common=(--image-size 64 --train-classes 4 --test-classes 5-9 --plant ${PLANT:-200} --calibrate)
score() { sed -n 's/.*pair precision \([0-9.]*\), recall \([0-9.]*\).*/\1 \2/p'; }
raw=$("$DML" dedup --data "folder:$scenes" "${common[@]}" 2>&1 >/dev/null | tee /dev/stderr | score)
rm -rf "$out/model"
start=$(date +%s)
"$DML" train --data "folder:$scenes" --image-size 64 --train-classes 0-3 --test-classes 5-9 --network convnet-s --loss ntxent \
  --batch views:views=2,size=128,labels=instance \
  --train-transforms "random-resized-crop:size=64,scale=0.7/1,ratio=0.8/1.25,color-jitter:brightness=0.3,contrast=0.2" \
  --epochs ${EPOCHS:-30} --checkpoint "$out/model" --log text --log-every 0 >/dev/null
trained_s=$(( $(date +%s) - start ))
trained=$("$DML" dedup --checkpoint "$out/model" "${common[@]}" 2>&1 >/dev/null | tee /dev/stderr | score)
fashion=$out/fashion
[ -d "$fashion" ] || "$DML" export-images --classes 0-9 --per-class 400 --tint --size 64 --output "$fashion"
fm=$("$DML" dedup --data "folder:$fashion" "${common[@]}" 2>&1 >/dev/null | tee /dev/stderr | score)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "# Near-duplicate photos: dml dedup --plant"
  echo
  echo "CPU: $cpu. Scenes: $(find "$scenes" -name '*.jpg' | wc -l) generated 128x128 JPEGs; the test is classes 5-9 with"
  echo "${PLANT:-200} planted originals x 4 edited copies; thresholds calibrated on copies planted in class 4."
  echo
  echo "| data | embedding | pair precision | pair recall |"
  echo "|---|---|---|---|"
  echo "| scenes | raw pixels, 3x64x64 | ${raw% *} | ${raw#* } |"
  echo "| scenes | ConvNet-S, NT-Xent on views of classes 0-3 (${EPOCHS:-30} epochs, ${trained_s} s) | ${trained% *} | ${trained#* } |"
  echo "| tinted Fashion-MNIST items (natural near-duplicates) | raw pixels, 3x64x64 | ${fm% *} | ${fm#* } |"
} > "$out.md"
cat "$out.md"
