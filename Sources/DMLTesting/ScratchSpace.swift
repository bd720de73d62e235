import Foundation

/// Temporary files for tests: every path lies under one folder of this process, which is removed
/// when the process exits, so a test run leaves nothing behind even when a test fails midway.
public enum ScratchSpace {
  /// This process's scratch folder (created on first use).
  public static var root: String { scratchRoot }

  /// A path under the scratch folder, with nothing at it yet (a previous file or folder of that
  /// name is removed).
  public static func path(_ name: String) -> String {
    let p = "\(scratchRoot)/\(name)"
    try? FileManager.default.removeItem(atPath: p)
    return p
  }
}

private let scratchRoot: String = {
  let p = FileManager.default.temporaryDirectory.appendingPathComponent("dml-tests-\(getpid())").path
  try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
  atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
  return p
}()
