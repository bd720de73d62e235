import Foundation
import DMLCommands
import DMLTesting
import MetricLearning
import Testing

/// Runs the built `dml` binary (next to this test bundle) and returns its exit code and output.
func dml(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
  let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  let binary = bundle.appendingPathComponent("dml")
  let process = Process()
  process.executableURL = binary
  process.arguments = arguments
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
  }
  let out = Pipe(), err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// A small synthetic CSV dataset: 6 classes of 40 points around random centres in 8 dimensions.
func syntheticCSV() -> String {
  let path = ScratchSpace.root + "/data.csv"
  if FileManager.default.fileExists(atPath: path) { return path }
  var state: UInt64 = 42
  func uniform() -> Double {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Double(state >> 11) / Double(1 << 53)
  }
  var text = "label," + (0..<8).map { "f\($0)" }.joined(separator: ",") + "\n"
  let centres = (0..<6).map { _ in (0..<8).map { _ in 4 * uniform() - 2 } }
  for i in 0..<240 {
    let c = i % 6
    text += "\(c)," + (0..<8).map { String(centres[c][$0] + 0.8 * (uniform() - 0.5)) }.joined(separator: ",") + "\n"
  }
  _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
  return path
}

func temporaryFolder(_ name: String) -> String {
  ScratchSpace.path("cli-" + name)
}

@Suite("The dml command line", .serialized)
struct CommandTests {
  @Test("help text is pinned")
  func help() throws {
    let r = try dml(["--help"])
    #expect(r.status == 0)
    #expect(r.stdout.contains("OVERVIEW: Deep metric learning: train, evaluate and use embedding networks."))
    for command in ["train", "evaluate", "embed", "plot", "list"] { #expect(r.stdout.contains("  \(command) ")) }
    let train = try dml(["train", "--help"])
    for flag in ["--train-classes", "--test-classes", "--validation-classes", "--network", "--loss", "--miner", "--batch",
      "--optimizer", "--epochs", "--patience", "--checkpoint", "--resume", "--log", "--memory", "--offline-mining"] {
      #expect(train.stdout.contains(flag), "train --help lacks \(flag)")
    }
  }

  @Test("list shows every component with its hyperparameters")
  func list() throws {
    let r = try dml(["list"])
    #expect(r.status == 0)
    for name in [
      "mlp", "convnet-s", "local", "triplet", "contrastive", "supcon", "proxy-anchor", "semihard", "batch-hard", "distance-weighted", "m-per-class",
      "views", "adam", "sgd", "cosine", "step", "crop", "erase",
    ] {
      #expect(r.stdout.contains("  \(name) — "), "list lacks \(name)")
    }
    #expect(r.stdout.contains("margin=0.05  required gap between positive and negative"))
  }

  @Test(
    "bad input is a clear error, not a crash",
    arguments: [
      (["train", "--loss", "tripplet"], "unknown loss 'tripplet'; known: angular, arcface"),
      (["train", "--loss", "margin:per_class=true", "--batch", "views:labels=instance"], "one β per class needs class labels"),
      (["train", "--miner", "uniform-histogram:bins=100000,pos_per_bin=1000"], "at most 10,000,000"),
      (["train", "--loss", "triplet:margin=x"], "triplet: margin=x is not a finite number"),
      (["train", "--network", "resnet"], "unknown network 'resnet'; known: mlp, local, convnet-s"),
      (["train", "--data", "fashion-mnist", "--network", "local:kernel=1,mix=4"], "kernel and mix odd and at most the image size"),
      (["train", "--loss", "supcon:temperature=0"], "supcon: temperature=0 must be > 0"),
      (["train", "--miner", "semihard:margin=0.2,foo=1"], "semihard: unknown hyperparameter 'foo'"),
      (["train", "--batch", "m-per-class:m=3,size=128"], "size 128 must be a multiple of m = 3"),
      (["train", "--optimizer", "adam:lr=-1"], "adam: lr=-1 must be > 0"),
      (["train", "--epochs", "0"], "--epochs 0 must be at least 1"),
      (["train", "--train-classes", "4-2"], "'4-2' in class list '4-2' is not a class or a range a-b"),
      (["train", "--data", "/nonexistent.csv"], "/nonexistent.csv: no such file"),
      (["train", "--data", "x.txt"], "--data x.txt: expected fashion-mnist, a .csv or .npy file, folder:PATH or list:FILE.csv"),
      (["train", "--patience", "2"], "--patience needs --validation-classes"),
      (["train", "--resume"], "--resume needs --checkpoint FOLDER"),
      (["train", "--memory", "size=0"], "--memory size=0: memory: size=0 must be ≥ 1"),
      (["train", "--memory", "size=64,wamrup=2"], "memory: unknown hyperparameter 'wamrup'"),
      (["train", "--memory", "size=64", "--loss", "proxy-anchor"], "--memory needs losses that compare embeddings with each other"),
      (["dedup", "--shift", "2"], "--shift needs exactly one of --max-distance D or --calibrate"),
      (["dedup", "--plant", "5"], "--plant without --shift plants edited copies of image files"),
      (["dedup", "--shift", "2", "--max-distance", "nan"], "--max-distance nan must be a finite distance"),
      (["train", "--offline-mining", "k=0"], "--offline-mining k=0: offline-mining: k=0 must be ≥ 1"),
      (["train", "--offline-mining", "window=soft"], "window=soft is not one of hard, semihard"),
      (["train", "--offline-mining", "every=1", "--loss", "softmax"], "--offline-mining builds batches for pair losses"),
      (["evaluate", "--checkpoint", "/nonexistent"], "/nonexistent: no checkpoint"),
      (["embed", "--checkpoint", "x", "--output", "out.txt"], "--output out.txt must end in .npy or .csv"),
    ])
  func badInput(arguments: [String], message: String) throws {
    var args = arguments
    if !args.contains("--data") && args.first == "train" {
      args += ["--data", syntheticCSV()]
      if !args.contains("--batch") { args += ["--batch", "shuffled:size=32"] }
      if !args.contains("--train-classes") { args += ["--train-classes", "0-3", "--test-classes", "4-5"] }
    }
    let r = try dml(args)
    #expect(r.status != 0, "\(arguments) succeeded")
    #expect((r.stderr + r.stdout).contains(message), "\(arguments): \(r.stderr)")
    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Backtrace"), "\(arguments) crashed")
  }

  @Test("a non-finite loss stops training, naming the step, and keeps the last good checkpoint")
  func nonFinite() throws {
    // Features near Float's limit overflow the first layer: the loss becomes NaN at once.
    let path = temporaryFolder("huge") + ".csv"
    var text = ""
    for i in 0..<64 { text += "\(i % 4)," + (0..<8).map { _ in "3e38" }.joined(separator: ",") + "\n" }
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    let folder = temporaryFolder("nonfinite")
    let r = try dml(["train", "--data", path, "--batch", "shuffled:size=16", "--checkpoint", folder, "--log", "json", "--allow-overlap"])
    #expect(r.status != 0)
    #expect(r.stderr.contains("step 1: the embeddings or the loss's gradient are not finite"), "\(r.stderr)")
    #expect(r.stderr.contains("parameters left as they were"))
    #expect(!r.stderr.contains("Backtrace"))
    #expect(!FileManager.default.fileExists(atPath: folder + "/latest"))  // nothing bad was saved
  }

  @Test("a malformed CSV names the file and line")
  func badCSV() throws {
    let path = temporaryFolder("bad") + ".csv"
    _ = FileManager.default.createFile(atPath: path, contents: Data("0,1,2\n1,2\n".utf8))
    let r = try dml(["train", "--data", path])
    #expect(r.status != 0 && r.stderr.contains("\(path):2: 2 columns, expected 3"))
  }

  static func trainArguments(_ data: String, epochs: Int, checkpoint: String, network: String = "mlp:hidden=16,embedding=4") -> [String] {
    ["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", network,
     "--loss", "triplet:margin=0.2", "--miner", "semihard:margin=0.3", "--batch", "m-per-class:m=4,size=32",
     "--epochs", "\(epochs)", "--seed", "3", "--checkpoint", checkpoint, "--log", "json", "--log-every", "0"]
  }

  @Test("train → checkpoint → resume equals an uninterrupted run")
  func resume() throws {
    let data = syntheticCSV()
    let straight = temporaryFolder("straight"), split = temporaryFolder("split")
    let a = try dml(Self.trainArguments(data, epochs: 4, checkpoint: straight))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try dml(Self.trainArguments(data, epochs: 2, checkpoint: split))
    #expect(b.status == 0, "\(b.stderr)")
    let c = try dml(Self.trainArguments(data, epochs: 4, checkpoint: split) + ["--resume"])
    #expect(c.status == 0, "\(c.stderr)")
    func final(_ folder: String) throws -> Data {
      let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/latest")
      return try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(link)/parameters.safetensors"))
    }
    #expect(try final(straight) == final(split), "resumed parameters differ from the uninterrupted run")
    let lastA = a.stdout.split(separator: "\n").last { $0.contains("\"test\"") }
    let lastC = c.stdout.split(separator: "\n").last { $0.contains("\"test\"") }
    #expect(lastA != nil && lastA == lastC)
    // A resume with a different recipe is refused, naming the flag.
    var other = Self.trainArguments(data, epochs: 4, checkpoint: split) + ["--resume"]
    other[other.firstIndex(of: "triplet:margin=0.2")!] = "triplet:margin=0.3"
    let d = try dml(other)
    #expect(d.status != 0 && d.stderr.contains("--loss is 'triplet:margin=0.3' but the checkpoint was made with 'triplet:margin=0.2'"))
  }

  @Test(
    "resume is exact with a cross-batch memory, offline mining and a capped (seeded) miner: their state is in the checkpoint",
    arguments: [["--memory", "size=80,warmup=3"], ["--offline-mining", "steps=3,k=4,window=semihard"], ["--miner", "semihard:margin=0.3,max=40"]])
  func resumeWithState(_ extra: [String]) throws {
    let data = syntheticCSV()
    func with(_ base: [String]) -> [String] {
      // A --miner replaces the recipe's; other flags are added.
      guard extra[0] == "--miner" else { return base + extra }
      var b = base
      b[b.firstIndex(of: "--miner")! + 1] = extra[1]
      return b
    }
    let straight = temporaryFolder("straight-state"), split = temporaryFolder("split-state")
    let a = try dml(with(Self.trainArguments(data, epochs: 4, checkpoint: straight)))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try dml(with(Self.trainArguments(data, epochs: 2, checkpoint: split)))
    #expect(b.status == 0, "\(b.stderr)")
    let c = try dml(with(Self.trainArguments(data, epochs: 4, checkpoint: split)) + ["--resume"])
    #expect(c.status == 0, "\(c.stderr)")
    func file(_ folder: String, _ name: String) throws -> Data {
      let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/latest")
      return try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(link)/\(name)"))
    }
    #expect(try file(straight, "parameters.safetensors") == file(split, "parameters.safetensors"))
    // The state itself is saved and restored: the queue, the mined lists, the miner's generator.
    switch extra[0] {
    case "--memory":
      #expect(try file(straight, "memory.safetensors") == file(split, "memory.safetensors"))
      #expect(a.stdout.contains("\"memory_held\":80"))
    case "--offline-mining":
      // Mining every 3 steps of 5-step epochs: each checkpoint falls between two minings, so the
      // resumed run must restore the lists and replay the sampler to match.
      #expect(try file(straight, "offline.safetensors") == file(split, "offline.safetensors"))
      #expect(a.stdout.components(separatedBy: "\"offline_mining\"").count - 1 >= 3)
    default:
      func randomStates(_ folder: String) throws -> String {
        let manifest = try JSONDecoder().decode(CheckpointManifest.self, from: file(folder, CheckpointManifest.fileName))
        return "\(manifest.randomStates["sampler"]!)"
      }
      #expect(try randomStates(straight) == randomStates(split))
      #expect(try randomStates(straight).count > 20)
    }
  }

  @Test("train → embed → evaluate round-trips, BatchNorm's running statistics included")
  func roundTrip() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("roundtrip")
    let t = try dml(Self.trainArguments(data, epochs: 2, checkpoint: folder, network: "mlp:hidden=16,embedding=4,batchnorm=true"))
    #expect(t.status == 0, "\(t.stderr)")
    let out = folder + "/embeddings.csv"
    let e = try dml(["embed", "--checkpoint", folder, "--data", data, "--test-classes", "4-5", "--output", out])
    #expect(e.status == 0, "\(e.stderr)")
    let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 80 && lines[0].split(separator: ",").count == 5)
    let v = try dml(["evaluate", "--checkpoint", folder, "--data", data, "--test-classes", "4-5", "--json"])
    #expect(v.status == 0, "\(v.stderr)")
    let metrics = try JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as! [String: Any]
    let trained = (t.stdout.split(separator: "\n").last { $0.contains("\"test\"") }).map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    let trainedMap = (trained?["trained"] as? [String: Any])?["map_at_r"] as? Double
    #expect(trainedMap != nil && abs((metrics["map_at_r"] as! Double) - trainedMap!) < 1e-12)
    #expect((metrics["nmi"] as! Double) > 0)
  }

  @Test("search (with a saved index), verify, dedup and fewshot run on raw features")
  func retrievalCommands() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("retrieval")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let s = try dml(["search", "--data", data, "--k", "3", "--limit", "2", "--save-index", folder + "/index.st"])
    #expect(s.status == 0, "\(s.stderr)")
    #expect(s.stdout.hasPrefix("query,rank,id,label,distance\n0,1,") && s.stdout.split(separator: "\n").count == 7)
    let again = try dml(["search", "--index", folder + "/index.st", "--k", "3", "--limit", "2"])
    #expect(again.stdout == s.stdout)
    let v = try dml(["verify", "--data", data, "--target", "precision=0.9"])
    #expect(v.status == 0 && v.stdout.contains("AUC") && v.stdout.contains("calibrated for precision=0.9"), "\(v.stderr)")
    let bad = try dml(["verify", "--data", data, "--target", "accuracy"])
    #expect(bad.status != 0 && bad.stderr.contains("--target accuracy: expected f1, precision=P or far=F"))
    let f = try dml(["fewshot", "--data", data, "--ways", "3", "--shots", "1,5", "--queries", "5", "--episodes", "50"])
    #expect(f.status == 0 && f.stdout.contains("3-way 1-shot") && f.stdout.contains("3-way 5-shot"), "\(f.stderr)")
    let d = try dml(["dedup", "--data", data, "--threshold", "0.9999", "--output", folder + "/groups.csv"])
    #expect(d.status == 0 && d.stderr.contains("groups of near-duplicates among 240 items"), "\(d.stderr)")
  }

  @Test("plot: an embedding map, curves from a training log, and train --plots write valid PNGs")
  func plots() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("plots")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for method in ["pca", "tsne"] {
      let out = "\(folder)/map-\(method).png"
      let r = try dml(["plot", "embeddings", "--data", data, "--method", method, "--output", out])
      #expect(r.status == 0 && r.stdout.contains("240 points of 6 classes"), "\(r.stderr)")
      let image = try PNG.read(out)
      #expect(image.width == 900 && image.height == 700)
      let colors = image.distinctColors
      #expect((0..<6).allSatisfy { colors.contains(Palette.color($0)) }, "a class colour is missing from the \(method) map")
    }
    // Retrieval grids need images; a CSV has none.
    let g = try dml(["plot", "retrieval", "--data", data, "--output", "\(folder)/grid.png"])
    #expect(g.status != 0 && g.stderr.contains("a retrieval grid needs image data"), "\(g.stderr)")
    // train --plots, then the same curves from the JSON log.
    let run = "\(folder)/run"
    var arguments = Self.trainArguments(data, epochs: 3, checkpoint: "\(folder)/ck")
    arguments[arguments.firstIndex(of: "--log-every")! + 1] = "2"
    arguments += ["--validation-classes", "3", "--plots", run]
    let t = try dml(arguments)
    #expect(t.status == 0, "\(t.stderr)")
    #expect(t.stdout.contains("\"event\":\"plots\""))
    for name in ["curves", "embeddings"] { #expect(try PNG.read("\(run)/\(name).png").width > 0) }
    #expect(!FileManager.default.fileExists(atPath: "\(run)/retrieval.png"))
    let log = "\(folder)/train.jsonl"
    _ = FileManager.default.createFile(atPath: log, contents: Data(t.stdout.utf8))
    let c = try dml(["plot", "curves", "--log", log, "--output", "\(folder)/curves.png"])
    #expect(c.status == 0 && c.stdout.contains("3 epochs"), "\(c.stderr)")
    #expect(try PNG.read("\(folder)/curves.png") == PNG.read("\(run)/curves.png"))
    // A log with a broken line names the file and line.
    _ = FileManager.default.createFile(atPath: log, contents: Data((t.stdout + "{oops\n").utf8))
    let bad = try dml(["plot", "curves", "--log", log, "--output", "\(folder)/bad.png"])
    let lines = t.stdout.split(separator: "\n", omittingEmptySubsequences: false).count
    #expect(bad.status != 0 && bad.stderr.contains("\(log):\(lines): not a JSON object"), "\(bad.stderr)")
    #expect(!FileManager.default.fileExists(atPath: "\(folder)/bad.png"))
  }
}

@Suite("dml train's recipe options", .serialized)
struct RecipeTests {
  @Test("first_lr=0 freezes the first layer; sub-classes, SimCLR views, VICReg and a one-way self-supervised NT-Xent train; instance labels refuse proxy losses, the view losses class labels")
  func recipes() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("frozen")
    var arguments = CommandTests.trainArguments(data, epochs: 2, checkpoint: folder)
    arguments += ["--optimizer", "adam:lr=0.01,first_lr=0"]
    let t = try dml(arguments)
    #expect(t.status == 0, "\(t.stderr)")
    let saved = try Checkpoint.readSafetensors(try Checkpoint.latest(in: folder) + "/parameters.safetensors")
    var fresh: MLP<Float> = .mlp(inputFeatures: 8, hidden: [16], embeddingDimension: 4, seed: 3)
    var initial: [String: [Float]] = [:]
    var names: [String] = []
    fresh.forEachParameter(prefix: ["network"]) { name, p in
      initial[name] = p.value.elements
      names.append(name)
    }
    #expect(names.count >= 4)
    #expect(saved[names[0]]?.values == initial[names[0]] && saved[names[1]]?.values == initial[names[1]], "the first layer moved")
    #expect(saved[names[2]] != nil && saved[names[2]]?.values != initial[names[2]], "the second layer did not train")
    for extra in [["--subclasses", "2"], ["--batch", "views:size=32,views=2,labels=instance", "--loss", "contrastive"],
      ["--batch", "views:size=32,views=2,labels=class"], ["--batch", "views:size=32,views=2,labels=instance", "--loss", "vicreg"],
      ["--batch", "views:size=32,views=2,labels=instance", "--loss", "ntxent:self_supervised=one-way"]] {
      var a = CommandTests.trainArguments(data, epochs: 1, checkpoint: temporaryFolder("recipe"))
      for pair in stride(from: 0, to: extra.count, by: 2) {
        if let i = a.firstIndex(of: extra[pair]) { a[i + 1] = extra[pair + 1] } else { a += [extra[pair], extra[pair + 1]] }
      }
      let r = try dml(a)
      #expect(r.status == 0 && r.stdout.contains("\"event\":\"test\""), "\(extra): \(r.stderr)")
    }
    let refused = try dml(["train", "--data", data, "--batch", "views:size=32,labels=instance", "--loss", "proxy-anchor"])
    #expect(refused.status != 0 && refused.stderr.contains("instance labels need pair losses"), "\(refused.stderr)")
    // VICReg reads the two rows of a label as two views of one sample: class labels would not do.
    let unpaired = try dml(["train", "--data", data, "--batch", "views:size=32,labels=class", "--loss", "vicreg"])
    #expect(unpaired.status != 0 && unpaired.stderr.contains("use --batch views:labels=instance"), "\(unpaired.stderr)")
    let classViews = try dml(["train", "--data", data, "--batch", "views:size=32,labels=class", "--loss", "ntxent:self_supervised=one-way"])
    #expect(classViews.status != 0 && classViews.stderr.contains("--loss ntxent:self_supervised=one-way compares two views"), "\(classViews.stderr)")
  }
}

@Suite("dml train with a loss in anchor blocks", .serialized)
struct AnchorBlockCommandTests {
  @Test("--loss supcon:anchor_block=8 trains as the whole batch does (same test metrics); a miner beside it is refused")
  func anchorBlocks() throws {
    let data = syntheticCSV()
    func run(_ loss: String, miner: String = "none") throws -> (status: Int32, stdout: String, stderr: String) {
      var a = CommandTests.trainArguments(data, epochs: 2, checkpoint: temporaryFolder("blocks"))
      a[a.firstIndex(of: "--loss")! + 1] = loss
      a[a.firstIndex(of: "--miner")! + 1] = miner
      let r = try dml(a)
      return (r.status, r.stdout, r.stderr)
    }
    func testLine(_ stdout: String) -> String? { stdout.split(separator: "\n").last { $0.contains("\"event\":\"test\"") }.map(String.init) }
    let whole = try run("supcon:temperature=0.2"), blocked = try run("supcon:temperature=0.2,anchor_block=8")
    #expect(whole.status == 0 && blocked.status == 0, "\(whole.stderr) \(blocked.stderr)")
    let (a, b) = (testLine(whole.stdout), testLine(blocked.stdout))
    #expect(a != nil && a == b, "whole batch: \(a ?? "none")\nanchor blocks: \(b ?? "none")")
    let mined = try run("supcon:anchor_block=8", miner: "multi-similarity")
    #expect(mined.status != 0 && mined.stderr.contains("--miner multi-similarity would need the whole score matrix"), "\(mined.stderr)")
    let coupled = try run("lifted-structure:anchor_block=8")
    #expect(coupled.status != 0 && coupled.stderr.contains("anchor_block needs a loss whose terms add up over anchors"), "\(coupled.stderr)")
  }
}

@Suite("dml train with hierarchical batches", .serialized)
struct HierarchicalCommandTests {
  @Test("--batch hierarchical with --super-classes trains; without the file, or with a class left out, the error names it")
  func hierarchical() throws {
    let data = syntheticCSV()
    let supers = temporaryFolder("supers") + ".csv"
    _ = FileManager.default.createFile(atPath: supers, contents: Data("class,super\n0,a\n1,a\n2,b\n3,b\n4,c\n5,c\n".utf8))
    var a = CommandTests.trainArguments(data, epochs: 1, checkpoint: temporaryFolder("hier"))
    a[a.firstIndex(of: "--batch")! + 1] = "hierarchical:size=16,m=4,batches_per_tuple=3"
    let r = try dml(a + ["--super-classes", supers])
    #expect(r.status == 0 && r.stdout.contains("\"event\":\"test\""), "\(r.stderr)")
    let missing = try dml(a)
    #expect(missing.status != 0 && missing.stderr.contains("hierarchical needs each class's super-class: give --super-classes FILE"), "\(missing.stderr)")
    let partial = temporaryFolder("partial-supers") + ".csv"
    _ = FileManager.default.createFile(atPath: partial, contents: Data("0,a\n1,a\n2,b\n".utf8))
    let gap = try dml(a + ["--super-classes", partial])
    #expect(gap.status != 0 && gap.stderr.contains("--super-classes: \(partial): class 3 of the data has no super-class"), "\(gap.stderr)")
  }
}

@Suite("dml train on multi-label rows", .serialized)
struct MultiLabelCommandTests {
  /// 6 labels; each row holds one or two of them, its features near the mean of its labels' centres.
  static func files() -> (train: String, test: String) {
    var state: UInt64 = 7
    func uniform() -> Double {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Double(state >> 11) / Double(1 << 53)
    }
    let centres = (0..<6).map { _ in (0..<8).map { _ in 4 * uniform() - 2 } }
    func file(_ name: String, rows: Int) -> String {
      var text = "label," + (0..<8).map { "f\($0)" }.joined(separator: ",") + "\n"
      for i in 0..<rows {
        let a = i % 6, b = (i / 6 + a + 1) % 6
        let set = i % 3 == 0 ? [a] : [a, b]
        let features = (0..<8).map { k in set.map { centres[$0][k] }.reduce(0, +) / Double(set.count) + 0.6 * (uniform() - 0.5) }
        text += set.map(String.init).joined(separator: "|") + "," + features.map { String($0) }.joined(separator: ",") + "\n"
      }
      let path = temporaryFolder(name) + ".csv"
      _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
      return path
    }
    return (file("multi-train", rows: 180), file("multi-test", rows: 90))
  }

  @Test("trains on label sets and evaluates with shared-label relevance; refuses class flags, a missing test file, miners and class losses")
  func train() throws {
    let (train, test) = Self.files()
    let base = ["train", "--data", train, "--network", "mlp:hidden=16,embedding=4", "--batch", "shuffled:size=32", "--epochs", "2", "--seed", "3",
      "--log", "json", "--log-every", "0"]
    let folder = temporaryFolder("multi")
    let r = try dml(base + ["--test-data", test, "--allow-overlap", "--loss", "supcon", "--checkpoint", folder])
    #expect(r.status == 0 && r.stdout.contains("\"event\":\"test\""), "\(r.stderr)")
    // The checkpoint evaluated and embedded on the label sets.
    let v = try dml(["evaluate", "--checkpoint", folder, "--data", train, "--test-data", test])
    #expect(v.status == 0 && v.stdout.contains("(multi-label rows: relevance is a shared label)"), "\(v.stdout) \(v.stderr)")
    let out = temporaryFolder("multi-embeddings") + ".csv"
    let e = try dml(["embed", "--checkpoint", folder, "--data", train, "--test-data", test, "--output", out])
    #expect(e.status == 0, "\(e.stderr)")
    let written = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    #expect(written.split(separator: "\n").contains { $0.hasPrefix("1|2,") }, "\(written.prefix(200))")
    let npy = try dml(["embed", "--checkpoint", folder, "--data", train, "--test-data", test, "--output", out + ".npy"])
    #expect(npy.status != 0 && npy.stderr.contains("an NPY labels file cannot hold"), "\(npy.stderr)")
    let verify = try dml(["verify", "--checkpoint", folder, "--data", train, "--test-data", test])
    #expect(verify.status != 0 && verify.stderr.contains("the test rows are multi-label"), "\(verify.stderr)")
    let tune = try dml(["tune", "--data", train, "--output", temporaryFolder("multi-tune"), "--trials", "1"])
    #expect(tune.status != 0 && tune.stderr.contains("has multi-label rows (labels joined by |), which are not split by class"), "\(tune.stderr)")
    #expect(!FileManager.default.fileExists(atPath: temporaryFolder("multi-tune")), "tune wrote its folder before refusing")
    #expect(r.stderr.contains("warning: test labels 0,1,2,3,4,5 are training labels"), "\(r.stderr)")
    let closed = try dml(base + ["--test-data", test, "--loss", "supcon"])
    #expect(closed.status != 0 && closed.stderr.contains("test labels 0,1,2,3,4,5 are also training labels"), "\(closed.stderr)")
    let noTest = try dml(base + ["--loss", "supcon"])
    #expect(noTest.status != 0 && noTest.stderr.contains("has multi-label rows (labels joined by |): give --test-data FILE"), "\(noTest.stderr)")
    let classes = try dml(base + ["--test-data", test, "--allow-overlap", "--train-classes", "0-3"])
    #expect(classes.status != 0 && classes.stderr.contains("--train-classes:") && classes.stderr.contains("not split by class"), "\(classes.stderr)")
    let mined = try dml(base + ["--test-data", test, "--allow-overlap", "--loss", "contrastive", "--miner", "multi-similarity"])
    #expect(mined.status != 0 && mined.stderr.contains("multi-label rows make their own pairs"), "\(mined.stderr)")
    let proxies = try dml(base + ["--test-data", test, "--allow-overlap", "--loss", "proxy-anchor"])
    #expect(proxies.status != 0 && proxies.stderr.contains("multi-label rows need losses over pairs or triplets"), "\(proxies.stderr)")
    let mixed = try dml(base + ["--test-data", test, "--allow-overlap", "--loss", "supcon", "--loss", "arcface:weight=0.1"])
    #expect(mixed.status != 0 && mixed.stderr.contains("--loss arcface:weight=0.1: multi-label rows need losses over pairs"), "\(mixed.stderr)")
    let offline = try dml(base + ["--test-data", test, "--allow-overlap", "--loss", "contrastive", "--offline-mining", "every=1"])
    #expect(offline.status != 0 && offline.stderr.contains("--offline-mining: multi-label rows make their own pairs"), "\(offline.stderr)")
  }
}

@Suite("Checkpoint integrity", .serialized)
struct IntegrityTests {
  @Test("--resume refuses a corrupted latest checkpoint, names it, and continues from the previous one")
  func corruptedResume() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("corrupt")
    let t = try dml(CommandTests.trainArguments(data, epochs: 2, checkpoint: folder))
    #expect(t.status == 0, "\(t.stderr)")
    let latest = try Checkpoint.latest(in: folder)
    let path = latest + "/optimizer.safetensors"
    var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
    bytes[bytes.count / 2] ^= 0xFF
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    var arguments = CommandTests.trainArguments(data, epochs: 3, checkpoint: folder) + ["--resume"]
    arguments[arguments.firstIndex(of: "--log")! + 1] = "text"
    let r = try dml(arguments)
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stderr.contains("optimizer.safetensors: checksum mismatch (corrupted); using the previous checkpoint"), "\(r.stderr)")
    #expect(r.stdout.contains("at epoch 1,"), "\(r.stdout)")
    let e = try dml(["evaluate", "--checkpoint", folder, "--data", data, "--test-classes", "4-5"])
    #expect(e.status == 0, "\(e.stderr)")
  }
}

/// A CSV of `n` rows of `d` features per class for `classes` classes, all rows identical when
/// `identical` is set.
func stressCSV(_ name: String, classes: Int = 4, perClass: Int = 16, identical: Bool = false) -> String {
  let path = temporaryFolder(name) + ".csv"
  var text = ""
  var state: UInt64 = 7
  for i in 0..<(classes * perClass) {
    let c = i % classes
    text += "\(c)," + (0..<6).map { j -> String in
      if identical { return "0.5" }
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return String(Double(c == j ? 2 : 0) + Double(state >> 11) / Double(1 << 53))
    }.joined(separator: ",") + "\n"
  }
  _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
  return path
}

@Suite("The compute context on the command line")
struct CommandComputeTests {
  static func train(_ extra: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    try dml(
      ["train", "--data", syntheticCSV(), "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=32,embedding=16",
       "--batch", "m-per-class:m=4,size=16", "--epochs", "2", "--log", "json", "--log-every", "0"] + extra,
      environment: environment)
  }

  @Test("DML_GEMM names the engine; any other value is refused, naming the variable")
  func engineFromEnvironment() throws {
    let bad = try Self.train([], environment: ["DML_GEMM": "fast"])
    #expect(bad.status != 0 && bad.stderr.contains("DML_GEMM=fast") && bad.stderr.contains("kernels or blas"), "\(bad.stderr)")
    for engine in ["blas", "kernels"] {
      let r = try Self.train([], environment: ["DML_GEMM": engine])
      if engine == "kernels" && !LayerGemm.kernelsAvailable {
        #expect(r.status != 0 && r.stderr.contains("AVX-512"), "\(r.stderr)")
      } else {
        #expect(r.status == 0 && r.stdout.contains("\"event\":\"test\""), "\(engine): \(r.stderr)")
      }
    }
  }

  @Test("--threads 1 and --threads 2 train the MLP to the same test metrics, bit for bit")
  func threadsChangeNoResult() throws {
    func testLine(_ threads: String) throws -> String {
      let r = try Self.train(["--threads", threads])
      #expect(r.status == 0, "\(r.stderr)")
      return r.stdout.split(separator: "\n").first { $0.contains("\"event\":\"test\"") }.map(String.init) ?? ""
    }
    let one = try testLine("1"), two = try testLine("2")
    #expect(!one.isEmpty && one == two)
  }
}

@Suite("Numerical stress: extreme settings end finite, or in the clear non-finite stop", .serialized)
struct StressTests {
  static func run(_ data: String, _ extra: [String], train: String = "0-3", test: String = "0-3") throws -> (status: Int32, stdout: String, stderr: String) {
    var a = ["train", "--data", data, "--train-classes", train, "--test-classes", test, "--network", "mlp:hidden=8,embedding=4",
      "--batch", "shuffled:size=8", "--epochs", "2", "--log", "json", "--log-every", "1", "--allow-overlap"]
    for i in stride(from: 0, to: extra.count, by: 2) {
      if let k = a.firstIndex(of: extra[i]) { a[k + 1] = extra[i + 1] } else { a += [extra[i], extra[i + 1]] }
    }
    return try dml(a)
  }

  /// Every number in the JSON log is finite and the run reached its test report.
  static func finished(_ r: (status: Int32, stdout: String, stderr: String)) -> Bool {
    r.status == 0 && r.stdout.contains("\"event\":\"test\"") && !r.stdout.lowercased().contains("nan") && !r.stdout.contains("inf")
      && !r.stderr.contains("Backtrace")
  }

  /// The clear non-finite stop: exit status 1 and a message naming the step.
  static func stopped(_ r: (status: Int32, stdout: String, stderr: String)) -> Bool {
    r.status == 1 && r.stderr.contains("step ") && (r.stderr.contains("not finite") || r.stderr.contains("the loss is"))
      && !r.stderr.contains("Backtrace")
  }

  @Test("learning rate 10: finite to the end or the clear stop")
  func hugeLearningRate() throws {
    let r = try Self.run(stressCSV("lr10"), ["--optimizer", "sgd:lr=10", "--loss", "contrastive", "--batch", "m-per-class:m=4,size=8"])
    #expect(Self.finished(r) || Self.stopped(r), "\(r.status) \(r.stderr)")
  }

  @Test("proxy scale 1000 (Proxy-Anchor alpha=1000): finite to the end or the clear stop")
  func proxyScale() throws {
    let r = try Self.run(stressCSV("alpha"), ["--loss", "proxy-anchor:alpha=1000"])
    #expect(Self.finished(r) || Self.stopped(r), "\(r.status) \(r.stderr)")
  }

  @Test("must finish finite", arguments: [
    ("identical inputs", ["--loss", "contrastive", "--batch", "m-per-class:m=4,size=8"], true, "0-3", "0-3"),
    ("identical inputs, proxy-anchor", ["--loss", "proxy-anchor"], true, "0-3", "0-3"),
    ("identical inputs, triplet + semihard", ["--loss", "triplet:margin=0.2", "--miner", "semihard", "--batch", "m-per-class:m=4,size=8"], true, "0-3", "0-3"),
    ("embedding dimension 1", ["--network", "mlp:hidden=8,embedding=1", "--loss", "triplet:margin=0.2", "--batch", "m-per-class:m=2,size=8"], false, "0-3", "0-3"),
    ("batch of 2", ["--batch", "shuffled:size=2", "--loss", "contrastive"], false, "0-3", "0-3"),
    ("batch of 2, multi-similarity + miner", ["--batch", "m-per-class:m=2,size=2", "--loss", "multi-similarity", "--miner", "multi-similarity"], false, "0-3", "0-3"),
    ("margin 0", ["--loss", "triplet:margin=0", "--miner", "semihard:margin=0", "--batch", "m-per-class:m=4,size=8"], false, "0-3", "0-3"),
    ("margin 100", ["--loss", "triplet:margin=100", "--batch", "m-per-class:m=4,size=8"], false, "0-3", "0-3"),
    ("contrastive margins 0 and 100", ["--loss", "contrastive:pos_margin=0,neg_margin=100"], false, "0-3", "0-3"),
  ])
  func mustFinish(name: String, extra: [String], identical: Bool, train: String, test: String) throws {
    let r = try Self.run(stressCSV("stress-\(name.hashValue & 0xFFFF)", identical: identical), extra, train: train, test: test)
    #expect(Self.finished(r), "\(name): status \(r.status)\n\(r.stderr)\n\(r.stdout.suffix(400))")
  }

  @Test("one training class is refused by name, before any training", arguments: [
    ["--loss", "contrastive"], ["--loss", "proxy-anchor"], ["--loss", "softmax", "--loss", "center:weight=0.01"],
  ])
  func oneClass(extra: [String]) throws {
    let r = try Self.run(stressCSV("one-class"), extra, train: "0", test: "1-3")
    #expect(r.status == 64 && r.stderr.contains("--train-classes 0: training needs at least 2 classes"), "\(r.status) \(r.stderr)")
    #expect(!r.stdout.contains("epoch"))
  }
}

@Suite("Hostile index files")
struct HostileIndexTests {
  @Test("an index whose labels are NaN or infinite is refused by name, not trapped on")
  func nanLabels() throws {
    let path = temporaryFolder("nan-index") + ".st"
    let data = Checkpoint.safetensors([
      (name: "embeddings", shape: [2, 2], values: [1, 0, 0, 1]), (name: "labels", shape: [2], values: [0, .nan]),
      (name: "ids", shape: [2], values: [0, .infinity]),
    ])
    _ = FileManager.default.createFile(atPath: path, contents: data)
    let r = try dml(["search", "--index", path, "--k", "1"])
    #expect(r.status != 0 && r.stderr.contains("--index \(path): label or id nan is not a whole number"), "\(r.stderr)")
    #expect(!r.stderr.contains("Backtrace"))
  }
}

@Suite("Crash safety", .serialized)
struct CrashTests {
  /// The recipes killed: triplets with semi-hard mining, softmax + center loss (centers moved by
  /// their own rule) and ArcFace (class weights stepped by the optimizer), with their kill counts.
  static let recipes: [(name: String, loss: [String], kills: Int)] = [
    ("triplet+semihard", [], 20), ("softmax+center", ["softmax", "center:weight=0.1"], 8), ("arcface", ["arcface"], 8),
  ]

  static func arguments(_ data: String, recipe: String, epochs: Int, checkpoint: String) -> [String] {
    var a = CommandTests.trainArguments(data, epochs: epochs, checkpoint: checkpoint)
    let loss = recipes.first { $0.name == recipe }!.loss
    guard !loss.isEmpty else { return a }
    let at = a.firstIndex(of: "--loss")!
    a.removeSubrange(at..<(at + 4))  // --loss triplet:… --miner semihard:…
    return a + loss.flatMap { ["--loss", $0] }
  }

  @Test(
    "kill -9 at random moments: each resume starts from a verified checkpoint; the end equals an uninterrupted run",
    arguments: recipes.map(\.name))
  func killNine(recipe: String) throws {
    let data = syntheticCSV()
    let epochs = 200
    let wanted = Self.recipes.first { $0.name == recipe }!.kills
    let straight = temporaryFolder("kill-straight-\(recipe)"), killed = temporaryFolder("kill-killed-\(recipe)")
    defer { for f in [straight, killed] { try? FileManager.default.removeItem(atPath: f) } }
    let started = Date()
    let a = try dml(Self.arguments(data, recipe: recipe, epochs: epochs, checkpoint: straight))
    #expect(a.status == 0, "\(a.stderr)")
    // The kill window scales with the uninterrupted run's length (at most 0.4 s), so that the
    // kills land before a resumed run can finish, on a fast machine as on a slow one.
    let window = Int(min(0.4, max(0.035, Date().timeIntervalSince(started) / Double(wanted + 5))) * 1_000_000)
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var rng = RandomSource(seed: 20)
    var kills = 0, launches = 0
    var finished = false
    while !finished && launches < 200 {
      launches += 1
      var arguments = Self.arguments(data, recipe: recipe, epochs: epochs, checkpoint: killed)
      if FileManager.default.fileExists(atPath: killed + "/latest") { arguments.append("--resume") }
      let process = Process()
      process.executableURL = bundle.appendingPathComponent("dml")
      process.arguments = arguments
      let err = Pipe()
      process.standardOutput = FileHandle.nullDevice
      process.standardError = err
      try process.run()
      if kills < wanted {
        // A random moment in the first 0.03 s to `window` of the run (start-up, training or a
        // checkpoint write).
        usleep(UInt32(30_000 + rng.index(below: window - 30_000)))
        if process.isRunning {
          kill(process.processIdentifier, SIGKILL)
          kills += 1
        }
      }
      let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      #expect(!stderr.contains("checksum") && !stderr.contains("Backtrace"), "launch \(launches): \(stderr)")
      if process.terminationReason == .exit {
        #expect(process.terminationStatus == 0, "launch \(launches): \(stderr)")
        finished = process.terminationStatus == 0
      }
    }
    #expect(kills >= wanted && finished, "\(kills) kills, finished: \(finished)")
    let dir = try Checkpoint.verifiedLatest(in: killed)
    #expect(dir.rejected.isEmpty)
    func parameters(_ folder: String) throws -> Data {
      try Data(contentsOf: URL(fileURLWithPath: try Checkpoint.latest(in: folder) + "/parameters.safetensors"))
    }
    #expect(try parameters(straight) == parameters(killed), "the killed and resumed run ends elsewhere")
    // No partial directory is left to confuse a later run.
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: killed).filter { $0.hasSuffix(".partial") }
    #expect(leftovers.isEmpty, "partial checkpoint directories left: \(leftovers)")
  }
}

@Suite("dml tune", .serialized)
struct TuneTests {
  static func arguments(_ data: String, output: String, trials: Int) -> [String] {
    ["tune", "--data", data, "--train-classes", "0-3", "--folds", "2", "--network", "mlp:hidden=16,embedding={4|8}",
     "--loss", "triplet:margin={0.1..0.3}", "--loss", "contrastive+softmax:weight={0.01..1 log}",
     "--optimizer", "adam:lr={1e-3..1e-2 log}", "--batch", "m-per-class:m=4,size=32", "--epochs", "2", "--patience", "1",
     "--trials", "\(trials)", "--output", output]
  }

  @Test("tune runs its trials on class-disjoint folds, writes the table and the choice, and resumes")
  func tune() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("tune")
    let first = try dml(Self.arguments(data, output: folder, trials: 3))
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("tuning over 2 fold(s)"))
    let table = try String(contentsOfFile: folder + "/trials.csv", encoding: .utf8).split(separator: "\n")
    #expect(table.count == 4 && table[0].hasPrefix("trial,mean_validation_map_at_r"))
    // Every drawn value lies in its range.
    for row in table.dropFirst() {
      let text = String(row)
      #expect(text.contains("embedding=4") || text.contains("embedding=8"))
      if let r = text.range(of: "lr=") {
        let lr = Double(text[r.upperBound...].prefix { "0123456789.e-".contains($0) })!
        #expect(lr >= 1e-3 && lr <= 1e-2, "lr \(lr) out of range")
      }
    }
    let best = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/best.json"))) as! [String: Any]
    #expect((best["mean_validation_map_at_r"] as! Double) > 0)
    let command = best["command"] as! String
    #expect(command.hasPrefix("dml train --data") && !command.contains("...") && !command.contains("--data-dir"), "\(command)")
    #expect(command.contains("--test-classes"), "\(command)")
    // It runs as printed, pasted into a shell.
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dml").path
    let shell = Process()
    shell.executableURL = URL(fileURLWithPath: "/bin/sh")
    shell.arguments = ["-c", binary + command.dropFirst(3) + " --epochs 1 --log json > /dev/null 2>&1"]
    try shell.run()
    shell.waitUntilExit()
    #expect(shell.terminationStatus == 0, "\(command)")
    // Resume: the three trials are kept, one more is run.
    let second = try dml(Self.arguments(data, output: folder, trials: 4))
    #expect(second.status == 0 && second.stdout.contains("resuming after 3 trial(s)"), "\(second.stderr)")
    #expect(second.stdout.components(separatedBy: "trial 4/4").count == 2 && !second.stdout.contains("trial 1/4"))
    let table2 = try String(contentsOfFile: folder + "/trials.csv", encoding: .utf8).split(separator: "\n")
    #expect(table2.count == 5 && Array(table2.prefix(4)) == Array(table))
    // A different search space refuses the folder.
    var changed = Self.arguments(data, output: folder, trials: 4)
    changed[changed.firstIndex(of: "--epochs")! + 1] = "3"
    let refused = try dml(changed)
    #expect(refused.status != 0 && refused.stderr.contains("holds a search with --epochs '2', not '3'"), "\(refused.stderr)")
    // Test classes are refused outright.
    let peek = try dml(Self.arguments(data, output: folder, trials: 4) + ["--test-classes", "4-5"])
    #expect(peek.status != 0 && peek.stderr.contains("tuning never looks at test classes"))
  }
}

@Suite("Learned state through the command line", .serialized)
struct LearnedStateCommandTests {
  static func arguments(_ data: String, loss: [String], epochs: Int, checkpoint: String) -> [String] {
    ["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=16,embedding=4",
     "--batch", "shuffled:size=32", "--epochs", "\(epochs)", "--seed", "3", "--checkpoint", checkpoint, "--log", "json",
     "--log-every", "0"] + loss.flatMap { ["--loss", $0] }
  }

  static func tensors(_ folder: String, _ file: String = "parameters.safetensors") throws -> [String: (shape: [Int], values: [Float])] {
    try Checkpoint.readSafetensors(try Checkpoint.latest(in: folder) + "/" + file)
  }

  @Test("ArcFace, CosFace and normalized-softmax save and train their class weights", arguments: ["arcface", "cosface", "normalized-softmax"])
  func classWeights(loss: String) throws {
    let data = syntheticCSV()
    let one = temporaryFolder("cw-1-\(loss)"), two = temporaryFolder("cw-2-\(loss)")
    defer { for f in [one, two] { try? FileManager.default.removeItem(atPath: f) } }
    #expect(try dml(Self.arguments(data, loss: [loss], epochs: 1, checkpoint: one)).status == 0)
    #expect(try dml(Self.arguments(data, loss: [loss], epochs: 2, checkpoint: two)).status == 0)
    let a = try Self.tensors(one), b = try Self.tensors(two)
    #expect(a["loss.class_weights"]?.shape == [4, 4], "\(a.keys.sorted())")
    #expect(a["loss.class_weights"]?.values != b["loss.class_weights"]?.values, "the class weights did not train")
    let optimizer = try Self.tensors(one, "optimizer.safetensors")
    #expect(optimizer["loss.class_weights.m"] != nil && optimizer["loss.class_weights.v"] != nil, "\(optimizer.keys.sorted())")
  }

  @Test("softmax + center: the centers are in the checkpoint and a resumed run equals the uninterrupted one")
  func centerResume() throws {
    let data = syntheticCSV()
    let straight = temporaryFolder("center-straight"), split = temporaryFolder("center-split")
    defer { for f in [straight, split] { try? FileManager.default.removeItem(atPath: f) } }
    let loss = ["softmax", "center:weight=0.1"]
    let a = try dml(Self.arguments(data, loss: loss, epochs: 2, checkpoint: straight))
    #expect(a.status == 0, "\(a.stderr)")
    #expect(try dml(Self.arguments(data, loss: loss, epochs: 1, checkpoint: split)).status == 0)
    let c = try dml(Self.arguments(data, loss: loss, epochs: 2, checkpoint: split) + ["--resume"])
    #expect(c.status == 0, "\(c.stderr)")
    let t = try Self.tensors(straight)
    #expect(t.keys.sorted() == [
      "loss.0.bias", "loss.0.class_weights", "loss.1.centers", "network.0.0.0.bias", "network.0.0.0.weight", "network.1.bias",
      "network.1.weight",
    ])
    #expect(t["loss.1.centers"]?.values.contains { $0 != 0 } == true, "the centers never moved from 0")
    for file in ["parameters.safetensors", "optimizer.safetensors"] {
      let x = try Data(contentsOf: URL(fileURLWithPath: try Checkpoint.latest(in: straight) + "/" + file))
      let y = try Data(contentsOf: URL(fileURLWithPath: try Checkpoint.latest(in: split) + "/" + file))
      #expect(x == y, "\(file): the resumed run differs")
    }
    let testA = a.stdout.split(separator: "\n").last { $0.contains("\"test\"") }
    let testC = c.stdout.split(separator: "\n").last { $0.contains("\"test\"") }
    #expect(testA != nil && testA == testC)
  }

  @Test("a first-format checkpoint (positional names) still serves evaluate, and resume refuses it with what to do")
  func firstFormat() throws {
    let data = syntheticCSV()
    let current = temporaryFolder("format-2"), old = temporaryFolder("format-1")
    defer { for f in [current, old] { try? FileManager.default.removeItem(atPath: f) } }
    let args = Self.arguments(data, loss: ["triplet:margin=0.2"], epochs: 1, checkpoint: current)
    #expect(try dml(args).status == 0)
    // Rewrite it as the first format did: `network.p<index>.<name>`, no manifest, `version` 1.
    let latest = try Checkpoint.latest(in: current)
    let saved = try Checkpoint.readSafetensors(latest + "/parameters.safetensors")
    let order = ["network.0.0.0.weight", "network.0.0.0.bias", "network.1.weight", "network.1.bias"]
    let positional = order.enumerated().map { (index, name) in
      (name: "network.p\(index).\(name.split(separator: ".").last!)", shape: saved[name]!.shape, values: saved[name]!.values)
    }
    let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: latest + "/state.json"))) as! [String: Any]
    let oldState: [String: Any] = ["version": 1, "epoch": 1, "step": 7, "configuration": state["configuration"]!]
    try Checkpoint.save([
      "parameters.safetensors": Checkpoint.safetensors(positional), "optimizer.safetensors": Checkpoint.safetensors([]),
      "best.safetensors": Checkpoint.safetensors([]), "state.json": try JSONSerialization.data(withJSONObject: oldState),
    ], in: old, step: 7)
    let e1 = try dml(["evaluate", "--checkpoint", current, "--data", data, "--test-classes", "4-5", "--json"])
    let e2 = try dml(["evaluate", "--checkpoint", old, "--data", data, "--test-classes", "4-5", "--json"])
    #expect(e1.status == 0 && e2.status == 0, "\(e2.stderr)")
    #expect(e1.stdout == e2.stdout, "the positional checkpoint maps to other parameters")
    let r = try dml(Self.arguments(data, loss: ["triplet:margin=0.2"], epochs: 2, checkpoint: old) + ["--resume"])
    #expect(r.status != 0 && r.stderr.contains("written by an older version") && r.stderr.contains("start a new run"), "\(r.stderr)")
    #expect(!r.stderr.contains("Backtrace"))
  }
}

@Suite("Guards of the command line: named errors, exit codes, the open-set protocol", .serialized)
struct GuardTests {
  static func train(_ extra: [String], classes: Bool = true) throws -> (status: Int32, stdout: String, stderr: String) {
    var a = ["train", "--data", syntheticCSV(), "--network", "mlp:hidden=8,embedding=4", "--batch", "shuffled:size=16",
      "--epochs", "1", "--log", "json", "--log-every", "0"]
    if classes { a += ["--train-classes", "0-1", "--test-classes", "4-5"] }
    return try dml(a + extra)
  }

  /// A named error with exit status 64 (usage), through the real executable: no trap, no backtrace.
  static func refused(_ r: (status: Int32, stdout: String, stderr: String), _ message: String) -> Bool {
    r.status == 64 && r.stderr.contains(message) && !r.stderr.contains("Backtrace") && !r.stderr.contains("Illegal")
  }

  @Test("classes= below the training data's classes is a named error, not a trap", arguments: [
    "softmax", "arcface", "cosface", "normalized-softmax", "center", "proxy-anchor", "proxy-nca",
  ])
  func fewerClasses(loss: String) throws {
    let r = try Self.train(["--loss", "\(loss):classes=1"])
    #expect(Self.refused(r, "\(loss): classes=1 is fewer than the 2 classes of the training data"), "\(r.status) \(r.stderr)")
  }

  @Test("values outside a hyperparameter's declared range are refused by name", arguments: [
    (["--loss", "triplet:margin=-0.2"], "triplet: margin=-0.2 must be ≥ 0"),
    (["--batch", "m-per-class:m=0,size=16"], "m-per-class: m=0 must be ≥ 1"),
    (["--batch", "views:size=16,views=1"], "views: views=1 must be ≥ 2"),
    (["--loss", "arcface:margin=90"], "arcface: margin=90 must be in [0, 90)"),
    (["--loss", "center:alpha=0"], "center: alpha=0 must be in (0, 1]"),
    (["--optimizer", "sgd:momentum=1"], "sgd: momentum=1 must be in [0, 1)"),
    (["--network", "mlp:embedding=0"], "mlp: embedding=0 must be ≥ 1"),
    (["--loss", "proxy-anchor:classes=-3"], "proxy-anchor: classes=-3 must be ≥ 0"),
    // Sizes that would end the process in an allocation are refused before it.
    (["--memory", "size=100000000000"], "--memory size=100000000000: size=100000000000 exceeds the 80 training samples"),
    (["--network", "mlp:hidden=100000000,embedding=4"], "parameters would need"),
    (["--network", "mlp:hidden=8,embedding=1000000000"], "parameters would need"),
  ])
  func ranges(extra: [String], message: String) throws {
    let r = try Self.train(extra)
    #expect(Self.refused(r, message), "\(extra): \(r.status) \(r.stderr)")
  }

  @Test("help lists training-only options only under the commands that train, and no doubled defaults")
  func help() throws {
    for command in ["train", "tune"] {
      #expect(try dml([command, "--help"]).stdout.contains("--validation-classes"), "\(command)")
    }
    for command in ["evaluate", "embed", "search", "verify", "dedup", "fewshot"] {
      let h = try dml([command, "--help"]).stdout
      #expect(!h.contains("--validation-classes") && !h.contains("(default: none). (default"), "\(command)")
    }
    let usage = try dml(["evaluate", "--help"]).stdout.split(separator: "\n").first { $0.hasPrefix("USAGE: dml evaluate") }
    #expect(usage?.contains("--checkpoint <checkpoint>") == true, "\(usage ?? "no usage line")")
  }

  @Test("dml list shows each hyperparameter's range")
  func listRanges() throws {
    let r = try dml(["list"])
    #expect(r.stdout.contains("margin=0.05  required gap between positive and negative (≥ 0)"), "\(r.stdout)")
    #expect(r.stdout.contains("momentum=0.9  momentum (in [0, 1))"))
  }

  @Test("test classes that are training classes: refused, or with --allow-overlap a warning")
  func overlap() throws {
    let same = try Self.train(["--train-classes", "0-3", "--test-classes", "3-5"], classes: false)
    #expect(Self.refused(same, "test classes 3 are also training classes: the test would score rows of"), "\(same.stderr)")
    let none = try Self.train([], classes: false)  // --data file.csv alone: the test rows are the training rows
    #expect(Self.refused(none, "test classes 0,1,2,3,4,5 are also training classes"), "\(none.stderr)")
    let allowed = try Self.train(["--train-classes", "0-3", "--test-classes", "3-5", "--allow-overlap"], classes: false)
    #expect(allowed.status == 0 && allowed.stderr.contains("warning: test classes 3 are training classes"), "\(allowed.stderr)")
  }

  @Test("--test-data is evaluated on all its classes unless --test-classes says otherwise")
  func testDataClasses() throws {
    let folder = temporaryFolder("testdata")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let lines = try String(contentsOfFile: syntheticCSV(), encoding: .utf8).split(separator: "\n")
    let header = lines[0], rows = lines.dropFirst()
    let train = rows.filter { Int($0.prefix { $0 != "," })! < 4 }, test = rows.filter { Int($0.prefix { $0 != "," })! >= 4 }
    try ([header] + train).joined(separator: "\n").write(toFile: folder + "/tr.csv", atomically: true, encoding: .utf8)
    try ([header] + test).joined(separator: "\r\n").write(toFile: folder + "/te.csv", atomically: true, encoding: .utf8)
    let r = try dml(["train", "--data", folder + "/tr.csv", "--test-data", folder + "/te.csv", "--network", "mlp:hidden=8,embedding=4",
      "--batch", "shuffled:size=16", "--epochs", "1", "--log", "json", "--log-every", "0"])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("\"classes\":\"4,5\""), "\(r.stdout)")
    #expect(r.stderr.contains("te.csv: line 1 is read as column names (label, f0, f1, f2, …)"), "\(r.stderr)")
  }

  @Test("a checkpoint folder of another run: refused without --resume or --force; --force replaces it")
  func overwrite() throws {
    let folder = temporaryFolder("overwrite")
    #expect(try Self.train(["--checkpoint", folder]).status == 0)
    let again = try Self.train(["--checkpoint", folder])
    #expect(Self.refused(again, "--checkpoint \(folder) holds another run's checkpoints: pass --resume to continue it, or --force"), "\(again.stderr)")
    let forced = try Self.train(["--checkpoint", folder, "--force", "--seed", "4"])
    #expect(forced.status == 0, "\(forced.stderr)")
    let steps = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("step-") }
    #expect(steps.count == 1, "\(steps)")
    let empty = temporaryFolder("overwrite-empty")
    let resumeNothing = try Self.train(["--checkpoint", empty, "--resume"])
    #expect(Self.refused(resumeNothing, "--resume: \(empty) holds no checkpoint to continue"), "\(resumeNothing.stderr)")
  }

  @Test("an output folder that cannot be written is reported before the first epoch")
  func unwritable() throws {
    let file = temporaryFolder("a-file")
    _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
    let r = try Self.train(["--checkpoint", file + "/ck"])
    #expect(Self.refused(r, "--checkpoint \(file)/ck: cannot create the folder"), "\(r.stderr)")
    #expect(!r.stdout.contains("\"event\":\"epoch\""))
    let p = try Self.train(["--plots", file + "/plots"])
    #expect(Self.refused(p, "--plots \(file)/plots: cannot create the folder"), "\(p.stderr)")
  }

  @Test("with stdout to a file or pipe, each epoch also prints a progress line on stderr")
  func progress() throws {
    let r = try Self.train(["--epochs", "2"])
    #expect(r.status == 0)
    #expect(r.stderr.contains("epoch 1/2  loss") && r.stderr.contains("epoch 2/2  loss"), "\(r.stderr)")
  }

  @Test("verify --pairs reads a CRLF file with a header; evaluate's JSON has Recall@1, 2, 4, 8 and lone queries")
  func pairsAndRecall() throws {
    let folder = temporaryFolder("pairs")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let pairs = folder + "/pairs.csv"
    // Sorted by kind, as LFW ships its pairs: the non-matching pairs, then a few matching ones. A
    // calibration on the file's first half would see no match at all.
    // Pairs name rows of the data file (0 for the first data row), here among the test classes 4-5.
    let all = try String(contentsOfFile: syntheticCSV(), encoding: .utf8).split(separator: "\n").dropFirst()
      .map { Int($0.prefix { $0 != "," })! }
    let rows = all.indices.filter { all[$0] >= 4 }
    var same: [(Int, Int)] = [], different: [(Int, Int)] = []
    for (a, i) in rows.enumerated() { for j in rows[(a + 1)...] where (i + j) % 7 == 0 {
      if all[i] == all[j] { same.append((i, j)) } else { different.append((i, j)) }
    } }
    var text = "\u{FEFF}i,j\r\n"
    for (i, j) in different + same.prefix(different.count / 4) { text += "\(i),\(j)\r\n" }
    try text.write(toFile: pairs, atomically: true, encoding: .utf8)
    let v = try dml(["verify", "--data", syntheticCSV(), "--test-classes", "4-5", "--pairs", pairs])
    #expect(v.status == 0, "\(v.stderr) \(v.stdout)")
    let ck = temporaryFolder("recall")
    #expect(try Self.train(["--checkpoint", ck]).status == 0)
    let e = try dml(["evaluate", "--checkpoint", ck, "--data", syntheticCSV(), "--test-classes", "4-5", "--json"])
    let json = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
    for key in ["recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "lone_queries"] { #expect(json[key] != nil, "\(key)") }
  }
}

@Suite("Resume from the checkpoint's recipe; the JSON log's records", .serialized)
struct ResumeConfigurationTests {
  static func arguments(_ data: String, folder: String, epochs: Int) -> [String] {
    ["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=16,embedding=4",
     "--loss", "triplet:margin=0.2", "--miner", "semihard:margin=0.3", "--batch", "m-per-class:m=4,size=32",
     "--optimizer", "adam:lr=0.001", "--epochs", "\(epochs)", "--seed", "3", "--checkpoint", folder, "--log", "json", "--log-every", "0"]
  }

  @Test("--resume alone reads the recipe from the checkpoint; flags equal by value pass; every mismatch is listed")
  func resumeReadsRecipe() throws {
    let data = syntheticCSV()
    let straight = temporaryFolder("rc-straight"), split = temporaryFolder("rc-split")
    let a = try dml(Self.arguments(data, folder: straight, epochs: 3))
    #expect(a.status == 0, "\(a.stderr)")
    #expect(try dml(Self.arguments(data, folder: split, epochs: 1)).status == 0)
    // Only the folder, the new epoch count and the log format: the rest comes from the checkpoint.
    let b = try dml(["train", "--checkpoint", split, "--resume", "--epochs", "2", "--log", "json", "--log-every", "0"])
    #expect(b.status == 0, "\(b.stderr)")
    // The same learning rate written another way is the same recipe.
    let c = try dml(["train", "--checkpoint", split, "--resume", "--epochs", "3", "--optimizer", "adam:lr=1e-3", "--log", "json", "--log-every", "0"])
    #expect(c.status == 0, "\(c.stderr)")
    let test = { (r: (status: Int32, stdout: String, stderr: String)) in r.stdout.split(separator: "\n").last { $0.contains("\"test\"") } }
    #expect(test(a) != nil && test(a) == test(c), "the resumed run differs from the uninterrupted one")
    let d = try dml(["train", "--checkpoint", split, "--resume", "--seed", "4", "--loss", "triplet:margin=0.25"])
    #expect(d.status == 64, "\(d.stderr)")
    #expect(d.stderr.contains("--loss is 'triplet:margin=0.25' but the checkpoint was made with 'triplet:margin=0.2'"), "\(d.stderr)")
    #expect(d.stderr.contains("--seed is '4' but the checkpoint was made with '3'"), "\(d.stderr)")
  }

  @Test("the JSON log opens with the configuration and the version, and ends with the error that stopped it")
  func logRecords() throws {
    let data = syntheticCSV()
    let r = try dml(Self.arguments(data, folder: temporaryFolder("rc-log"), epochs: 1))
    let first = try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n")[0].utf8)) as! [String: Any]
    #expect(first["event"] as? String == "configuration" && first["dml_version"] as? String == DML.version)
    #expect((first["configuration"] as? [String: String])?["loss"] == "triplet:margin=0.2")
    let bad = try dml(["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--loss", "softmax:classes=2", "--log", "json"])
    #expect(bad.status == 64 && bad.stdout.contains("\"event\":\"error\"") && bad.stdout.contains("classes=2 is fewer than the 4 classes"), "\(bad.stdout)")
    let validated = try dml(["train", "--data", data, "--train-classes", "0-3", "--validation-classes", "2-3", "--test-classes", "4-5",
      "--network", "mlp:hidden=8,embedding=4", "--batch", "shuffled:size=32", "--epochs", "2", "--log", "json", "--log-every", "0"])
    #expect(validated.status == 0 && validated.stdout.contains("\"event\":\"restored\""), "\(validated.stdout)")
    let v = try dml(["--version"])
    #expect(v.status == 0 && v.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == DML.version)
  }

  @Test("embed writes the labels beside NPY embeddings")
  func embedLabels() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("rc-embed")
    #expect(try dml(Self.arguments(data, folder: folder, epochs: 1)).status == 0)
    let out = folder + "/test.npy"
    let e = try dml(["embed", "--checkpoint", folder, "--data", data, "--test-classes", "4-5", "--output", out])
    #expect(e.status == 0, "\(e.stderr)")
    let labels = try NPY.read(folder + "/test.labels.npy")
    #expect(labels.shape == [80] && Set(labels.values) == [4, 5])
  }
}

@Suite("Post-training commands read the checkpoint's data and unseen classes", .serialized)
struct PostTrainingDefaultsTests {
  @Test("evaluate, embed and fewshot default to the run's data and test classes, and warn on trained classes")
  func defaults() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("post")
    let t = try dml(["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=16,embedding=4",
      "--batch", "shuffled:size=32", "--epochs", "1", "--checkpoint", folder, "--log", "json", "--log-every", "0"])
    #expect(t.status == 0, "\(t.stderr)")
    // No --data, no --test-classes: the run's own.
    let plain = try dml(["evaluate", "--checkpoint", folder, "--json"])
    let explicit = try dml(["evaluate", "--checkpoint", folder, "--data", data, "--test-classes", "4-5", "--json"])
    #expect(plain.status == 0 && plain.stdout == explicit.stdout, "\(plain.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as! [String: Any]
    #expect(json["queries"] as? Int == 80)
    #expect(!plain.stderr.contains("warning"), "\(plain.stderr)")
    // Asked for trained classes: it runs, and says what the number means.
    let seen = try dml(["evaluate", "--checkpoint", folder, "--test-classes", "2-5", "--json"])
    #expect(seen.status == 0 && seen.stderr.contains("warning: classes 2,3 were training classes of \(folder)"), "\(seen.stderr)")
    let out = folder + "/e.csv"
    let e = try dml(["embed", "--checkpoint", folder, "--output", out])
    #expect(e.status == 0, "\(e.stderr)")
    #expect(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count == 80)
    let f = try dml(["fewshot", "--checkpoint", folder, "--ways", "2", "--shots", "1", "--episodes", "20"])
    #expect(f.status == 0 && !f.stderr.contains("warning"), "\(f.stderr)")
  }
}

@Suite("Search indexes know their model; ids are rows of the user's file", .serialized)
struct IndexIdentityTests {
  @Test("search reports file rows as ids; an index refuses queries embedded by another model")
  func identity() throws {
    let data = syntheticCSV()
    let s = try dml(["search", "--data", data, "--test-classes", "4-5", "--k", "1", "--limit", "80"])
    #expect(s.status == 0, "\(s.stderr)")
    let ids = s.stdout.split(separator: "\n").dropFirst().map { Int($0.split(separator: ",")[2])! }
    #expect(ids.count == 80 && ids.allSatisfy { $0 % 6 == 4 || $0 % 6 == 5 }, "ids are not rows of classes 4-5: \(ids.prefix(10))")
    func train(_ folder: String, seed: String) throws {
      let t = try dml(["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=8,embedding=4",
        "--batch", "shuffled:size=32", "--epochs", "1", "--seed", seed, "--checkpoint", folder, "--log", "json"])
      #expect(t.status == 0, "\(t.stderr)")
    }
    let a = temporaryFolder("index-a"), b = temporaryFolder("index-b")
    try train(a, seed: "1")
    try train(b, seed: "2")
    let index = a + "/index.safetensors"
    #expect(try dml(["search", "--checkpoint", a, "--save-index", index, "--limit", "1"]).status == 0)
    #expect(try dml(["search", "--checkpoint", a, "--index", index, "--limit", "1"]).status == 0)
    let other = try dml(["search", "--checkpoint", b, "--index", index, "--limit", "1"])
    #expect(other.status == 64 && other.stderr.contains("search it with the checkpoint that built it"), "\(other.stderr)")
    let raw = try dml(["search", "--data", data, "--index", index, "--limit", "1"])
    #expect(raw.status == 64 && raw.stderr.contains("the queries would be embedded by raw features"), "\(raw.stderr)")
  }

  @Test("ids and labels beyond 2^24 survive an index exactly (int64)")
  func largeIds() throws {
    let path = temporaryFolder("big-ids") + ".safetensors"
    let ids = [16_777_217, 9_007_199_254_740_993, 3]
    try SearchIndex.save(Matrix(rows: 3, columns: 2, elements: [1, 0, 0, 1, 1, 1]), labels: [16_777_219, 0, 1], ids: ids, to: path)
    let (_, labels, loaded) = try SearchIndex.load(path)
    #expect(loaded == ids && labels == [16_777_219, 0, 1])
  }
}

@Suite("Input scaling is recorded and checked", .serialized)
struct InputScalingTests {
  @Test("a checkpoint records its input scaling; inputs in another scale are warned about")
  func scale() throws {
    let data = syntheticCSV()
    let folder = temporaryFolder("scale")
    #expect(try dml(["train", "--data", data, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=8,embedding=4",
      "--batch", "shuffled:size=32", "--epochs", "1", "--checkpoint", folder, "--log", "json"]).status == 0)
    let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try Checkpoint.latest(in: folder) + "/state.json"))) as! [String: Any]
    #expect((state["configuration"] as? [String: String])?["input_scaling"] == "values as given in the file")
    #expect(state["input_mean"] is Double && state["input_std"] is Double)
    let same = try dml(["evaluate", "--checkpoint", folder, "--json"])
    #expect(same.status == 0 && !same.stderr.contains("not in the scale"), "\(same.stderr)")
    // The same file in another unit (×100): the model still runs, and says the scale is off.
    let lines = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n")
    let scaled = [String(lines[0])] + lines.dropFirst().map { line -> String in
      let cells = line.split(separator: ",")
      return ([String(cells[0])] + cells.dropFirst().map { String(Double($0)! * 100) }).joined(separator: ",")
    }
    let path = folder + "-x100.csv"
    try scaled.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    let other = try dml(["evaluate", "--checkpoint", folder, "--data", path, "--json"])
    #expect(other.status == 0 && other.stderr.contains("are not in the scale the network of \(folder) was trained on"), "\(other.stderr)")
  }
}

@Suite("A killed run keeps its log", .serialized)
struct KilledLogTests {
  @Test("the JSON log written to a file holds every line up to a kill -9, each a whole JSON object")
  func killedLog() throws {
    let log = temporaryFolder("killed-log") + ".jsonl"
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dml")
    process.arguments = ["train", "--data", syntheticCSV(), "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=8,embedding=4",
      "--batch", "shuffled:size=16", "--epochs", "100000", "--log", "json", "--log-every", "0"]
    process.standardOutput = handle
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Wait (at most 60 s) until an epoch's record is in the file, then kill the run.
    let deadline = Date().addingTimeInterval(60)
    var text = ""
    while Date() < deadline {
      text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
      if text.contains("\"event\":\"epoch\"") { break }
      usleep(20_000)
    }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    try handle.close()
    text = try String(contentsOfFile: log, encoding: .utf8)
    let lines = text.split(separator: "\n")
    #expect(lines.first?.contains("\"event\":\"configuration\"") == true, "\(text.prefix(300))")
    #expect(lines.contains { $0.contains("\"event\":\"epoch\"") }, "no epoch record before the kill")
    // Only whole lines: the file ends with a newline, and every line is a JSON object.
    #expect(text.hasSuffix("\n"))
    for line in lines { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "\(line)") }
  }
}

/// Every value below reached a trap, a silent no-op or a misleading message before the audit of
/// the preconditions, force-unwraps and ranges that a flag can reach; each now ends in a named
/// error with the usage status, through the real executable.
@Suite("Audited guards: each flag value that once trapped or misled", .serialized)
struct AuditedGuardTests {
  @Test("training flags", arguments: [
    (["--optimizer", "sgd:nesterov=true,momentum=0"], "sgd: nesterov=true needs momentum > 0"),
    (["--loss", "softmax:classes=100000000000"], "softmax: classes=100000000000 of 4-dimensional vectors would need"),
    (["--loss", "triplet:weight=-1"], "triplet: weight=-1 must be ≥ 0"),
    (["--labels", "x.npy"], "--labels x.npy is for an NPY --data file;"),
    (["--test-labels", "x.npy"], "--test-labels x.npy needs an NPY --test-data file beside it"),
  ])
  func training(extra: [String], message: String) throws {
    let r = try GuardTests.train(extra)
    #expect(GuardTests.refused(r, message), "\(extra): \(r.status) \(r.stderr)")
  }

  /// A small trained checkpoint for the post-training commands.
  static let checkpoint: String = {
    let folder = temporaryFolder("audit")
    _ = try? dml(["train", "--data", syntheticCSV(), "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=8,embedding=4",
      "--batch", "shuffled:size=32", "--epochs", "1", "--checkpoint", folder, "--force", "--log", "json", "--log-every", "0"])
    return folder
  }()

  @Test("post-training flags", arguments: [
    (["search", "--limit=-1"], "--limit -1 must be ≥ 0"),
    (["search", "--k", "80"], "--k 80 exceeds the 79 references (each query's own row excluded); pass a smaller --k"),
    (["search", "--query-labels", "x.npy"], "--query-labels x.npy needs an NPY --queries file beside it"),
    (["verify", "--sample-pairs=-3"], "--sample-pairs -3 must be at least 2"),
    (["verify", "--target", "precision=2"], "--target precision=2: the precision must lie in (0, 1]"),
    (["verify", "--target", "precision=nan"], "--target precision=nan: the precision must lie in (0, 1]"),
    (["verify", "--target", "far=-1"], "--target far=-1: the false accept rate must lie in [0, 1]"),
    (["fewshot", "--ways", "1"], "--ways 1 must be at least 2"),
    (["fewshot", "--episodes=-1"], "--episodes -1 must be at least 1"),
    (["fewshot", "--queries", "0"], "--queries 0 must be at least 1"),
    (["fewshot", "--shots", ",,"], "--shots ,,: '' is not a positive integer"),
  ])
  func postTraining(arguments: [String], message: String) throws {
    let r = try dml(arguments + ["--checkpoint", Self.checkpoint])
    #expect(GuardTests.refused(r, message), "\(arguments): \(r.status) \(r.stderr)")
  }

  @Test("queries with another number of features are refused by name, not as a checkpoint shape error")
  func queryFeatures() throws {
    let path = temporaryFolder("narrow") + ".csv"
    try "0,1,2,3,4\n1,1,2,3,5\n".write(toFile: path, atomically: true, encoding: .utf8)
    let r = try dml(["search", "--checkpoint", Self.checkpoint, "--queries", path])
    #expect(GuardTests.refused(r, "these inputs have 4 features; the network of --checkpoint \(Self.checkpoint) takes 8"), "\(r.stderr)")
  }

  @Test("tune refuses a range outside a hyperparameter's declared values before any trial", arguments: [
    ("triplet:margin={-1..1}", "--loss triplet:margin={-1..1}: margin=-1 is outside the range of triplet's margin (≥ 0)"),
    ("triplet:margin={0.1..0.2}+center:alpha={0..1}", "alpha=0 is outside the range of center's alpha (in (0, 1])"),
  ])
  func tuneRanges(template: String, message: String) throws {
    let r = try dml(["tune", "--data", syntheticCSV(), "--train-classes", "0-3", "--trials", "1", "--epochs", "1",
      "--batch", "shuffled:size=16", "--output", temporaryFolder("tune-range"), "--loss", template])
    #expect(GuardTests.refused(r, message), "\(r.stderr)")
    #expect(!r.stdout.contains("trial 1"))
  }

  @Test("tune's trials never load --test-data: a test file of other classes leaves the folds' training as it was")
  func tuneIgnoresTestData() throws {
    let lines = try String(contentsOfFile: syntheticCSV(), encoding: .utf8).split(separator: "\n")
    let test = temporaryFolder("tune-test") + ".csv"
    let kept = [lines[0]] + lines.dropFirst().filter { $0.hasPrefix("4,") || $0.hasPrefix("5,") }
    _ = FileManager.default.createFile(atPath: test, contents: Data((kept.joined(separator: "\n") + "\n").utf8))
    let r = try dml(["tune", "--data", syntheticCSV(), "--train-classes", "0-3", "--test-data", test, "--trials", "1", "--epochs", "1",
      "--batch", "shuffled:size=16", "--output", temporaryFolder("tune-testdata")])
    #expect(r.status == 0 && r.stdout.contains("trial 1/1") && !r.stderr.contains("scored 0"), "\(r.status) \(r.stderr)")
    #expect(r.stdout.contains("--test-data \(test)"), "\(r.stdout)")  // the suggested final command tests on it
  }

  @Test("a resume that asks for fewer epochs than the run has completed is refused by --epochs, before any work")
  func resumeFewerEpochs() throws {
    let folder = temporaryFolder("resume-fewer")
    let flags = ["--data", syntheticCSV(), "--train-classes", "0-3", "--test-classes", "4-5", "--batch", "shuffled:size=16"]
    let first = try dml(["train"] + flags + ["--epochs", "2", "--checkpoint", folder])
    #expect(first.status == 0, "\(first.stderr)")
    let r = try dml(["train"] + flags + ["--epochs", "1", "--checkpoint", folder, "--resume"])
    #expect(GuardTests.refused(r, "--epochs 1: the run in --checkpoint \(folder) has completed 2 epochs; give at least 2 to continue it"), "\(r.stderr)")
  }

  @Test("a search whose every trial fails ends in an error, not in a suggested recipe; huge whole-number ranges do not trap")
  func tuneAllFailed() throws {
    let r = try dml(["tune", "--data", syntheticCSV(), "--train-classes", "0-3", "--trials", "1", "--epochs", "1",
      "--batch", "shuffled:size=16", "--output", temporaryFolder("tune-failed"), "--network", "mlp:hidden={1..100000000000000000000000}"])
    #expect(r.status == 1 && r.stderr.contains("Error: no trial trained: every recipe of the search failed"), "\(r.status) \(r.stderr)")
    #expect(!r.stdout.contains("train it on every training class"))
  }
}

@Suite("dml index: build, add, info, search, tune, and --index in search and evaluate")
struct IndexCommandTests {
  /// Clustered vectors in 16 dimensions, their labels (the cluster) and the NPY files.
  static func files(_ name: String, rows: Int, seed: UInt64, dimension: Int = 16) throws -> String {
    var rng = RandomSource(seed: 99)
    let centres = (0..<12).map { _ in (0..<dimension).map { _ in 3 * rng.normal(Float.self) } }
    var local = RandomSource(seed: seed)
    var m = Matrix<Float>(rows: rows, columns: dimension)
    var labels: [Int] = []
    for i in 0..<rows {
      let c = local.index(below: 12)
      labels.append(c)
      for j in 0..<dimension { m[i, j] = centres[c][j] + local.normal(Float.self) }
    }
    let path = ScratchSpace.path(name + ".npy")
    try NPY.write(m, to: path)
    try NPY.write(integers: labels, to: (path as NSString).deletingPathExtension + ".labels.npy")
    return path
  }

  @Test("the index life cycle from the command line, and every refusal by name")
  func lifeCycle() throws {
    let base = try Self.files("index-base", rows: 2000, seed: 1), more = try Self.files("index-more", rows: 500, seed: 2)
    let queries = try Self.files("index-queries", rows: 100, seed: 3)
    let folder = ScratchSpace.path("ivf-index")
    let build = try dml(["index", "build", "--embeddings", base, "--kind", "ivf:nlist=16", "--metric", "cosine", "--output", folder])
    #expect(build.status == 0 && build.stdout.contains("2000 vectors of dimension 16"), "\(build.stderr)")
    // The output is never replaced without --force, and is checked before any work.
    let again = try dml(["index", "build", "--embeddings", base, "--kind", "ivf:nlist=16", "--output", folder])
    #expect(again.status == 64 && again.stderr.contains("exists: choose another folder, or --force"))
    let info = try dml(["index", "info", "--index", folder])
    #expect(info.stdout.contains("kind ivf:nlist=16 (faiss, faiss \"IVF16,Flat\"), metric cosine") && info.stdout.contains("2000 vectors of dimension 16, with labels"))
    let add = try dml(["index", "add", "--index", folder, "--embeddings", more])
    #expect(add.status == 0 && add.stdout.contains("2500 in all"), "\(add.stderr)")
    // An index without labels takes embeddings whose labels file lies beside them.
    let unlabelled = ScratchSpace.path("flat-unlabelled")
    let (shape, values) = try NPY.read(base)
    let bare = ScratchSpace.path("index-bare.npy")
    try NPY.write(Matrix(rows: shape[0], columns: shape[1], elements: values), to: bare)
    #expect(try dml(["index", "build", "--embeddings", bare, "--kind", "flat", "--output", unlabelled + "/"]).status == 0)
    let grow = try dml(["index", "add", "--index", unlabelled, "--embeddings", more])
    #expect(grow.status == 0 && grow.stdout.contains("2500 in all"), "\(grow.stderr)")
    let search = try dml(["index", "search", "--index", folder, "--queries", queries, "-k", "5", "--nprobe", "16", "--limit", "3"])
    let rows = search.stdout.split(separator: "\n")
    #expect(search.status == 0 && rows.first == "query,rank,id,label,score" && rows.count == 1 + 3 * 5, "\(search.stderr)")
    // Ids continue after the base's: an added item can be found.
    let tune = try dml(["index", "tune", "--index", folder, "--queries", queries, "--embeddings", base, "--target", "0.9", "--save"])
    #expect(tune.status == 64 && tune.stderr.contains("its ids are not the index's"))
    let whole = ScratchSpace.path("index-whole.npy")
    let (s1, v1) = try NPY.read(base), (s2, v2) = try NPY.read(more)
    try NPY.write(Matrix(rows: s1[0] + s2[0], columns: s1[1], elements: v1 + v2), to: whole)
    let tuned = try dml(["index", "tune", "--index", folder, "--queries", queries, "--embeddings", whole, "--target", "0.9", "--save"])
    #expect(tuned.status == 0 && tuned.stdout.hasPrefix("parameter,value,recall_at_10,queries_per_second\nnprobe,1,"), "\(tuned.stderr)")
    #expect(try dml(["index", "info", "--index", folder]).stdout.contains("tuned search parameters: nprobe "))

    // Refusals: a dimension mismatch, an unknown kind, a factory string faiss cannot parse, a
    // damaged index file.
    let wide = try Self.files("index-wide", rows: 10, seed: 4, dimension: 8)
    let mismatch = try dml(["index", "add", "--index", folder, "--embeddings", wide])
    #expect(mismatch.status == 1 && mismatch.stderr.contains("the vectors have dimension 8; the index holds dimension 16"))
    let unknown = try dml(["index", "build", "--embeddings", base, "--kind", "ivf:lists=4", "--output", ScratchSpace.path("x")])
    #expect(unknown.status == 64 && unknown.stderr.contains("--kind ivf:lists=4: index kind ivf:lists=4: unknown key 'lists'"))
    let factory = try dml(["index", "build", "--embeddings", base, "--kind", "IVF16,Bogus", "--output", ScratchSpace.path("y")])
    #expect(factory.status == 1 && factory.stderr.contains("faiss, factory string \"IVF16,Bogus\": "))
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: folder + "/index.faiss"))
    let damaged = try dml(["index", "search", "--index", folder, "--queries", queries])
    #expect(damaged.status == 1 && damaged.stderr.contains("faiss, \(folder)/index.faiss: "))
  }

  @Test("evaluate --index reports the approximate index's metrics beside the exact ones; faiss's flat index equals the exact")
  func evaluateWithIndex() throws {
    let ck = temporaryFolder("index-evaluate")
    let trained = try dml(CommandTests.trainArguments(syntheticCSV(), epochs: 1, checkpoint: ck))
    #expect(trained.status == 0, "\(trained.stderr)")
    let flat = try dml(["evaluate", "--checkpoint", ck, "--data", syntheticCSV(), "--test-classes", "4-5", "--index", "faiss-flat", "--json"])
    #expect(flat.status == 0, "\(flat.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(flat.stdout.utf8)) as! [String: Any]
    let index = object["index"] as! [String: Any]
    #expect(index["map_at_r"] as? Double == object["map_at_r"] as? Double && index["recall_at_1"] as? Double == object["recall_at_1"] as? Double)
    let bad = try dml(["evaluate", "--checkpoint", ck, "--data", syntheticCSV(), "--test-classes", "4-5", "--index", "hnsw:m=0"])
    #expect(bad.status == 64 && bad.stderr.contains("--index hnsw:m=0: index kind hnsw:m=0: 'm=0' is not key=positive integer"))

    // dml search with an index folder: the checkpoint's embeddings of the test classes, indexed
    // with the checkpoint recorded; the queries are embedded by the same checkpoint.
    let embeddings = ScratchSpace.path("index-search-embeddings.npy")
    let embed = try dml(["embed", "--checkpoint", ck, "--data", syntheticCSV(), "--test-classes", "4-5", "--output", embeddings])
    #expect(embed.status == 0, "\(embed.stderr)")
    let folder = ScratchSpace.path("index-search-folder")
    let build = try dml(["index", "build", "--embeddings", embeddings, "--kind", "faiss-flat", "--output", folder, "--checkpoint", ck])
    #expect(build.status == 0, "\(build.stderr)")
    let search = try dml(["search", "--checkpoint", ck, "--data", syntheticCSV(), "--test-classes", "4-5", "--index", folder, "--k", "3", "--limit", "2"])
    #expect(search.status == 0 && search.stdout.hasPrefix("query,rank,id,label,score\n0,1,0,") && search.stderr.contains("Recall@1 "), "\(search.stderr)")
    // Queries embedded by another model are refused.
    let raw = try dml(["search", "--data", syntheticCSV(), "--test-classes", "4-5", "--index", folder])
    #expect(raw.status == 64 && raw.stderr.contains("holds embeddings of parameters crc32") && raw.stderr.contains("the queries would be embedded by raw features"))
  }
}
