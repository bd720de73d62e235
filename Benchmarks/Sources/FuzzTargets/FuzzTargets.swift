// The loaders and parsers that the fuzzers drive (dml-fuzz's mutation loop and dml-libfuzzer's
// coverage-guided libFuzzer), each with its valid seed inputs.
import DMLCommands
import Foundation
import MetricLearning

/// One fuzzed entry point: it reads the file at a path and ends in a value or an error.
public struct FuzzTarget {
  public var name: String
  /// The file name suffix the loader expects.
  public var suffix: String
  /// Valid inputs to mutate from.
  public var seeds: [[UInt8]]
  /// Parses the file at the path.
  public var run: (String) throws -> Void

  /// Every target. Fixed companion files (a valid label file for `idx-pair`, a valid feature file
  /// for `npy-dataset`) are written into `work`.
  public static func all(work: String) -> [FuzzTarget] {
    let labels = "\(work)/labels-ok.idx", features = "\(work)/features-ok.npy", index = "\(work)/seed-index.st"
    _ = FileManager.default.createFile(atPath: labels, contents: Data(idx([2], [0, 1])))
    _ = FileManager.default.createFile(atPath: features, contents: Data(npy("<f4", "(2, 2)", floats([1, 2, 3, 4]))))
    try? SearchIndex.save(Matrix(rows: 2, columns: 3, elements: [1, 2, 3, 4, 5, 6]), labels: [0, 1], ids: [10, 11], to: index)
    return [
      FuzzTarget(name: "idx", suffix: ".idx", seeds: [idx([2, 2, 2], [0, 255, 1, 2, 3, 4, 5, 6]), idx([3], [1, 2, 3])]) {
        _ = try IDX.read($0)
      },
      // The mutated file as images, with a valid label file.
      FuzzTarget(name: "idx-pair", suffix: ".idx", seeds: [idx([2, 2, 2], [0, 255, 1, 2, 3, 4, 5, 6])]) {
        _ = try IDX.dataset(images: $0, labels: labels)
      },
      FuzzTarget(name: "csv", suffix: ".csv", seeds: [bytes("label,a,b\n0,1.5,2\n1,3,-4e3\n"), bytes("0,1,2\r\n1,2,3\r\n\n"), bytes("3\n4\n")]) {
        _ = try CSV.dataset($0)
      },
      FuzzTarget(name: "npy", suffix: ".npy", seeds: [
        npy("<f4", "(2, 2)", floats([1, 2, 3, 4])), npy("<f8", "(1,)", [0, 0, 0, 0, 0, 0, 0xF0, 0x3F]), npy("|u1", "(3,)", [1, 2, 3]),
      ]) { _ = try NPY.read($0) },
      // The mutated file as labels for a valid feature file.
      FuzzTarget(name: "npy-dataset", suffix: ".npy", seeds: [npy("<f4", "(2,)", floats([0, 1]))]) {
        _ = try NPY.dataset(features: features, labels: $0)
      },
      FuzzTarget(name: "safetensors", suffix: ".safetensors", seeds: [
        [UInt8](Checkpoint.safetensors([(name: "w", shape: [2, 2], values: [1, 2, 3, 4]), (name: "b", shape: [2], values: [0, 1])])),
      ]) { _ = try Checkpoint.readSafetensors($0) },
      FuzzTarget(name: "index", suffix: ".st", seeds: [[UInt8](FileManager.default.contents(atPath: index) ?? Data())]) {
        _ = try SearchIndex.load($0)
      },
      FuzzTarget(name: "hyperparameters", suffix: ".txt", seeds: [
        bytes("triplet:margin=0.2,swap=true"), bytes("proxy-anchor:margin=0.1,alpha=32"),
        bytes("contrastive:pos_margin=0,neg_margin=1,distance=cosine"), bytes("center:weight=0.01,alpha=0.5"),
        bytes("multi-similarity:alpha=2,beta=50,base=0.5"),
      ]) { path in
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        _ = try LossRegistry.standard.make(text, context: LossContext(classes: 3, embeddingDimension: 4, seed: 0))
      },
    ]
  }
}

public func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// An unsigned-byte IDX file of the given sizes.
public func idx(_ shape: [Int], _ body: [UInt8]) -> [UInt8] {
  var b: [UInt8] = [0, 0, 8, UInt8(shape.count)]
  for d in shape { b += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
  return b + body
}

/// An NPY version-1 file with a padded header.
public func npy(_ descr: String, _ shape: String, _ body: [UInt8]) -> [UInt8] {
  var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
  while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
  header += "\n"
  let n = header.utf8.count
  return [0x93] + bytes("NUMPY") + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + bytes(header) + body
}

public func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
