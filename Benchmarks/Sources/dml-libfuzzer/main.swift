// dml-libfuzzer: the loaders and parsers of FuzzTargets under libFuzzer (coverage-guided), one
// target per run:
//   DML_FUZZ_TARGET=npy .build-libfuzzer/release/dml-libfuzzer -runs=100000 CORPUS_FOLDER
// With DML_FUZZ_SEEDS=FOLDER it only writes the target's valid seed files there and exits.
//
// `make libfuzz` builds it with address sanitizer and coverage instrumentation and links
// libFuzzer's driver (libclang_rt.fuzzer_no_main from the Swift toolchain). The driver is looked
// up at run time, so the ordinary build of the package (without libFuzzer) still links; that
// build only says how to make the real one.
import Foundation
import FuzzTargets

typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
typealias Driver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>, Callback) -> Int32

let environment = ProcessInfo.processInfo.environment
let work = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
let fixtures = "\(work)/dml-libfuzzer-\(getpid())"
try? FileManager.default.createDirectory(atPath: fixtures, withIntermediateDirectories: true)
let targets = FuzzTarget.all(work: fixtures)
let name = environment["DML_FUZZ_TARGET"] ?? "npy"
guard let chosen = targets.first(where: { $0.name == name }) else {
  FileHandle.standardError.write(Data("DML_FUZZ_TARGET must be one of: \(targets.map(\.name).joined(separator: ", "))\n".utf8))
  exit(2)
}
if let folder = environment["DML_FUZZ_SEEDS"] {
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  for (i, seed) in chosen.seeds.enumerated() { _ = FileManager.default.createFile(atPath: "\(folder)/seed-\(i)", contents: Data(seed)) }
  exit(0)
}
nonisolated(unsafe) let target = chosen
let path = "\(fixtures)/input\(chosen.suffix)"

let callback: Callback = { data, size in
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  if fd >= 0, let data { _ = write(fd, data, size) }
  if fd >= 0 { close(fd) }
  do { try target.run(path) } catch {}
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
