// `swift package --allow-writing-to-package-directory new-loss NAME`: a thin command plugin that
// runs the `dml-new-loss` tool on this package's directory.
import Foundation
import PackagePlugin

@main
struct NewLoss: CommandPlugin {
  func performCommand(context: PluginContext, arguments: [String]) async throws {
    let tool = try context.tool(named: "dml-new-loss")
    let process = Process()
    process.executableURL = tool.url
    process.arguments = [context.package.directoryURL.path] + arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      Diagnostics.error("dml-new-loss failed (exit \(process.terminationStatus)); nothing is half-written: see its message above")
      throw NewLossError.failed
    }
  }
}

enum NewLossError: Error { case failed }
