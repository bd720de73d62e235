import ArgumentParser
import Foundation
import MetricLearning

/// Plugins named on the command line (`--plugin PATH`, repeatable, anywhere before a lone `--`)
/// and in `DML_PLUGINS` (paths separated by ':'), loaded before the command line is parsed so
/// that their components are in every registry, `dml list` and every `name:key=value` flag.
enum PluginOptions {
  /// The arguments without the `--plugin` options, and the plugin paths in load order: those of
  /// `DML_PLUGINS` first, then the options'.
  static func split(_ arguments: [String], environment: [String: String]) throws -> (arguments: [String], plugins: [String]) {
    var rest: [String] = [], plugins: [String] = []
    plugins += (environment["DML_PLUGINS"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    var i = 0
    while i < arguments.count {
      let a = arguments[i]
      if a == "--" {
        rest += arguments[i...]
        break
      }
      if a == "--plugin" {
        guard i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") else { throw ValidationError("--plugin needs the path of a shared library") }
        plugins.append(arguments[i + 1])
        i += 2
        continue
      }
      if a.hasPrefix("--plugin=") {
        let path = String(a.dropFirst("--plugin=".count))
        guard !path.isEmpty else { throw ValidationError("--plugin needs the path of a shared library") }
        plugins.append(path)
      } else {
        rest.append(a)
      }
      i += 1
    }
    return (rest, plugins)
  }

  /// Loads each plugin and adds its components to `CommandRegistry`; an error names the library
  /// and the symbol or field at fault, and nothing of that plugin is registered.
  static func load(_ paths: [String]) throws {
    // The same file named twice (by the environment and by an option, say) is loaded once.
    var seen = Set<String>()
    for path in paths {
      let resolved = (path as NSString).resolvingSymlinksInPath
      guard seen.insert((resolved as NSString).standardizingPath).inserted else { continue }
      let plugin = try PluginLibrary.load(path)
      var losses = CommandRegistry.losses, miners = CommandRegistry.miners
      try plugin.register(losses: &losses, miners: &miners)
      CommandRegistry.losses = losses
      CommandRegistry.miners = miners
    }
  }
}

struct CheckPlugin: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check-plugin",
    abstract: "Run the library's conformance suite on every loss and miner of a plugin and print a pass/fail table.",
    discussion: """
      Each component is built with its default hyperparameters. Losses are checked for gradients \
      against finite differences (in Double), empty tuples, a single class, determinism, Float \
      against Double, and learned tensors that move in a step and round-trip through their names; \
      miners for valid tuples, determinism, one-sided batches and bookkeeping. Exits 1 if any \
      check fails.
      """)

  @Argument(help: "The plugin, a shared library exporting dml_plugin_init.")
  var path: String

  @Flag(help: "Print every failure in full below the table.")
  var verbose = false

  func run() throws {
    let plugin: PluginLibrary
    do {
      plugin = try PluginLibrary.load(path)
      // A name the built-in registries hold would be refused when loading it with --plugin (the
      // plugin itself may already be loaded, from DML_PLUGINS or --plugin: not a clash).
      var losses = LossRegistry.standard, miners = MinerRegistry.standard
      try plugin.register(losses: &losses, miners: &miners)
    } catch let e as PluginError { throw RuntimeError(e.description) }
    print("plugin \(plugin.fileName): \(plugin.components.count) component(s)")
    let results = plugin.conformance()
    let width = max(24, results.flatMap { $0.checks.map(\.name.count) }.max() ?? 0)
    var failed = 0
    for (component, checks) in results {
      print("\n\(component.kind) \(component.name)")
      for check in checks {
        print("  " + check.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (check.passed ? "pass" : "FAIL"))
        if !check.passed {
          failed += 1
          for f in verbose ? check.failures : Array(check.failures.prefix(1)) { print("      \(f)") }
        }
      }
    }
    let total = results.reduce(0) { $0 + $1.checks.count }
    print("\n\(total - failed) of \(total) checks passed")
    if failed > 0 { throw ExitCode(1) }
  }
}
