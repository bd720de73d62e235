import DMLTraining
import Foundation
import Testing

@Suite("Checkpoints")
struct CheckpointTests {
  func folder(_ name: String) -> String {
    let p = FileManager.default.temporaryDirectory.appendingPathComponent("dml-ck-\(getpid())-\(name)").path
    try? FileManager.default.removeItem(atPath: p)
    return p
  }

  @Test("CRC-32 matches the standard check value")
  func crc() {
    #expect(CRC32.checksum(Data("123456789".utf8)) == 0xCBF4_3926)
    #expect(CRC32.checksum(Data()) == 0)
  }

  @Test("A corrupted latest checkpoint is refused by name and the previous good one is used")
  func fallback() throws {
    let dir = folder("fallback")
    let tensors = [(name: "w", shape: [2], values: [Float(1), 2])]
    try Checkpoint.save(["parameters.safetensors": Checkpoint.safetensors(tensors), "state.json": Data("{}".utf8)], in: dir, step: 1)
    try Checkpoint.save(["parameters.safetensors": Checkpoint.safetensors([(name: "w", shape: [2], values: [3, 4])]), "state.json": Data("{}".utf8)], in: dir, step: 2)
    var found = try Checkpoint.verifiedLatest(in: dir)
    #expect(found.directory.hasSuffix("step-00000002") && found.rejected.isEmpty)
    // Flip one byte of the newest parameters.
    let path = "\(dir)/step-00000002/parameters.safetensors"
    var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
    bytes[bytes.count - 1] ^= 0x40
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    found = try Checkpoint.verifiedLatest(in: dir)
    #expect(found.directory.hasSuffix("step-00000001"))
    #expect(found.rejected.count == 1 && found.rejected[0].contains("step-00000002/parameters.safetensors: checksum mismatch"))
    #expect(try Checkpoint.readSafetensors("\(found.directory)/parameters.safetensors")["w"]?.values == [1, 2])
    // Truncate the older one too: nothing passes, and the error says why.
    _ = FileManager.default.createFile(atPath: "\(dir)/step-00000001/state.json", contents: Data())
    #expect(throws: TrainingError.self) { try Checkpoint.verifiedLatest(in: dir) }
    do { _ = try Checkpoint.verifiedLatest(in: dir) } catch {
      #expect("\(error)".contains("no checkpoint passes its checksums") && "\(error)".contains("state.json: 0 bytes"))
    }
  }
}
