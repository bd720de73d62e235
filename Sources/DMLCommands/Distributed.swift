import ArgumentParser
import Foundation
import MetricLearning

/// `dml check-distributed`: under `mpirun`, trains a few steps data-parallel and on one process
/// side by side, and prints how far apart they are.
struct CheckDistributed: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check-distributed",
    abstract: "Check that data-parallel training on these ranks gives the one-process loss, gradients and parameters.",
    discussion: """
      Run it as `mpirun -np N dml check-distributed`. Every rank trains a small MLP on seeded data
      for --steps steps with its shard of each global batch, and again alone with the whole batch,
      and compares the loss, the embedding gradient each row received, the parameter gradients and
      the parameters after the last step. Tolerance: 1e-5 relative in Float, 1e-12 in Double.
      Exit status 1 if any comparison fails.
      """)

  @Option(help: "A check to run (repeatable; default: all of \(DistributedCheck.cases.joined(separator: ", "))).")
  var check: [String] = []
  @Option(help: "f32, f64 or both.") var scalar = "both"
  @Option(help: "Steps of each check.") var steps = 5
  @Option(help: "The global batch (8 per class, at most 128).") var batch = 128
  @Option(help: "Seconds a rank may wait for the others in one exchange.") var mpiTimeout: Double = 60
  @Option(help: .hidden) var mistake: String?

  func validate() throws {
    for c in check where !DistributedCheck.cases.contains(c) {
      throw ValidationError("--check \(c): no such check; the checks: \(DistributedCheck.cases.joined(separator: ", "))")
    }
    guard ["f32", "f64", "both"].contains(scalar) else { throw ValidationError("--scalar \(scalar) must be f32, f64 or both") }
    guard (1...1000).contains(steps) else { throw ValidationError("--steps \(steps) must lie in 1...1000") }
    guard batch >= 8, batch <= 128, batch % 8 == 0 else { throw ValidationError("--batch \(batch) must be a multiple of 8 in 8...128") }
    guard mpiTimeout > 0 && mpiTimeout.isFinite else { throw ValidationError("--mpi-timeout \(mpiTimeout) must be a positive number of seconds") }
    if let mistake, DistributedMistake(rawValue: mistake) == nil {
      throw ValidationError("--mistake \(mistake): one of \(DistributedMistake.allCases.map(\.rawValue).joined(separator: ", "))")
    }
  }

  func run() throws {
    let group: any Collective = MPIGroup.launchedByMPI ? try Ranks.start(timeout: mpiTimeout) : SingleProcess()
    guard batch >= group.size else { throw ValidationError("--batch \(batch) is smaller than the \(group.size) ranks") }
    let names = check.isEmpty ? DistributedCheck.cases : check
    let wrong = mistake.flatMap(DistributedMistake.init(rawValue:))
    if group.size == 1 { warn("note: one rank: start it with mpirun -np N to compare N ranks with one process") }
    print("\(group.size) ranks, global batch \(batch), \(steps) steps; largest relative difference from one process" + (wrong.map { " (with the deliberate mistake \($0.rawValue))" } ?? ""))
    print("check".padding(toLength: 28, withPad: " ", startingAt: 0) + "type  worst quantity                   difference  tolerance")
    var failed = 0
    for name in names {
      for type in scalar == "both" ? ["f32", "f64"] : [scalar] {
        let c =
          type == "f32"
          ? try DistributedCheck.run(name, as: Float.self, group: group, steps: steps, batch: batch, mistake: wrong)
          : try DistributedCheck.run(name, as: Double.self, group: group, steps: steps, batch: batch, mistake: wrong)
        if !c.passed { failed += 1 }
        print(
          name.padding(toLength: 28, withPad: " ", startingAt: 0) + type + "   " + c.worst.name.padding(toLength: 33, withPad: " ", startingAt: 0)
            + String(format: "%.2e    %.0e  ", c.worst.relativeDifference, c.tolerance) + (c.passed ? "pass" : "FAIL"))
        fflush(nil)
      }
    }
    print(failed == 0 ? "every check passed" : "\(failed) checks FAILED")
    if failed > 0 {
      Ranks.mpi?.finish()
      throw ExitCode(1)
    }
  }
}
