import DMLTesting
import DMLTraining
import DMLNetworks
import DMLSamplers
import Foundation
import Testing

@Suite("Checkpoints")
struct CheckpointTests {
  func folder(_ name: String) -> String {
    ScratchSpace.path("ck-" + name)
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

@Suite("Random generator states")
struct RandomStateTests {
  @Test("a network's Dropout generators and a seeded miner's reservoir restore exactly")
  func restore() throws {
    var rng = RandomSource(seed: 1)
    var net = Network(inputFeatures: 6, body: Chain(Chain(Linear<Double>(6, 8, rng: &rng), Dropout<Double>(probability: 0.5, rng: &rng)), Dropout<Double>(probability: 0.3, rng: &rng)))
    var x = Matrix<Double>(rows: 5, columns: 6)
    x.apply { _ in rng.normal() }
    net.forward(x, mode: .training, compute: .automatic)
    let saved = net.randomStates
    #expect(saved.count == 2)
    net.forward(x, mode: .training, compute: .automatic)
    let first = net.embeddings
    let restored = net.restoreRandomStates(saved)
    #expect(restored)
    net.forward(x, mode: .training, compute: .automatic)
    #expect(net.embeddings == first)
    let wrongCount = net.restoreRandomStates([saved[0]])
    let zeroState = net.restoreRandomStates([[0, 0, 0, 0], saved[1]])  // an all-zero state is not a generator
    #expect(!wrongCount && !zeroState)

    var miner = TripletMarginMiner<Double>(margin: 0.5, type: .all, maxTuples: 30, seed: 4)
    var scores = Matrix<Double>(rows: 16, columns: 16)
    scores.apply { _ in rng.uniform(Double.self) }
    let labels = (0..<16).map { $0 % 3 }
    var t = Tuples.none
    miner.mine(scores: scores, labels: labels, into: &t)
    let minerState = miner.randomStates
    miner.mine(scores: scores, labels: labels, into: &t)
    let next = t
    let minerRestored = miner.restoreRandomStates(minerState)
    #expect(minerRestored)
    miner.mine(scores: scores, labels: labels, into: &t)
    #expect(t == next && t.count == 30)
    var erased = AnyTupleSampler(miner)
    let erasedRestored = erased.restoreRandomStates(minerState)
    #expect(erased.randomStates.count == 1 && erasedRestored)
  }
}
