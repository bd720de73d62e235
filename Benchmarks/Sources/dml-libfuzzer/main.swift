// dml-libfuzzer: the loaders and parsers under libFuzzer (coverage-guided), one target per run:
//   DML_FUZZ_TARGET=npy .build-libfuzzer/release/dml-libfuzzer -runs=100000 [corpus folder]
// Targets: idx, csv, npy, npy-labels, safetensors, index, hyperparameters.
//
// `make libfuzz` builds it with address sanitizer and coverage instrumentation and links
// libFuzzer's driver (libclang_rt.fuzzer_no_main from the Swift toolchain). The driver is looked
// up at run time, so the ordinary build of the package (without libFuzzer) still links; that
// build only says how to make the real one.
import DMLCommands
import Foundation
import MetricLearning

typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
typealias Driver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>, Callback) -> Int32

nonisolated(unsafe) var target = ProcessInfo.processInfo.environment["DML_FUZZ_TARGET"] ?? "npy"
nonisolated(unsafe) var path = "/dev/shm/dml-libfuzzer-\(getpid())"
let targets = ["idx", "csv", "npy", "npy-labels", "safetensors", "index", "hyperparameters"]
guard targets.contains(target) else {
  FileHandle.standardError.write(Data("DML_FUZZ_TARGET must be one of: \(targets.joined(separator: ", "))\n".utf8))
  exit(2)
}
if !FileManager.default.fileExists(atPath: "/dev/shm") { path = NSTemporaryDirectory() + "dml-libfuzzer-\(getpid())" }
let features = path + "-features.npy"
do {
  // A valid 2×1 float32 matrix for the labels target.
  var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }"
  while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
  header += "\n"
  let n = header.utf8.count
  let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + [0, 0, 0, 0, 0, 0, 0x80, 0x3F]
  FileManager.default.createFile(atPath: features, contents: Data(bytes))
}

let callback: Callback = { data, size in
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  if fd >= 0, let data { _ = write(fd, data, size) }
  if fd >= 0 { close(fd) }
  do {
    switch target {
    case "idx": _ = try IDX.read(path)
    case "csv": _ = try CSV.dataset(path)
    case "npy": _ = try NPY.read(path)
    case "npy-labels": _ = try NPY.dataset(features: features, labels: path)
    case "safetensors": _ = try Checkpoint.readSafetensors(path)
    case "index": _ = try SearchIndex.load(path)
    default:
      let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
      _ = try LossRegistry.standard.make(text, context: LossContext(classes: 3, embeddingDimension: 4, seed: 0))
    }
  } catch {}
  return 0
}

guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "LLVMFuzzerRunDriver") else {
  FileHandle.standardError.write(Data("dml-libfuzzer: this build has no libFuzzer; use `make libfuzz`\n".utf8))
  exit(2)
}
let driver = unsafeBitCast(symbol, to: Driver.self)
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(driver(&argc, &argv, callback))
