import DMLCore
import DMLData
import DMLLosses
import DMLNetworks
import DMLPlugins
import DMLRun
import DMLSamplers
import DMLTesting
import DMLTraining
import Foundation
import Testing

/// Plugins compiled from C at test time, with the system's `cc`, against the package's
/// dml_plugin.h: the fixtures beside this file and the C example of Examples/Plugins.
enum Plugins {
  /// The package's root folder.
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
  static let lock = NSLock()
  nonisolated(unsafe) static var built: [String: String] = [:]

  /// The shared library built from `source` (relative to the package root) with `-D` for each
  /// of `defines`; built once per process.
  static func build(_ source: String, defines: [String] = []) throws -> String {
    let key = ([source] + defines).joined(separator: " ")
    return try lock.withLock {
      if let path = built[key] { return path }
      let name = ((source as NSString).lastPathComponent as NSString).deletingPathExtension + defines.map { "-" + $0 }.joined()
      let output = ScratchSpace.path(name + ".so")
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
      process.arguments =
        ["-shared", "-fPIC", "-O1", "-I", root + "/Sources/DMLPluginABI/include"] + defines.map { "-D" + $0 }
        + [root + "/" + source, "-o", output, "-lm"]
      try process.run()
      process.waitUntilExit()
      guard process.terminationStatus == 0 else { throw PluginError("cc failed on \(source) \(defines)") }
      built[key] = output
      return output
    }
  }

  static func good() throws -> PluginLibrary { try PluginLibrary.load(build("Tests/DMLPluginsTests/Fixtures/good.c")) }
  static func squaredHinge() throws -> PluginLibrary { try PluginLibrary.load(build("Examples/Plugins/squared-hinge/squared_hinge.c")) }
  static func bad(_ define: String) throws -> String { try build("Tests/DMLPluginsTests/Fixtures/bad.c", defines: [define]) }
}

/// Gaussian clusters, `classes` of `perClass` rows in 12 dimensions.
func clusters(classes: Int, perClass: Int, seed: UInt64) -> Dataset {
  var rng = RandomSource(seed: seed)
  let centres = (0..<classes).map { _ in (0..<12).map { _ in rng.normal(Float.self) } }
  var x: [Float] = [], labels: [Int] = []
  for c in 0..<classes {
    for _ in 0..<perClass {
      x += centres[c].map { $0 + 0.6 * rng.normal(Float.self) }
      labels.append(c)
    }
  }
  return Dataset(features: Matrix(rows: labels.count, columns: 12, elements: x), labels: labels)
}

@Suite("Plugins: losses and miners from shared libraries, through dml_plugin.h")
struct PluginTests {
  @Test("the C example (squared hinge with a learned boundary) passes every conformance check, through the ABI in Float and Double")
  func exampleConforms() throws {
    let plugin = try Plugins.squaredHinge()
    #expect(plugin.components.map(\.name) == ["squared-hinge"])
    for (component, checks) in plugin.conformance() {
      #expect(checks.count >= 10)
      for check in checks { #expect(check.passed, "\(component.name): \(check.name): \(check.failures)") }
    }
    // Declared learned state, named as the plugin names it; none when beta is not learned.
    let context = LossContext(classes: 4, embeddingDimension: 6)
    let learned = try PluginLoss<Double>(plugin.components[0], context: context)
    #expect(learned.namedParameters().map(\.name) == ["beta"] && learned.tensors[0].value[0, 0] == 1.2)
    let fixed = try PluginLoss<Double>(plugin.components[0], "squared-hinge:learn_beta=false,beta=0.9", context: context)
    #expect(fixed.parameters.isEmpty && fixed.distance == .euclidean && fixed.acceptsCrossBatchMemory)
  }

  @Test("learned references (their gradient through the distance) and a tensor of the plugin's own both conform and are named")
  func referencesAndOwnTensors() throws {
    let plugin = try Plugins.good()
    let results = plugin.conformance()
    #expect(results.map(\.component.name) == ["proxy-softmax", "closest-negatives"])
    for (component, checks) in results {
      for check in checks { #expect(check.passed, "\(component.name): \(check.name): \(check.failures)") }
    }
    let loss = try PluginLoss<Float>(plugin.components[0], context: LossContext(classes: 5, embeddingDimension: 8, seed: 2))
    let parameters = loss.namedParameters()
    #expect(parameters.map(\.name) == ["class_weights", "bias"])
    #expect(parameters[0].parameter.shape == [5, 8] && parameters[0].parameter.group == 1 && parameters[1].parameter.shape == [1, 5])
    #expect(loss.references == parameters[0].parameter.value && !loss.acceptsCrossBatchMemory && loss.distance == .cosine)
    // An error of the plugin's own in create names the plugin and the loss.
    #expect {
      _ = try PluginLoss<Float>(plugin.components[0], context: LossContext(classes: 0, embeddingDimension: 8))
    } throws: { "\($0)".contains("good.so: loss 'proxy-softmax': no classes to make weights for") }
  }

  @Test("a plugin's failure in compute, and a label it cannot handle, give a NaN value, a zero gradient and the plugin's message")
  func computeFailure() throws {
    let plugin = try Plugins.good()
    var evaluator = LossEvaluator(try PluginLoss<Double>(plugin.components[0], context: LossContext(classes: 3, embeddingDimension: 6)))
    let batch = LossConformance.Batch(rows: 8, dimension: 6, classes: 4)  // label 3 has no class weight
    let value = evaluator.evaluate(batch.embeddings, labels: batch.labels, tuples: nil)
    #expect(value.total.isNaN && evaluator.embeddingGradient.maxAbs() == 0)
    #expect(evaluator.failure == "plugin good.so: loss 'proxy-softmax': label 3 outside the 3 classes")
    // The next evaluation that succeeds clears it.
    _ = evaluator.evaluate(batch.embeddings, labels: batch.labels.map { $0 % 3 }, tuples: nil)
    #expect(evaluator.failure == nil)
  }

  @Test(
    "a bad plugin is refused at load with an error naming the library and the symbol or field",
    arguments: [
      ("NO_ENTRY_POINT", "no entry point 'dml_plugin_init'"),
      ("WRONG_ABI_VERSION", "loss descriptor #0 has abi_version 99; this dml reads version 1"),
      ("UNKNOWN_HYPERPARAMETER_TYPE", "loss 'bad-loss': hyperparameter 'margin': field type is 9, an unknown hyperparameter type"),
      ("BAD_DEFAULT", "loss 'bad-loss': a default value does not fit its declaration: margin=wide is not a finite number"),
      ("NULL_COMPUTE", "loss 'bad-loss': field compute is NULL"),
      ("DUPLICATE_NAME", "two losses are named 'bad-loss' (field name of descriptors #0 and #1)"),
      ("INIT_FAILS", "dml_plugin_init returned 1, not DML_PLUGIN_OK"),
    ])
  func refusedAtLoad(define: String, message: String) throws {
    let path = try Plugins.bad(define)
    #expect {
      _ = try PluginLibrary.load(path)
    } throws: { error in
      "\(error)".contains("plugin bad-\(define).so: " + message)
    }
  }

  @Test("a component named like a registered one is refused, and nothing of that plugin is registered")
  func duplicateOfBuiltIn() throws {
    let plugin = try PluginLibrary.load(try Plugins.bad("BUILTIN_NAME"))
    var losses = LossRegistry.standard, miners = MinerRegistry.standard
    let before = (losses.names, miners.names)
    #expect {
      try plugin.register(losses: &losses, miners: &miners)
    } throws: { "\($0)".contains("plugin bad-BUILTIN_NAME.so: a loss named 'contrastive' is already registered (field name)") }
    #expect(losses.names == before.0 && miners.names == before.1)
    // Another plugin's name is taken the same way.
    let good = try Plugins.good()
    try good.register(losses: &losses, miners: &miners)
    #expect { try good.register(losses: &losses, miners: &miners) } throws: { "\($0)".contains("'proxy-softmax' is already registered") }
  }

  @Test("missing files and files that are not shared libraries are refused by path")
  func notALibrary() throws {
    #expect { _ = try PluginLibrary.load("/nonexistent/plugin.so") } throws: { "\($0)" == "plugin /nonexistent/plugin.so: no such file" }
    let text = ScratchSpace.path("not-a-library.so")
    try "hello".write(toFile: text, atomically: true, encoding: .utf8)
    #expect { _ = try PluginLibrary.load(text) } throws: { "\($0)".contains("not-a-library.so: cannot load it as a shared library") }
  }

  /// A trainer of an MLP with the loss and the miner that `loss` and `miner` name, from the
  /// standard registries plus the good fixture's and the C example's components.
  func trainer(loss: String, miner: String, plugins: [PluginLibrary]) throws
    -> Trainer<MLP<Float>, AnyEmbeddingLoss<Float>, AnyTupleSampler<Float>, Adam<Float>>
  {
    var losses = LossRegistry.standard, miners = MinerRegistry.standard
    for p in plugins { try p.register(losses: &losses, miners: &miners) }
    let (l, _) = try losses.make(loss, context: LossContext(classes: 6, embeddingDimension: 8, seed: 1))
    let s = try miners.make(miner, context: MinerContext(embeddingDimension: 8, seed: 1))
    return Trainer(
      network: MLP<Float>.mlp(inputFeatures: 12, hidden: [16], embeddingDimension: 8, seed: 3), loss: l, sampler: s,
      optimizer: Adam<Float>(learningRate: 1e-2))
  }

  @Test("a failure in a plugin's compute or invalid tuples from its miner stop training with the plugin's message, parameters untouched")
  func failuresStopTraining() throws {
    let failing = try PluginLibrary.load(try Plugins.bad("FAILS_AT_RUN_TIME"))
    let data = clusters(classes: 6, perClass: 4, seed: 1)
    var t = try trainer(loss: "bad-loss", miner: "none", plugins: [failing])
    let before = t.network.parameters.map(\.value)
    #expect {
      _ = try t.train(data.features, labels: data.labels)
    } throws: { "\($0)" == "step 1: plugin bad-FAILS_AT_RUN_TIME.so: loss 'bad-loss': a deliberate failure in compute; parameters left as they were" }
    #expect(t.network.parameters.map(\.value) == before && t.step == 0)
    var m = try trainer(loss: "contrastive", miner: "bad-miner", plugins: [failing])
    #expect {
      _ = try m.train(data.features, labels: data.labels)
    } throws: {
      "\($0)".hasPrefix("step 1: plugin bad-FAILS_AT_RUN_TIME.so: miner 'bad-miner': mine emitted an invalid positive pair (0, 0) for 24 rows")
    }
  }

  @Test("through the run API: a plugin loss's learned tensor trains, is checkpointed by name, and a resumed run equals the uninterrupted one bitwise")
  func runAPIResume() throws {
    let plugins = [try Plugins.squaredHinge(), try Plugins.good()]
    let training = clusters(classes: 6, perClass: 16, seed: 1)
    func run(epochs: Int, folder: String, resume: Bool) throws
      -> TrainingRun<MLP<Float>, AnyEmbeddingLoss<Float>, AnyTupleSampler<Float>, Adam<Float>>
    {
      try TrainingRun(
        trainer: trainer(loss: "squared-hinge:alpha=0.1", miner: "closest-negatives", plugins: plugins), training: training,
        batches: MPerClassSampler(labels: training.labels, m: 4, batchSize: 24, seed: 6),
        settings: RunSettings(epochs: epochs, seed: 5, checkpoint: CheckpointSettings(folder: folder, resume: resume)))
    }
    func state(_ r: TrainingRun<MLP<Float>, AnyEmbeddingLoss<Float>, AnyTupleSampler<Float>, Adam<Float>>) -> [String: [Float]] {
      var t = r.trainer
      var out: [String: [Float]] = [:]
      t.network.forEachParameter(prefix: ["network"]) { out[$0] = $1.value.elements }
      t.loss.forEachParameter(prefix: ["loss"]) { out[$0] = $1.value.elements }
      return out
    }
    let whole = ScratchSpace.path("plugin-whole"), parted = ScratchSpace.path("plugin-parted")
    var a = try run(epochs: 2, folder: whole, resume: false)
    _ = try a.fit()
    let beta = state(a)["loss.beta"]
    #expect(beta != nil && beta != [1.2])
    var b = try run(epochs: 1, folder: parted, resume: false)
    _ = try b.fit()
    var c = try run(epochs: 2, folder: parted, resume: true)
    _ = try c.fit()
    #expect(state(a) == state(c) && state(a)["loss.beta"] != state(b)["loss.beta"])
    let saved = try String(contentsOfFile: parted + "/latest/checkpoint.json", encoding: .utf8)
    #expect(saved.contains("loss.beta"))
  }

  @Test("the command line: --plugin and DML_PLUGINS load plugins for list, train and check-plugin; bad plugins fail by name")
  func commandLine() throws {
    let good = try Plugins.build("Tests/DMLPluginsTests/Fixtures/good.c")
    let hinge = try Plugins.build("Examples/Plugins/squared-hinge/squared_hinge.c")
    let list = try dml(["--plugin", good, "list"], environment: ["DML_PLUGINS": hinge])
    #expect(list.status == 0 && list.stdout.contains("  proxy-softmax — softmax over cosine scores") && list.stdout.contains("  squared-hinge — "))
    #expect(list.stdout.contains("  closest-negatives — every positive pair and each anchor's closest negative (plugin good.so)"))
    // The same file twice is loaded once.
    #expect(try dml(["list", "--plugin=\(good)", "--plugin", good]).status == 0)
    let check = try dml(["check-plugin", good])
    #expect(check.status == 0 && check.stdout.contains("19 of 19 checks passed"), "\(check.stdout)")
    // Checking a plugin that DML_PLUGINS already loads is not a clash.
    let loadedTwice = try dml(["check-plugin", good], environment: ["DML_PLUGINS": good])
    #expect(loadedTwice.status == 0, "\(loadedTwice.stderr)")
    let csv = ScratchSpace.path("plugin-data.csv")
    let data = clusters(classes: 6, perClass: 20, seed: 4)
    var text = "label," + (0..<12).map { "f\($0)" }.joined(separator: ",") + "\n"
    for i in 0..<data.labels.count { text += "\(data.labels[i])," + data.features.row(i).map { "\($0)" }.joined(separator: ",") + "\n" }
    try text.write(toFile: csv, atomically: true, encoding: .utf8)
    let train = try dml([
      "--plugin", hinge, "--plugin", good, "train", "--data", csv, "--train-classes", "0-3", "--test-classes", "4-5", "--network", "mlp:hidden=16,embedding=8",
      "--loss", "squared-hinge:alpha=0.1", "--miner", "closest-negatives", "--batch", "m-per-class:m=4,size=32", "--epochs", "1", "--log", "json", "--log-every", "0",
    ])
    #expect(train.status == 0 && train.stdout.contains("\"event\":\"test\""), "\(train.stderr)")
    let bad = try dml(["--plugin", try Plugins.bad("WRONG_ABI_VERSION"), "list"])
    #expect(bad.status == 1 && bad.stderr.contains("Error: plugin bad-WRONG_ABI_VERSION.so: loss descriptor #0 has abi_version 99"))
    let builtin = try dml(["check-plugin", try Plugins.bad("BUILTIN_NAME")])
    #expect(builtin.status == 1 && builtin.stderr.contains("a loss named 'contrastive' is already registered"))
    let missing = try dml(["list", "--plugin"])
    #expect(missing.status == 64 && missing.stderr.contains("--plugin needs the path of a shared library"))
    let failing = try dml(["check-plugin", try Plugins.bad("FAILS_AT_RUN_TIME")])
    #expect(failing.status == 1 && failing.stdout.contains("FAIL") && failing.stdout.contains("a deliberate failure in compute"), "\(failing.stdout)")
  }
}

/// Runs the built `dml` binary (next to this test bundle) and returns its exit code and output.
func dml(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
  let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dml")
  let process = Process()
  process.executableURL = binary
  process.arguments = arguments
  process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
  let out = Pipe(), err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
