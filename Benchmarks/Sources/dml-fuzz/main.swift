// dml-fuzz: a seeded mutation fuzzer for every loader and parser the tool exposes to files and
// flags: IDX (plain and gzipped), CSV, NPY, safetensors, the search index and the
// `name:key=value` hyperparameter syntax.
//
// Each target starts from valid seeds and applies random mutations (bit flips, byte changes,
// insertions, deletions, truncations, splices and "interesting" values in headers). Every input
// must end in a value or an error: a crash, a hang (alarm after 10 s) or an allocation beyond the
// address-space limit (RLIMIT_AS) kills the process, and the input that did it stays on disk in
// the work folder, named after the target, for the corpus.
//
// Usage: dml-fuzz [executions per target = 100000] [seed = 1] [work folder = /dev/shm/dml-fuzz]
import CZlib
import Foundation
import FuzzTargets
import MetricLearning

let arguments = Array(CommandLine.arguments.dropFirst())
let executions = arguments.first.flatMap { Int($0) } ?? 100_000
let seed = arguments.count > 1 ? UInt64(arguments[1]) ?? 1 : 1
let work = arguments.count > 2 ? arguments[2] : (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/dml-fuzz" : "/tmp/dml-fuzz")

/// Writes `bytes` to `path` in place (no temporary file: this runs a million times).
func put(_ bytes: [UInt8], _ path: String) {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { return }
  bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
  close(fd)
}
try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)

// Bound memory so that an unbounded allocation fails fast instead of swapping. Under address
// sanitizer (ASAN_OPTIONS set), which reserves terabytes of shadow address space, the bound is
// ASan's own: run with ASAN_OPTIONS=max_allocation_size_mb=4096.
if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil {
  var limit = rlimit(rlim_cur: 4 << 30, rlim_max: 4 << 30)
  setrlimit(Int32(RLIMIT_AS.rawValue), &limit)
}

func gzip(_ b: [UInt8], _ path: String) {
  guard let file = gzopen(path, "wb") else { return }
  b.withUnsafeBytes { _ = gzwrite(file, $0.baseAddress, UInt32($0.count)) }
  gzclose(file)
}

let targets = FuzzTarget.all(work: work)

let interesting: [[UInt8]] = [[0], [0xFF], [0x7F], [0x80], [0xFF, 0xFF, 0xFF, 0xFF], [0x7F, 0xFF, 0xFF, 0xFF], [0, 0, 0, 0],
  bytes("-1"), bytes("1e309"), bytes("nan"), bytes("inf"), bytes("99999999999999999999"), bytes(","), bytes(":"), bytes("="), bytes("'"), bytes("(")]

func mutate(_ input: [UInt8], _ rng: inout RandomSource, corpus: [[UInt8]]) -> [UInt8] {
  var b = input
  for _ in 0...rng.index(below: 4) {
    switch rng.index(below: 8) {
    case 0 where !b.isEmpty: b[rng.index(below: b.count)] ^= UInt8(1 << rng.index(below: 8))
    case 1 where !b.isEmpty: b[rng.index(below: b.count)] = UInt8(rng.index(below: 256))
    case 2: b.insert(UInt8(rng.index(below: 256)), at: rng.index(below: b.count + 1))
    case 3 where !b.isEmpty: b.remove(at: rng.index(below: b.count))
    case 4 where !b.isEmpty: b = Array(b.prefix(rng.index(below: b.count)))
    case 5:
      let v = interesting[rng.index(below: interesting.count)]
      let at = rng.index(below: b.count + 1)
      if rng.index(below: 2) == 0 || at + v.count > b.count { b.insert(contentsOf: v, at: at) } else { b.replaceSubrange(at..<(at + v.count), with: v) }
    case 6:
      let other = corpus[rng.index(below: corpus.count)]
      if !other.isEmpty {
        let from = rng.index(below: other.count)
        b.insert(contentsOf: other[from..<Swift.min(other.count, from + 1 + rng.index(below: 16))], at: rng.index(below: b.count + 1))
      }
    default:
      if !b.isEmpty {
        let from = rng.index(below: b.count), length = 1 + rng.index(below: Swift.min(16, b.count - from))
        b.insert(contentsOf: b[from..<(from + length)], at: rng.index(below: b.count + 1))
      }
    }
  }
  return b
}

signal(SIGALRM) { _ in
  let message = "dml-fuzz: an input hung (kept as the current input of its target)\n"
  message.withCString { _ = write(2, $0, strlen($0)) }
  _exit(3)
}

/// Progress goes to standard error, unbuffered, so that it survives a crash.
func report(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

var total = 0
for target in targets {
  var rng = RandomSource(seed: seed).derived(stream: UInt64(target.name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
  let current = "\(work)/current-\(target.name)\(target.suffix)"
  var corpus = target.seeds
  var values = 0, errors = 0
  let start = Date()
  for i in 0..<executions {
    let parent = corpus[rng.index(below: corpus.count)]
    let input = i < target.seeds.count ? target.seeds[i] : mutate(parent, &rng, corpus: corpus)
    if target.name.hasPrefix("idx") && rng.index(below: 8) == 0 {
      gzip(input, current + ".gz")
      alarm(10)
      do { try target.run(current + ".gz"); values += 1 } catch { errors += 1 }
      alarm(0)
      continue
    }
    put(input, current)
    alarm(10)
    do {
      try target.run(current)
      values += 1
      // Inputs that still parse are good parents: keep a bounded, varied set.
      if corpus.count < 256 { corpus.append(input) } else { corpus[rng.index(below: corpus.count)] = input }
    } catch { errors += 1 }
    alarm(0)
  }
  total += executions
  report("\(target.name): \(executions) executions in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(values) values, \(errors) clear errors, no crash")
  try? FileManager.default.removeItem(atPath: current)
}
report("all targets: \(total) executions, no crash, hang or unbounded allocation")
