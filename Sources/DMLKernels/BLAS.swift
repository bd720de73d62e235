import CBLAS
import Foundation

/// The BLAS library behind GEMM: which CPU kernels it picked, and how many threads it uses.
///
/// The library drives OpenBLAS on one thread and splits work over the threads of a
/// `ComputeContext` itself: at the library's first product (`singleThreaded`), OpenBLAS's thread
/// count is read once (`initialThreadCount`, what `OPENBLAS_NUM_THREADS` or the cores gave it) and
/// set to 1, for good. A product called inside a chunk then never starts threads of its own, and
/// no step changes a process-wide setting.
///
/// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs and falls back to its SSE3
/// ("Prescott") kernels at about a fifth of the machine's peak. OpenBLAS reads
/// `OPENBLAS_CORETYPE` once, when the library loads, so the choice must be made in the
/// environment before the process starts: `OPENBLAS_CORETYPE=SkylakeX dml ...`. The library never
/// changes that variable itself; it reports the core and says how to get a faster one.
public enum BLAS {
  /// The kernel family OpenBLAS chose at load time, for example `"SkylakeX"` or `"Prescott"`.
  public static var coreName: String {
    guard let name = openblas_get_corename() else { return "unknown" }
    return String(cString: name).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The build configuration string of the loaded OpenBLAS.
  public static var configuration: String {
    guard let config = openblas_get_config() else { return "unknown" }
    return String(cString: config).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The number of threads OpenBLAS uses for one call: 1 once the library has used it.
  public static var threadCount: Int { Int(openblas_get_num_threads()) }

  /// OpenBLAS's thread count when the library first used it: `OPENBLAS_NUM_THREADS`, else the
  /// cores. `ComputeContext.automatic` uses this many threads.
  public static var initialThreadCount: Int { singleThreaded }

  /// Reads OpenBLAS's thread count and sets it to 1, once; evaluated before every BLAS call.
  @usableFromInline static let singleThreaded: Int = {
    let count = Int(openblas_get_num_threads())
    openblas_set_num_threads(1)
    return max(1, count)
  }()

  /// Whether this CPU supports AVX-512F, read from `/proc/cpuinfo` (Linux only).
  public static var cpuHasAVX512: Bool {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
    return info.contains(" avx512f")
  }

  /// A one-line advice when OpenBLAS runs slower kernels than the CPU supports, else `nil`.
  public static var advice: String? {
    let core = coreName.lowercased()
    let slow = ["prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "haswell",
                "zen"]
    guard cpuHasAVX512, slow.contains(core) else { return nil }
    return "OpenBLAS picked its \(coreName) kernels on a CPU with AVX-512; set "
      + "OPENBLAS_CORETYPE=SkylakeX in the environment before starting for about 4x faster GEMM."
  }
}

