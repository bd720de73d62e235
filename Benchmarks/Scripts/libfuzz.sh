#!/bin/bash
# make libfuzz: every loader and parser under libFuzzer (coverage-guided) with address sanitizer,
# RUNS executions each from valid seed files; the summary goes to Docs/RELIABILITY-libfuzzer.md.
set -o pipefail
RUNS=${RUNS:-100000}
bin=.build-libfuzzer/release/dml-libfuzzer
work=$(mktemp -d /dev/shm/dml-libfuzz.XXXXXX 2>/dev/null || mktemp -d)
failed=0
{
  echo "# Fuzzing under libFuzzer"
  echo
  echo "Written by \`make libfuzz\` on $(date -u +%Y-%m-%d): coverage-guided libFuzzer (the Swift toolchain's"
  echo "\`libclang_rt.fuzzer_no_main\`), address sanitizer, $RUNS executions per target from valid seeds."
  echo '```'
  for t in idx idx-pair csv npy npy-dataset safetensors index hyperparameters; do
    DML_FUZZ_TARGET=$t DML_FUZZ_SEEDS="$work/$t" $bin || failed=1
    if DML_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 $bin -runs=$RUNS -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
        -seed=1 "$work/$t" > "$work/$t.log" 2>&1; then
      echo "$t: $(grep DONE "$work/$t.log" | tail -1 | tr -s ' \t' ' '); no crash"
    else
      failed=1
      echo "$t: FAILED"; tail -30 "$work/$t.log"
    fi
  done
  echo '```'
  exit $failed  # the group runs in a subshell (it feeds tee): its status is the script's
} | tee Docs/RELIABILITY-libfuzzer.md
status=$?
rm -rf "$work" /dev/shm/dml-libfuzzer-* 2>/dev/null
exit $status
