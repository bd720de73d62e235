import DMLTesting
import DMLData
import DMLTraining
import Foundation
import Testing

/// Inputs that crashed a loader before (found by `dml-fuzz` or by reading the code for what it
/// would find); each must now end in a clear error.
@Suite("Fuzz corpus: hostile files end in clear errors")
struct FuzzRegressionTests {
  func file(_ name: String, _ bytes: [UInt8]) -> String {
    let path = ScratchSpace.path("corpus-" + name)
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
  }

  func npy(_ header: String, _ body: [UInt8] = []) -> [UInt8] {
    let n = header.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + body
  }

  @Test("IDX sizes whose product overflows")
  func idxOverflow() {
    let path = file("overflow.idx", [0, 0, 8, 4] + [UInt8](repeating: 0xFF, count: 16) + [1, 2, 3])
    #expect(throws: DataError("\(path): header sizes [4294967295, 4294967295, 4294967295, 4294967295] are out of range")) {
      try IDX.read(path)
    }
  }

  @Test("NPY shape with ')' before '(' (dml-fuzz, NPY.swift:37)")
  func npyShapeOrder() {
    let path = file("order.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': ), 2(, }\n", [0, 0, 0, 0]))
    #expect(throws: DataError("\(path): no shape in header")) { try NPY.read(path) }
  }

  @Test("NPY shapes that overflow or are negative")
  func npyShapes() {
    for (name, shape) in [("huge", "(9223372036854775807, 2)"), ("negative", "(-1, 4)")] {
      let path = file("\(name).npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }\n", [0, 0, 0, 0]))
      #expect(throws: DataError.self) { try NPY.read(path) }
    }
  }

  @Test("NPY labels that are infinite or too large for an Int")
  func npyLabels() throws {
    let features = file("features.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }\n", [0, 0, 0, 0, 0, 0, 0x80, 0x3F]))
    for (name, value) in [("inf", Float.infinity), ("big", Float(1e30))] {
      let labels = file("labels-\(name).npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", withUnsafeBytes(of: Float(0)) { Array($0) } + withUnsafeBytes(of: value) { Array($0) }))
      #expect(throws: DataError.self) { try NPY.dataset(features: features, labels: labels) }
    }
  }

  @Test("safetensors header length beyond Int (dml-fuzz, Checkpoint.swift:35)")
  func safetensorsHeader() {
    let path = file("header.safetensors", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + Array("{}".utf8))
    #expect(throws: TrainingError.self) { try Checkpoint.readSafetensors(path) }
  }

  @Test("safetensors offsets reversed or negative")
  func safetensorsOffsets() {
    for offsets in ["[8, 0]", "[-4, 4]"] {
      var header = Array("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\(offsets)}}".utf8)
      while header.count % 8 != 0 { header.append(0x20) }
      let path = file("offsets.safetensors", withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header + [UInt8](repeating: 0, count: 8))
      #expect(throws: TrainingError.self) { try Checkpoint.readSafetensors(path) }
    }
  }
}
