import ArgumentParser
import Foundation
import MetricLearning

/// The `dml` command tree.
public struct DML: ParsableCommand {
  /// The command name `dml`, its abstract and its subcommands.
  public static let configuration = CommandConfiguration(
    commandName: "dml",
    abstract: "Deep metric learning: train, evaluate and use embedding networks.",
    discussion: """
      --plugin PATH (repeatable, before or after the subcommand) loads a plugin, a shared library of \
      losses and miners built against dml_plugin.h, before the command runs; DML_PLUGINS holds \
      more paths, separated by ':'. Their components appear in `dml list` and in every flag.
      """,
    version: DML.version,
    subcommands: [
      Train.self, Tune.self, Evaluate.self, Embed.self, Search.self, Verify.self, Dedup.self, FewShot.self, Plot.self, List.self,
      IndexCommand.self, CheckPlugin.self, CheckDistributed.self, ExportImages.self, ExportWeights.self,
    ])

  /// Creates the root command, which has no options of its own and dispatches to a subcommand.
  public init() {}

  /// The tool's version (`dml --version`), also written into every JSON log.
  public static let version = "0.9.0"

  /// Parses the command line and runs the subcommand. Errors found while it runs print one line,
  /// `Error: …`, without a usage text, and exit with a consistent status: 64 (`EX_USAGE`) for a
  /// bad option or hyperparameter value, 1 for data and runtime errors. Errors in parsing itself
  /// (an unknown option, a missing value) print the usage as ArgumentParser does, with status 64.
  public static func main() {
    main(Array(CommandLine.arguments.dropFirst()))
  }

  /// Runs the command line `arguments` (without the program name), after loading the plugins
  /// that `--plugin` options and `DML_PLUGINS` name.
  public static func main(_ arguments: [String]) {
    var arguments = arguments
    do {
      let split = try PluginOptions.split(arguments, environment: ProcessInfo.processInfo.environment)
      arguments = split.arguments
      try PluginOptions.load(split.plugins)
    } catch let error as ValidationError {
      fail(error.message, status: 64)
    } catch {
      fail("\(error)", status: 1)
    }
    let command: any ParsableCommand
    do { command = try parseAsRoot(arguments) } catch { exit(withError: error) }
    var running = command
    do {
      try running.run()
      Ranks.mpi?.finish()
    } catch let error as ValidationError {
      fail(error.message, status: 64)
    } catch let error as SpecificationError {
      fail(error.description, status: 64)
    } catch let code as ExitCode {
      Foundation.exit(code.rawValue)
    } catch {
      // Help and version requests reach here as errors of ArgumentParser's own: printed as it prints them.
      if exitCode(for: error).isSuccess { exit(withError: error) }
      fail(message(for: error), status: 1)
    }
  }

  static func fail(_ message: String, status: Int32) -> Never {
    // Under mpirun, an error stops every rank (the others would wait for this one).
    if let group = Ranks.mpi, group.size > 1 { group.abort("Error: \(message)", status: status) }
    warn("Error: \(message)")
    Foundation.exit(status)
  }
}

/// Writes a line to standard error (on rank 0 only, under mpirun).
func warn(_ text: String) {
  guard Ranks.rank == 0 else { return }
  FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// The ranks of a command started by mpirun.
enum Ranks {
  /// The MPI group, once a command started it.
  nonisolated(unsafe) static var mpi: MPIGroup?
  /// This process's rank (0 without MPI).
  static var rank: Int { mpi?.rank ?? 0 }
  /// The number of ranks (1 without MPI).
  static var size: Int { mpi?.size ?? 1 }

  /// Starts MPI; ranks other than 0 write nothing to standard output (rank 0 logs for all).
  static func start(timeout: Double) throws -> MPIGroup {
    let group: MPIGroup
    do { group = try MPIGroup.start(timeout: timeout) } catch { throw RuntimeError("\(error)") }
    mpi = group
    if group.rank > 0 {
      let null = open("/dev/null", O_WRONLY)
      if null >= 0 { dup2(null, STDOUT_FILENO) }
    }
    return group
  }
}

/// An error of a run itself (not of a flag's value): printed as `Error: …`, exit status 1.
struct RuntimeError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// One JSON object on a line. A value JSON cannot hold (NaN or an infinity) is written as a
/// string ("nan", "inf", "-inf"), so that a log line is never lost to it.
func jsonLine(_ object: [String: Any]) -> String {
  func clean(_ value: Any) -> Any {
    switch value {
    case let d as Double where !d.isFinite: return d.isNaN ? "nan" : (d > 0 ? "inf" : "-inf")
    case let f as Float where !f.isFinite: return f.isNaN ? "nan" : (f > 0 ? "inf" : "-inf")
    case let dictionary as [String: Any]: return dictionary.mapValues(clean)
    case let array as [Any]: return array.map(clean)
    default: return value
    }
  }
  guard let data = try? JSONSerialization.data(withJSONObject: clean(object), options: [.sortedKeys]) else {
    return #"{"event":"error","message":"a log record could not be written as JSON"}"#
  }
  return String(decoding: data, as: UTF8.self)
}

func metricsRow(_ name: String, _ m: RetrievalMetrics) -> String {
  func f(_ v: Double) -> String { String(format: "%.4f", v) }
  return name.padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + [m.precisionAt1, m.rPrecision, m.mapAtR].map(f).joined(separator: "   ")
}

struct List: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List every registered network, loss, miner, batch sampler, optimizer and schedule with its hyperparameters.")

  func run() throws {
    func show(_ title: String, _ items: [(String, String, [HyperparameterSpec])]) {
      print("\(title):")
      for (name, summary, hyper) in items {
        print("  \(name) — \(summary)")
        for h in hyper { print("      \(h.name)=\(h.defaultValue)  \(h.help)" + (h.range.map { " (\($0))" } ?? "")) }
      }
    }
    func entries<P, C>(_ r: ComponentRegistry<P, C>) -> [(String, String, [HyperparameterSpec])] {
      r.factories.map { ($0.name, $0.summary, $0.hyperparameters) }
    }
    show("networks (--network)", entries(CommandRegistry.networks))
    let registry = CommandRegistry.losses
    show("losses (--loss, repeatable; weight=W scales one)", registry.names.map { n in
      let f = registry.factories[n]!
      return (n, f.summary, f.hyperparameters)
    })
    print("  every loss also takes:")
    for h in LossRegistry.sharedKeys { print("      \(h.name)=\(h.defaultValue)  \(h.help)" + (h.range.map { " (\($0))" } ?? "")) }
    print("      (anchor_block: " + registry.names.filter { registry.factories[$0]!.supportsAnchorBlocks }.joined(separator: ", ") + ")")
    print("regularizers (a loss's embedding_regularizer= or weight_regularizer=):")
    for name in Regularizer.names { print("  \(name) — \(Regularizer.summary(of: name))") }
    show("miners (--miner)", entries(CommandRegistry.miners))
    show("batch samplers (--batch)", entries(CommandRegistry.batches))
    show("optimizers (--optimizer)", entries(CommandRegistry.optimizers))
    show("schedules (--schedule)", entries(CommandRegistry.schedules))
    show("augmentations (--augment, several joined by commas)", entries(CommandRegistry.augmentations))
  }
}
