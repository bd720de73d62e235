#!/bin/bash
# make reliability: the kill-and-resume loop, the fuzzers and the resource bounds, on release
# builds, with a summary recorded in Docs/RELIABILITY.md (issue 10).
set -o pipefail
out=Docs/RELIABILITY.md
failed=0
{
  echo "# Reliability run"
  echo
  echo "Written by \`make reliability\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)). Every line below is measured."
  echo
  echo '## Kill -9 and resume'
  echo '```'
  python3 Benchmarks/Scripts/kill_resume.py .build/release/dml 25 1 || failed=1
  echo '```'
  echo
  echo '## Fuzzing (seeded mutation, 100,000 executions per target)'
  echo '```'
  .build/release/dml-fuzz 100000 1 2>&1 | grep -v '^$' || failed=1
  echo '```'
  echo
  echo '## Resource bounds (peak resident memory ≤ inputs + 512 MiB)'
  echo '```'
  for check in search mining:semihard mining:batch-hard mining:facenet-semihard mining:multi-similarity mining:pair-margin mining:distance-weighted; do
    .build/release/dml-bench resources "$check" || failed=1
  done
  echo '```'
  echo
  if [ "$failed" = 0 ]; then echo "Summary: no crash, hang, mismatch or bound exceeded."; else echo "Summary: FAILURES above."; fi
  exit $failed  # the group runs in a subshell (it feeds tee): its status is the script's
} 2>&1 | tee "$out"
