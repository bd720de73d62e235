// The LossRegistrations build-tool plugin, applied to DMLLosses: generates the list of every loss
// module's registrations from the modules DMLLosses depends on (Package.swift's `lossModules`), so
// that adding a loss is one source file plus one manifest line, with no registry to edit.
//
// A loss module declares its registrations on a type of its own:
//   public enum FooLossRegistration { public static var registrations: [LossFactory] { ... } }
// The plugin finds that type in the module's sources and hands (module, type) pairs to the
// `dml-loss-registrations` tool, which writes the Swift file.
import Foundation
import PackagePlugin

@main
struct LossRegistrations: BuildToolPlugin {
  func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
    var pairs: [String] = []
    for case .target(let dependency) in target.dependencies {
      guard let module = dependency as? SourceModuleTarget else { continue }
      guard let holder = try registrationsHolder(module) else {
        Diagnostics.error("""
          loss module \(module.name) declares no registrations: add \
          `public enum \(module.name)Registration { public static var registrations: [LossFactory] { [LossFactory(YourLoss<Float>.self)] } }`
          """)
        throw LossRegistrationsError.missing(module.name)
      }
      pairs.append("\(module.name):\(holder)")
    }
    let output = context.pluginWorkDirectoryURL.appendingPathComponent("LossRegistrations.swift")
    let inputs = target.dependencies.flatMap { dependency -> [URL] in
      guard case .target(let t) = dependency, let module = t as? SourceModuleTarget else { return [] }
      return module.sourceFiles(withSuffix: "swift").map(\.url)
    }
    return [
      .buildCommand(
        displayName: "Generating the loss registrations of \(target.name) (\(pairs.count) modules)",
        executable: try context.tool(named: "dml-loss-registrations").url,
        arguments: [output.path] + pairs,
        inputFiles: inputs, outputFiles: [output])
    ]
  }

  /// The type that declares `public static var|let registrations` in `module`: the nearest
  /// `public enum|struct NAME` or `extension NAME` above that declaration.
  func registrationsHolder(_ module: SourceModuleTarget) throws -> String? {
    for file in module.sourceFiles(withSuffix: "swift") {
      let lines = try String(contentsOf: file.url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
      for (index, line) in lines.enumerated()
      where line.contains("public static var registrations") || line.contains("public static let registrations") {
        for above in lines[..<index].reversed() {
          let words = above.split(whereSeparator: { $0 == " " || $0 == "{" || $0 == ":" || $0 == "<" })
          if words.count >= 3, words[0] == "public", words[1] == "enum" || words[1] == "struct" { return String(words[2]) }
          if words.count >= 2, words[0] == "extension" { return String(words[1]) }
        }
      }
    }
    return nil
  }
}

enum LossRegistrationsError: Error { case missing(String) }
