#!/usr/bin/env bash
# Data-parallel training under a real mpirun (Open MPI), run by `make mpi` (part of `make test`).
# Small on purpose: 2 ranks on a 2-core machine. Every step prints what it checks; any failure
# exits non-zero. Outputs go to a temporary folder, removed at the end with every job started.
set -euo pipefail
DML=${DML:-.build/debug/dml}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
work=$(mktemp -d "${TMPDIR:-/tmp}/dml-mpi.XXXXXX")
jobs_started=()
cleanup() {
  for j in "${jobs_started[@]}"; do kill -KILL -- -"$j" 2>/dev/null || true; done
  pkill -KILL -f "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "mpi-tests: FAILED: $*"; exit 1; }
TRAIN=(train --train-classes 0-1 --test-classes 5-6 --network mlp:hidden=64,embedding=32 --loss contrastive --miner pair-margin
  --batch m-per-class:m=4,size=64 --log json --log-every 0 --seed 3 --threads 1)

echo "== equivalence: 2 ranks against one process, every case, Float and Double"
"${MPIRUN[@]}" -np 2 "$DML" check-distributed | tee "$work/check.txt"
grep -q "every check passed" "$work/check.txt" || fail "check-distributed"

echo "== equivalence: 3 ranks, unequal shards (22, 21, 21 rows of 64)"
"${MPIRUN[@]}" -np 3 "$DML" check-distributed --batch 64 --check triplet+semihard --check proxy-anchor --check contrastive+memory | tee "$work/check3.txt"
grep -q "every check passed" "$work/check3.txt" || fail "check-distributed on 3 ranks"

echo "== every deliberate mistake fails the check"
for m in detached-gather summed-gradients averaged-gradients; do
  if "${MPIRUN[@]}" -np 2 "$DML" check-distributed --scalar f64 --mistake "$m" > "$work/$m.txt" 2>&1; then
    cat "$work/$m.txt"; fail "the mistake $m passed the check"
  fi
  [ "$(grep -c ' FAIL$' "$work/$m.txt")" -eq 6 ] || { cat "$work/$m.txt"; fail "the mistake $m did not fail every case"; }
  echo "$m: 6 of 6 cases fail, as they must (worst: $(grep ' FAIL$' "$work/$m.txt" | awk '{print $(NF-2)}' | sort -g | head -1) relative difference or more)"
done

echo "== resume after a kill of the whole job is exact"
"${MPIRUN[@]}" -np 2 "$DML" "${TRAIN[@]}" --epochs 2 --checkpoint "$work/straight" > "$work/straight.log"
# The job is killed once its first checkpoint exists (in epoch 2, or after it: then the test
# below says so instead of passing).
setsid "${MPIRUN[@]}" -np 2 "$DML" "${TRAIN[@]}" --epochs 2 --checkpoint "$work/killed" > "$work/killed.log" 2>&1 &
job=$!; jobs_started+=("$job")
for _ in $(seq 600); do [ -e "$work/killed/latest" ] && break; sleep 0.05; done
kill -KILL -- -"$job" 2>/dev/null || true
wait "$job" 2>/dev/null || true
[ -e "$work/killed/latest" ] || fail "no checkpoint survived the kill"
"${MPIRUN[@]}" -np 2 "$DML" train --checkpoint "$work/killed" --resume --epochs 2 --threads 1 --log json --log-every 0 > "$work/resumed.log"
grep '"event":"epoch"' "$work/resumed.log" | grep -q '"epoch":2,' || fail "the kill came too late: the resumed run trained no epoch"
cmp "$work/straight/latest/parameters.safetensors" "$work/killed/latest/parameters.safetensors" || fail "the resumed parameters differ"
cmp "$work/straight/latest/optimizer.safetensors" "$work/killed/latest/optimizer.safetensors" || fail "the resumed optimizer state differs"
echo "resumed after a kill: parameters and optimizer state bitwise those of the uninterrupted run"

echo "== evaluation with the test rows shared among ranks reports one process's metrics"
"$DML" evaluate --checkpoint "$work/straight" > "$work/eval1.txt"
"${MPIRUN[@]}" -np 2 "$DML" evaluate --checkpoint "$work/straight" > "$work/eval2.txt"
cmp "$work/eval1.txt" "$work/eval2.txt" || { cat "$work/eval1.txt" "$work/eval2.txt"; fail "dml evaluate on 2 ranks differs"; }
echo "dml evaluate on 2 ranks: $(cut -c1-60 "$work/eval2.txt")…, as on one"

echo "== a killed rank stops the job with a named error, and the last checkpoint stays whole"
setsid "${MPIRUN[@]}" -np 2 "$DML" "${TRAIN[@]}" --epochs 50 --checkpoint "$work/victim" > "$work/victim.log" 2>&1 &
job=$!; jobs_started+=("$job")
for _ in $(seq 600); do [ -e "$work/victim/latest" ] && break; sleep 0.05; done
rank1=$(for p in $(pgrep -f "checkpoint $work/victim"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo $p; done | head -1)
[ -n "$rank1" ] || fail "rank 1 not found"
start=$(date +%s)
kill -KILL "$rank1"
status=0; wait "$job" || status=$?
took=$(( $(date +%s) - start ))
[ "$status" -ne 0 ] || fail "the job went on after rank 1 was killed"
[ "$took" -le 60 ] || fail "the job took $took s to stop"
grep -qi "signal 9\|killed" "$work/victim.log" || { cat "$work/victim.log"; fail "the error does not name the killed rank"; }
echo "killed rank 1: the job stopped in ${took} s (status $status): $(grep -i 'signal 9' "$work/victim.log" | head -1 | sed 's/^ *//')"
# Resumed on one process, up to epoch 2: from epoch 1's checkpoint if that is the last, else as far as it got.
done_epochs=$(sed -n 's/^ *"epoch" *: *\([0-9]*\).*/\1/p' "$work/victim/latest/state.json" | head -1)
[ -n "$done_epochs" ] || fail "the last checkpoint of the killed job has no epoch"
"$DML" train --checkpoint "$work/victim" --resume --epochs "$(( done_epochs > 1 ? done_epochs + 1 : 2 ))" --threads 1 --log json --log-every 0 > "$work/victim-resumed.log" \
  || fail "the last checkpoint of the killed job does not resume"
echo "its last checkpoint (epoch $done_epochs) resumes on one process"
loss() { grep '"event":"epoch"' "$1" | grep '"epoch":2,' | sed 's/.*"mean_loss":\([-0-9.e]*\).*/\1/'; }
if [ "$done_epochs" = 1 ]; then
awk -v a="$(loss "$work/straight.log")" -v b="$(loss "$work/victim-resumed.log")" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }' \
  || fail "epoch 2 on one process after epoch 1 on two: loss $(loss "$work/victim-resumed.log"), uninterrupted on two: $(loss "$work/straight.log")"
echo "epoch 2 on one process after epoch 1 on two: loss $(loss "$work/victim-resumed.log"); on two ranks throughout $(loss "$work/straight.log")"
fi

echo "== a network with BatchNorm statistics does not resume on another number of ranks"
"${MPIRUN[@]}" -np 2 "$DML" "${TRAIN[@]}" --network mlp:hidden=64,embedding=32,batchnorm=true --epochs 1 --checkpoint "$work/bn" > "$work/bn.log"
if "$DML" train --checkpoint "$work/bn" --resume --epochs 2 --threads 1 > "$work/bn-resumed.log" 2>&1; then fail "a BatchNorm run resumed on 1 rank after 2"; fi
grep -q "was made on 2 ranks and this one has 1; its network computes network.*running" "$work/bn-resumed.log" || { cat "$work/bn-resumed.log"; fail "the refusal does not say why"; }
echo "refused: $(grep -o 'was made on 2 ranks.*' "$work/bn-resumed.log" | head -1)"

echo "== a rank that hangs stops the job after --mpi-timeout"
setsid "${MPIRUN[@]}" -np 2 "$DML" "${TRAIN[@]}" --epochs 50 --mpi-timeout 5 --checkpoint "$work/hung" > "$work/hung.log" 2>&1 &
job=$!; jobs_started+=("$job")
for _ in $(seq 600); do [ -e "$work/hung/latest" ] && break; sleep 0.05; done
rank1=$(for p in $(pgrep -f "checkpoint $work/hung"); do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo $p; done | head -1)
[ -n "$rank1" ] || fail "rank 1 not found"
start=$(date +%s)
kill -STOP "$rank1"
status=0; wait "$job" || status=$?
took=$(( $(date +%s) - start ))
kill -KILL "$rank1" 2>/dev/null || true
[ "$status" -ne 0 ] || fail "the job went on with rank 1 stopped"
[ "$took" -le 60 ] || fail "the job took $took s to stop"
grep -q "waited .* for the other ranks" "$work/hung.log" || { cat "$work/hung.log"; fail "no time-out error"; }
echo "hung rank 1: stopped in ${took} s: $(grep -o 'rank 0 of 2: .*waited [0-9]* s' "$work/hung.log" | head -1)"

echo "== ranks started with different flags are refused at start-up"
if "${MPIRUN[@]}" -np 1 "$DML" "${TRAIN[@]}" --epochs 1 : -np 1 "$DML" "${TRAIN[@]}" --epochs 1 --loss triplet > "$work/mismatch.log" 2>&1; then
  fail "ranks with different losses trained"
fi
grep -q "rank 1 of 2 was started with another configuration than rank 0 (different: .*loss" "$work/mismatch.log" || { cat "$work/mismatch.log"; fail "the mismatch is not named"; }
echo "refused: $(grep -o 'rank 1 of 2 was started.*' "$work/mismatch.log" | head -1)"

echo "mpi-tests: every check passed"
