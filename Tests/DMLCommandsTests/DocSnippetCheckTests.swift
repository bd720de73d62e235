import Foundation
import Testing

/// Every Swift snippet of the README and of the DocC articles is compiled: each paragraph of it
/// (its lines up to a blank line, import lines aside) appears, line for line with indentation
/// ignored, in a Swift file that the build compiles (the library, its tests, or the example
/// package, which `make test` builds). A manifest snippet is evaluated by `swift package
/// dump-package` in a scratch folder.
@Suite("Documentation snippets compile")
struct DocSnippetCheckTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

  static func files(under folder: String, ending suffix: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: "\(root)/\(folder)") else { return [] }
    return e.compactMap { $0 as? String }.filter { $0.hasSuffix(suffix) && !$0.contains(".build") }.map { "\(root)/\(folder)/\($0)" }
  }

  /// The ```swift blocks of a Markdown file.
  static func snippets(_ path: String) throws -> [String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var out: [String] = [], current: [String]?
    for line in text.components(separatedBy: "\n") {
      if current == nil, line == "```swift" {
        current = []
      } else if current != nil, line == "```" {
        out.append(current!.joined(separator: "\n"))
        current = nil
      } else {
        current?.append(line)
      }
    }
    return out
  }

  static func trimmed(_ lines: some Sequence<Substring>) -> [String] { lines.map { $0.trimmingCharacters(in: .whitespaces) } }

  /// Whether `lines` occur consecutively in `source`.
  static func contains(_ source: [String], _ lines: [String]) -> Bool {
    guard lines.count <= source.count else { return false }
    for i in 0...(source.count - lines.count) where source[i] == lines[0] && Array(source[i..<(i + lines.count)]) == lines { return true }
    return false
  }

  @Test("every snippet paragraph is found in compiled code")
  func snippetsAreCompiled() throws {
    let documents = ["\(Self.root)/README.md"] + Self.files(under: "Sources/MetricLearning/MetricLearning.docc", ending: ".md")
    let compiled = (Self.files(under: "Sources", ending: ".swift") + Self.files(under: "Tests", ending: ".swift")
      + Self.files(under: "Examples", ending: ".swift")).filter { !$0.hasSuffix("Package.swift") }
    let sources = try compiled.map { Self.trimmed(try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)) }
    var checked = 0
    for document in documents {
      for snippet in try Self.snippets(document) where !snippet.hasPrefix("// swift-tools-version") {
        let all: [String] = Self.trimmed(snippet.split(separator: "\n", omittingEmptySubsequences: false))
        for paragraph in all.split(separator: "") {
          let lines = paragraph.filter { !$0.hasPrefix("import ") }
          guard !lines.isEmpty else { continue }
          let found = sources.contains { Self.contains($0, lines) }
          #expect(found, "\(document): this snippet paragraph is in no compiled file:\n\(lines.joined(separator: "\n"))")
          checked += 1
        }
      }
    }
    #expect(checked >= 15)
  }

  @Test("a manifest snippet is a valid manifest")
  func manifests() throws {
    var checked = 0
    for document in Self.files(under: "Sources/MetricLearning/MetricLearning.docc", ending: ".md") {
      for snippet in try Self.snippets(document) where snippet.hasPrefix("// swift-tools-version") {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dml-manifest-\(getpid())-\(checked)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try (snippet + "\n").write(toFile: "\(folder)/Package.swift", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["swift", "package", "--package-path", folder, "dump-package"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && text.contains("\"name\" : \"my-research\""), "\(document): \(text)")
        checked += 1
      }
    }
    #expect(checked >= 1)
  }
}
