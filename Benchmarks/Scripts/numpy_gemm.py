"""numpy's matmul on the foundation benchmark's GEMM shapes, as JSON on stdout.

Run by dml-bench in the same session, so both sides see the same machine load. numpy's bundled
OpenBLAS detects the CPU by itself; the caller clears OPENBLAS_CORETYPE for this process.
"""
import ctypes, glob, json, os, sys, time
import numpy as np

def openblas_core(library, symbols):
    """The core name an OpenBLAS library picked, from the first of `symbols` it exports."""
    for symbol in symbols:
        try:
            f = getattr(ctypes.CDLL(library), symbol)
            f.restype = ctypes.c_char_p
            return f().decode()
        except (OSError, AttributeError):
            pass
    return "unknown"


def corename():
    """The core name of numpy's bundled OpenBLAS."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    symbols = ["scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"]
    return openblas_core(libs[0], symbols) if libs else "unknown"


def median_seconds(body, trials, trial_seconds=0.05):
    """The median seconds per call over `trials` trials, each long enough to swamp the clock, as
    dml-bench's Timing.median measures (also used by pml_reference.py)."""
    body()
    t = time.perf_counter()
    body()
    once = max(1e-9, time.perf_counter() - t)
    reps = max(1, int(trial_seconds / once))
    times = []
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            body()
        times.append((time.perf_counter() - t) / reps)
    times.sort()
    return times[len(times) // 2]


def best_seconds(m, n, k, trials):
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    return median_seconds(lambda: np.matmul(a, b, out=c), trials)


def main():
    shapes = json.loads(sys.argv[1])
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    out = {"numpy": np.__version__, "core": corename(), "results": []}
    for m, n, k in shapes:
        s = best_seconds(m, n, k, trials)
        out["results"].append({"shape": [m, n, k], "seconds": s, "gflops": 2 * m * n * k / s / 1e9})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
