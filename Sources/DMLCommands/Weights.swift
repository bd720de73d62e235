import ArgumentParser
import Foundation
import MetricLearning

/// `dml export-weights`: a trained network's parameters as a PyTorch state dict.
struct ExportWeights: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export-weights",
    abstract: "Write a checkpoint's network as a PyTorch state dict in safetensors: torchvision's names and layouts, for load_state_dict(strict=True).",
    discussion: """
      A ResNet trained here loads into the torchvision model of the same depth whose fc has the
      embedding's width, e.g. torchvision.models.resnet50(num_classes=512); see
      Benchmarks/Scripts/check_torchvision_export.py. Convolution kernels are written
      out × in × kh × kw, and each BatchNorm gets num_batches_tracked (the steps trained).
      """)

  @Option(help: "A checkpoint folder written by `dml train --checkpoint`.") var checkpoint: String
  @Option(help: "The safetensors file to write (must not exist unless --force).") var output: String
  @Flag(help: "Replace --output if it exists.") var force = false

  func validate() throws {
    guard output.hasSuffix(".safetensors") else { throw ValidationError("--output \(output) must end in .safetensors") }
    if FileManager.default.fileExists(atPath: output) && !force { throw ValidationError("--output \(output) exists: pass --force to replace it") }
  }

  func run() throws {
    let (dir, _) = try Checkpoint.verifiedLatest(in: checkpoint)
    guard let data = FileManager.default.contents(atPath: "\(dir)/state.json"),
      let progress = try? JSONDecoder().decode(RunProgress.self, from: data)
    else { throw ValidationError("--checkpoint \(checkpoint): no readable state.json in \(dir)") }
    let config = progress.configuration
    guard let features = progress.inputFeatures else { throw ValidationError("--checkpoint \(checkpoint): its state.json records no input width") }
    var shape: (height: Int, width: Int, channels: Int)?
    if let s = config["image_size"].flatMap(Int.init), let c = config["channels"].flatMap(Int.init) {
      shape = (s, s, c)
    } else if config["data"] == "fashion-mnist" {
      shape = (28, 28, 1)
    }
    let net = try CheckpointOptions.network(checkpoint, inputFeatures: features, imageShape: shape)
    let steps = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/checkpoint.json"))) as? [String: Any])?["step"] as? Int ?? 0
    let (tensors, integers) = TorchWeights.export(net, steps: steps)
    let bytes = Checkpoint.safetensors(tensors, integers: integers, metadata: ["format": "pt", "network": config["network"] ?? ""])
    try atomicWrite(bytes, to: output)
    print("wrote \(tensors.count) tensors (\(integers.count) num_batches_tracked) of \(config["network"] ?? "the network") to \(output)")
  }
}
