#!/bin/bash
# make libfuzz: every loader and parser under libFuzzer (coverage-guided) with address sanitizer,
# RUNS executions each from valid seed files; the summary goes to Docs/RELIABILITY-libfuzzer.md.
set -o pipefail
RUNS=${RUNS:-100000}
bin=.build-libfuzzer/release/dml-libfuzzer
work=$(mktemp -d /dev/shm/dml-libfuzz.XXXXXX 2>/dev/null || mktemp -d)
python3 - "$work" <<'PY'
import json, os, struct, sys
w = sys.argv[1]
def put(target, name, data):
    os.makedirs(f"{w}/{target}", exist_ok=True)
    open(f"{w}/{target}/{name}", "wb").write(data)
def npy(descr, shape, body):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + body
def st(tensors):
    header, body, off = {}, b"", 0
    for name, shape, values in tensors:
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data); body += data
    h = json.dumps(header).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body
put("idx", "images", bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(range(8)))
put("csv", "data.csv", b"label,a,b\n0,1.5,2\n1,3,-4e3\n")
put("npy", "f4", npy("<f4", "(2, 2)", struct.pack("<4f", 1, 2, 3, 4)))
put("npy", "u1", npy("|u1", "(3,)", bytes([1, 2, 3])))
put("npy-labels", "labels", npy("<f4", "(2,)", struct.pack("<2f", 0, 1)))
put("safetensors", "w", st([("w", [2, 2], [1, 2, 3, 4]), ("b", [2], [0, 1])]))
put("index", "index", st([("embeddings", [2, 3], [1, 2, 3, 4, 5, 6]), ("labels", [2], [0, 1]), ("ids", [2], [10, 11])]))
put("hyperparameters", "a", b"triplet:margin=0.2,swap=true")
put("hyperparameters", "b", b"contrastive:pos_margin=0,neg_margin=1,distance=cosine")
PY
failed=0
{
  echo "# Fuzzing under libFuzzer"
  echo
  echo "Written by \`make libfuzz\` on $(date -u +%Y-%m-%d): coverage-guided libFuzzer (the Swift toolchain's"
  echo "\`libclang_rt.fuzzer_no_main\`), address sanitizer, $RUNS executions per target from valid seeds."
  echo '```'
  for t in idx csv npy npy-labels safetensors index hyperparameters; do
    if DML_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 $bin -runs=$RUNS -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
        -seed=1 "$work/$t" > "$work/$t.log" 2>&1; then
      echo "$t: $(grep DONE "$work/$t.log" | tail -1 | tr -s ' \t' ' '); no crash"
    else
      failed=1
      echo "$t: FAILED"; tail -30 "$work/$t.log"
    fi
  done
  echo '```'
} | tee Docs/RELIABILITY-libfuzzer.md
rm -rf "$work"
exit $failed
