"""numpy's matmul on the foundation benchmark's GEMM shapes, as JSON on stdout.

Run by dml-bench in the same session, so both sides see the same machine load. numpy's bundled
OpenBLAS detects the CPU by itself; the caller clears OPENBLAS_CORETYPE for this process.
"""
import ctypes, glob, json, os, sys, time
import numpy as np

def corename():
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for lib in libs:
        try:
            f = ctypes.CDLL(lib).scipy_openblas_get_corename64_
            f.restype = ctypes.c_char_p
            return f().decode()
        except (OSError, AttributeError):
            pass
    return "unknown"

def best_seconds(m, n, k, trials):
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    reps = max(1, int(0.05 / max(1e-9, _once(a, b, c))))
    times = []
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        times.append((time.perf_counter() - t) / reps)
    times.sort()
    return times[len(times) // 2]

def _once(a, b, c):
    t = time.perf_counter()
    np.matmul(a, b, out=c)
    return time.perf_counter() - t

shapes = json.loads(sys.argv[1])
trials = int(sys.argv[2]) if len(sys.argv) > 2 else 7
out = {"numpy": np.__version__, "core": corename(), "results": []}
for m, n, k in shapes:
    s = best_seconds(m, n, k, trials)
    out["results"].append({"shape": [m, n, k], "seconds": s, "gflops": 2 * m * n * k / s / 1e9})
print(json.dumps(out))
