import DMLData
import DMLNetworks
import DMLTesting
import DMLTraining
import Foundation
import Testing

/// A torchvision ResNet's weights into `dml train`, and the trained network back into torchvision.
@Suite("Pretrained ResNets: torchvision weights in, trained weights out")
struct PretrainedTests {
  static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Benchmarks/Scripts").path

  /// Runs Debian's python3 (with python3-torchvision, installed by make) on a script.
  static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = arguments
    p.environment = ["PYTHONPATH": scripts, "PATH": "/usr/bin:/bin"]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  @Test("export torchvision's ResNet-18, fine-tune it on a folder, export it back: strict load in torchvision, the same embeddings")
  func roundTrip() throws {
    let root = try ImageCommandTests.folder()
    let work = root + "-pretrained"
    defer { for p in [root, work] { try? FileManager.default.removeItem(atPath: p) } }
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    let weights = "\(work)/resnet18.safetensors"
    let e = try Self.python(["\(Self.scripts)/export_torchvision.py", "--arch", "resnet18", "--random", "--output", weights])
    try #require(e.status == 0, "\(e.output)")
    let t = try dml([
      "train", "--data", "folder:\(root)", "--image-size", "32", "--train-classes", "0-2", "--test-classes", "3-4",
      "--network", "resnet18:weights=\(weights),embedding=16", "--loss", "contrastive", "--miner", "pair-margin",
      "--batch", "m-per-class:m=4,size=12", "--epochs", "1", "--log", "json", "--log-every", "0", "--checkpoint", "\(work)/model",
    ])
    #expect(t.status == 0, "\(t.stderr)")
    #expect(t.stderr.contains("resnet18: loaded 100 tensors from \(weights); new: fc.weight, fc.bias (the file's fc.weight, fc.bias have another shape)"), "\(t.stderr)")
    let out = "\(work)/trained.safetensors"
    let x = try dml(["export-weights", "--checkpoint", "\(work)/model", "--output", out])
    #expect(x.status == 0 && x.stdout.contains("wrote 102 tensors (20 num_batches_tracked)"), "\(x.stdout)\(x.stderr)")
    // The exported file in the library, and the same inputs through torchvision.
    var net: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(.resnet18, input: ImageShape(height: 32, width: 32, channels: 3), embedding: 16)
    let report = try TorchWeights.load(try Checkpoint.readSafetensors(out), into: &net)
    #expect(report.loaded.count == 102)
    var rng = RandomSource(seed: 5)
    let inputs = Matrix<Float>(rows: 6, columns: 32 * 32 * 3, elements: (0..<(6 * 32 * 32 * 3)).map { _ in rng.uniform(Float.self) * 2 - 1 })
    net.forward(inputs, mode: .inference, compute: .automatic)
    try NPY.write(inputs, to: "\(work)/inputs.npy")
    try NPY.write(net.embeddings, to: "\(work)/embeddings.npy")
    let check = try Self.python([
      "\(Self.scripts)/check_torchvision_export.py", "--arch", "resnet18", "--weights", out, "--inputs", "\(work)/inputs.npy",
      "--embeddings", "\(work)/embeddings.npy", "--size", "32", "--normalize",
    ])
    #expect(check.status == 0 && check.output.contains("strict load of 122 tensors: ok"), "\(check.output)")
    // A file that misses a tensor stops training with its name.
    var tensors = try Checkpoint.readSafetensors(weights)
    tensors["layer2.1.bn1.running_var"] = nil
    let broken = "\(work)/broken.safetensors"
    try Checkpoint.safetensors(tensors.map { (name: $0.key, shape: $0.value.shape, values: $0.value.values) }).write(to: URL(fileURLWithPath: broken))
    let b = try dml(["train", "--data", "folder:\(root)", "--image-size", "32", "--network", "resnet18:weights=\(broken)", "--epochs", "1"])
    #expect(b.status != 0 && b.stderr.contains("layer2.1.bn1.running_var is missing"), "\(b.stderr)")
  }
}

@Suite("Fine-tuning options: frozen-backbone warm-up, backbone learning rate")
struct FineTuningTests {
  @Test("--freeze-backbone-steps keeps the pretrained convolutions while the head trains; backbone_lr=0 does the same through the optimizer's group")
  func options() throws {
    let root = try ImageCommandTests.folder()
    let work = root + "-finetune"
    defer { for p in [root, work] { try? FileManager.default.removeItem(atPath: p) } }
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    let weights = "\(work)/resnet18.safetensors"
    let e = try PretrainedTests.python(["\(PretrainedTests.scripts)/export_torchvision.py", "--arch", "resnet18", "--random", "--output", weights])
    try #require(e.status == 0, "\(e.output)")
    let pretrained = try Checkpoint.readSafetensors(weights)
    for (name, flags) in [
      ("warmup", ["--freeze-backbone-steps", "1000"]), ("group", ["--optimizer", "sgd:lr=0.05,backbone_lr=0"]),
      ("both-train", ["--optimizer", "sgd:lr=0.05,first_lr=0"]),
    ] {
      let model = "\(work)/\(name)", out = "\(work)/\(name).safetensors"
      let t = try dml([
        "train", "--data", "folder:\(root)", "--image-size", "32", "--train-classes", "0-2", "--test-classes", "3-4",
        "--network", "resnet18:weights=\(weights),embedding=16", "--loss", "contrastive", "--batch", "m-per-class:m=4,size=12",
        "--epochs", "1", "--log", "json", "--log-every", "0", "--checkpoint", model,
      ] + flags)
      try #require(t.status == 0, "\(name): \(t.stderr)")
      // first_lr is the MLP's and ConvNet's: a ResNet says it ignores it (its backbone still trains).
      #expect(t.stderr.contains("first_lr") == (name == "both-train"), "\(name): \(t.stderr)")
      let x = try dml(["export-weights", "--checkpoint", model, "--output", out])
      try #require(x.status == 0, "\(x.stderr)")
      let trained = try Checkpoint.readSafetensors(out)
      let backboneKept = ["conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight", "layer3.0.bn1.weight"].allSatisfy {
        trained[$0]!.values == pretrained[$0]!.values
      }
      #expect(backboneKept == (name != "both-train"), "\(name): backbone kept \(backboneKept)")
    }
    // A resumed run takes every parameter from its checkpoint: the weights file may be gone.
    try FileManager.default.removeItem(atPath: weights)
    let resumed = try dml(["train", "--checkpoint", "\(work)/group", "--resume", "--epochs", "2", "--log", "json", "--log-every", "0"])
    #expect(resumed.status == 0 && resumed.stdout.contains("\"epoch\":2"), "\(resumed.stderr)")
    let bad = try dml(["train", "--network", "mlp", "--freeze-backbone-steps", "5", "--epochs", "1"])
    #expect(bad.status != 0 && bad.stderr.contains("has no pretrained backbone and named head"), "\(bad.stderr)")
  }
}

@Suite("An embedding head with BatchNorm, as nn.Sequential(Linear, BatchNorm1d)")
struct HeadBatchNormTests {
  @Test("head_bn names the head fc.0 and fc.1; torchvision with that fc loads the export strictly and embeds alike")
  func headBatchNorm() throws {
    let work = ScratchSpace.path("head-bn-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(atPath: work) }
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    var net: Network<ResNetBody<BasicBlock<Float>>> = ResNetBuilder.basic(
      .resnet18, input: ImageShape(height: 32, width: 32, channels: 3), embedding: 16, headBatchNorm: true, seed: 2)
    let names = net.namedParameters().map(\.name).filter { $0.hasPrefix("fc") }
    #expect(names == ["fc.0.weight", "fc.0.bias", "fc.1.weight", "fc.1.bias", "fc.1.running_mean", "fc.1.running_var"])
    // Train mode once, so that the head's running statistics are not the initial ones.
    var rng = RandomSource(seed: 9)
    let inputs = Matrix<Float>(rows: 6, columns: 32 * 32 * 3, elements: (0..<(6 * 32 * 32 * 3)).map { _ in rng.uniform(Float.self) * 2 - 1 })
    net.forward(inputs, mode: .training, compute: .automatic)
    net.forward(inputs, mode: .inference, compute: .automatic)
    let (tensors, integers) = TorchWeights.export(net, steps: 1)
    #expect(integers.contains { $0.name == "fc.1.num_batches_tracked" })
    try Checkpoint.safetensors(tensors, integers: integers).write(to: URL(fileURLWithPath: "\(work)/w.safetensors"))
    try NPY.write(inputs, to: "\(work)/inputs.npy")
    try NPY.write(net.embeddings, to: "\(work)/embeddings.npy")
    let check = try PretrainedTests.python([
      "\(PretrainedTests.scripts)/check_torchvision_export.py", "--arch", "resnet18", "--weights", "\(work)/w.safetensors",
      "--inputs", "\(work)/inputs.npy", "--embeddings", "\(work)/embeddings.npy", "--size", "32", "--normalize",
    ])
    #expect(check.status == 0 && check.output.contains("strict load of 127 tensors: ok"), "\(check.output)")
  }
}
