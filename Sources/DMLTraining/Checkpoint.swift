import CZlib
import Foundation

/// Checkpoints: a directory holding `parameters.safetensors` (every learned tensor by name,
/// readable by Python's `safetensors`), `optimizer.safetensors` (the optimizer's state by
/// parameter name), `checkpoint.json` (the typed manifest, `CheckpointManifest`) and whatever the
/// run adds (the command line's `state.json`: configuration, progress, history).
///
/// Each checkpoint is written in full into a fresh directory `step-NNNNNNNN`, its files fsynced;
/// then a symbolic link `latest` is replaced atomically (`rename`) to point at it, and older ones
/// are removed. A crash at any moment leaves `latest` pointing at a complete checkpoint.
public enum Checkpoint {
  /// Writes named Float tensors (F32), and integer ones (I64: ids and labels, exact at any size),
  /// in the safetensors format.
  public static func safetensors(
    _ tensors: [(name: String, shape: [Int], values: [Float])], integers: [(name: String, shape: [Int], values: [Int])] = [],
    metadata: [String: String] = [:]
  ) -> Data {
    var header: [String: Any] = [:]
    var offset = 0
    for t in tensors {
      header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]]
      offset += 4 * t.values.count
    }
    for t in integers {
      header[t.name] = ["dtype": "I64", "shape": t.shape, "data_offsets": [offset, offset + 8 * t.values.count]]
      offset += 8 * t.values.count
    }
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while json.count % 8 != 0 { json.append(0x20) }
    var data = Data()
    var length = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
    data.append(json)
    for t in tensors { t.values.withUnsafeBytes { data.append(contentsOf: $0) } }
    for t in integers { t.values.map { Int64($0).littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) } }
    return data
  }

  /// The integer (I64) tensors and the metadata of a safetensors file written with `integers:`.
  public static func readSafetensorsExtras(_ path: String) throws -> (integers: [String: (shape: [Int], values: [Int])], metadata: [String: String]) {
    let (header, body) = try safetensorsHeader(path)
    var integers: [String: (shape: [Int], values: [Int])] = [:]
    for (name, entry) in header where name != "__metadata__" {
      guard let e = entry as? [String: Any], e["dtype"] as? String == "I64" else { continue }
      guard let shape = e["shape"] as? [Int], let offsets = e["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0,
        offsets[0] <= offsets[1], offsets[1] <= body.count, let count = checkedElementCount(shape), offsets[1] - offsets[0] == 8 * count
      else { throw TrainingError("\(path): tensor \(name) is malformed") }
      let values = body.subdata(in: offsets[0]..<offsets[1]).withUnsafeBytes { raw in
        (0..<count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
      }
      integers[name] = (shape, values)
    }
    return (integers, header["__metadata__"] as? [String: String] ?? [:])
  }

  /// The parsed JSON header of a safetensors file and the bytes after it.
  static func safetensorsHeader(_ path: String) throws -> (header: [String: Any], body: Data) {
    guard let data = FileManager.default.contents(atPath: path), data.count >= 8 else {
      throw TrainingError("\(path): missing or truncated")
    }
    let header = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    guard header > 0, header <= UInt64(data.count - 8) else { throw TrainingError("\(path): not a safetensors file (header length \(header))") }
    let length = Int(header)
    guard 8 + length <= data.count,
      let parsed = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any]
    else { throw TrainingError("\(path): not a safetensors file") }
    return (parsed, data.subdata(in: (8 + length)..<data.count))
  }

  /// Reads the F32 tensors of a safetensors file (I64 ones: `readSafetensorsExtras`).
  public static func readSafetensors(_ path: String) throws -> [String: (shape: [Int], values: [Float])] {
    let (header, body) = try safetensorsHeader(path)
    var result: [String: (shape: [Int], values: [Float])] = [:]
    for (name, entry) in header where name != "__metadata__" {
      if (entry as? [String: Any])?["dtype"] as? String == "I64" { continue }
      guard let e = entry as? [String: Any], e["dtype"] as? String == "F32", let shape = e["shape"] as? [Int],
        let offsets = e["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1],
        offsets[1] <= body.count, let count = checkedElementCount(shape), offsets[1] - offsets[0] == 4 * count
      else { throw TrainingError("\(path): tensor \(name) is malformed") }
      let values = body.subdata(in: offsets[0]..<offsets[1]).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      result[name] = (shape, values)
    }
    return result
  }

  /// Writes `files` as a new checkpoint under `directory` and points `latest` at it.
  public static func save(_ files: [String: Data], in directory: String, step: Int, keep: Int = 2) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let name = String(format: "step-%08d", step)
    let final = "\(directory)/\(name)"
    let staging = "\(directory)/.\(name).partial"
    try? fm.removeItem(atPath: staging)
    try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
    // The manifest of CRC-32s and sizes, which `verifiedLatest` checks before a load.
    var manifest: [String: Any] = [:]
    for (file, data) in files { manifest[file] = ["crc32": String(format: "%08x", CRC32.checksum(data)), "bytes": data.count] }
    var all = files
    all[manifestName] = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys, .prettyPrinted])
    for (file, data) in all {
      let path = "\(staging)/\(file)"
      guard fm.createFile(atPath: path, contents: data) else { throw TrainingError("\(path): cannot write") }
      let fd = open(path, O_RDONLY)
      if fd >= 0 { fsync(fd); close(fd) }
    }
    try? fm.removeItem(atPath: final)
    guard rename(staging, final) == 0 else { throw TrainingError("\(final): cannot rename into place") }
    let link = "\(directory)/.latest.tmp"
    try? fm.removeItem(atPath: link)
    try fm.createSymbolicLink(atPath: link, withDestinationPath: name)
    guard rename(link, "\(directory)/latest") == 0 else { throw TrainingError("\(directory)/latest: cannot update") }
    let dirfd = open(directory, O_RDONLY)
    if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    // Remove older checkpoints beyond `keep`.
    let steps = (try? fm.contentsOfDirectory(atPath: directory))?.filter { $0.hasPrefix("step-") }.sorted() ?? []
    for old in steps.dropLast(keep) { try? fm.removeItem(atPath: "\(directory)/\(old)") }
  }

  /// The name of a checkpoint's manifest of checksums.
  public static let manifestName = "checksums.json"

  /// Checks every file of the checkpoint directory `path` against its manifest; throws an error
  /// naming the file at fault.
  public static func verify(_ path: String) throws {
    guard let data = FileManager.default.contents(atPath: "\(path)/\(manifestName)"),
      let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: [String: Any]], !manifest.isEmpty
    else { throw TrainingError("\(path): no readable \(manifestName); the checkpoint is incomplete or was altered") }
    for (file, entry) in manifest.sorted(by: { $0.key < $1.key }) {
      guard let content = FileManager.default.contents(atPath: "\(path)/\(file)") else { throw TrainingError("\(path)/\(file): missing") }
      guard content.count == entry["bytes"] as? Int else {
        throw TrainingError("\(path)/\(file): \(content.count) bytes, the manifest says \(entry["bytes"] ?? "?")")
      }
      guard String(format: "%08x", CRC32.checksum(content)) == entry["crc32"] as? String else {
        throw TrainingError("\(path)/\(file): checksum mismatch (corrupted)")
      }
    }
  }

  /// The newest checkpoint under `directory` that passes its checksums, and the errors of newer
  /// ones that did not (so the caller can report them). `latest` is tried first, then the
  /// `step-*` directories from the newest.
  public static func verifiedLatest(in directory: String) throws -> (directory: String, rejected: [String]) {
    var rejected: [String] = []
    var candidates: [String] = []
    if let first = try? latest(in: directory) { candidates.append(first) }
    let steps = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasPrefix("step-") }.sorted().reversed() ?? []
    for s in steps where !candidates.contains("\(directory)/\(s)") { candidates.append("\(directory)/\(s)") }
    guard !candidates.isEmpty else { throw TrainingError("\(directory): no checkpoint (no 'latest' link)") }
    for c in candidates {
      if c == directory { return (c, rejected) }  // a bare folder of files (written by hand): nothing to verify
      // Checkpoints from before manifests existed load unverified; the caller is told.
      if !FileManager.default.fileExists(atPath: "\(c)/\(manifestName)") && FileManager.default.fileExists(atPath: "\(c)/state.json")
        && (try? FileManager.default.contentsOfDirectory(atPath: c))?.contains(where: { $0.hasSuffix(".safetensors") }) == true
        && c == candidates.first
      {
        return (c, rejected + ["\(c): written without \(manifestName) (an older version); loaded unverified"])
      }
      do {
        try verify(c)
        return (c, rejected)
      } catch { rejected.append("\(error)") }
    }
    throw TrainingError("\(directory): no checkpoint passes its checksums: " + rejected.joined(separator: "; "))
  }

  /// The directory of the latest complete checkpoint under `directory`.
  public static func latest(in directory: String) throws -> String {
    let link = "\(directory)/latest"
    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else {
      if FileManager.default.fileExists(atPath: "\(directory)/state.json") { return directory }
      throw TrainingError("\(directory): no checkpoint (no 'latest' link)")
    }
    return target.hasPrefix("/") ? target : "\(directory)/\(target)"
  }
}

extension ParameterContainer where Scalar == Float {
  /// Every parameter as a named tensor, under the scope `prefix` (`network` gives
  /// `network.0.weight`), for safetensors.
  public func namedTensors(prefix: String) -> [(name: String, shape: [Int], values: [Float])] {
    namedParameters(prefix: [prefix]).map { ($0.name, $0.parameter.shape, $0.parameter.value.elements) }
  }

  /// Loads every parameter from `tensors` by its full name under the scope `prefix`, checking each
  /// name and shape; tensors under `prefix` that no parameter has are refused too. Errors name
  /// `path`, the parameter, the shape it needs and the shape found.
  public mutating func load(
    _ tensors: [String: (shape: [Int], values: [Float])], prefix: String, from path: String
  ) throws {
    var failure: String?
    var used = Set<String>()
    forEachParameter(prefix: [prefix]) { name, p in
      guard failure == nil else { return }
      guard let t = tensors[name] else {
        failure = "\(path): no tensor \(name) (the model's \(name) has shape \(p.shape))"
        return
      }
      guard t.shape == p.shape, t.values.count == p.count else {
        failure = "\(path): \(name) has shape \(t.shape), the model needs \(p.shape)"
        return
      }
      used.insert(name)
      p.value = Matrix(rows: p.value.rows, columns: p.value.columns, elements: t.values)
    }
    if let failure { throw TrainingError(failure) }
    let extra = tensors.keys.filter { $0.hasPrefix(prefix + ".") && !used.contains($0) }.sorted()
    if !extra.isEmpty {
      throw TrainingError("\(path): \(extra.joined(separator: ", ")) \(extra.count == 1 ? "is" : "are") not parameters of this model")
    }
  }
}

/// CRC-32 (the polynomial of zlib, PNG and gzip), computed by zlib.
public enum CRC32 {
  /// The CRC-32 of `data`.
  public static func checksum(_ data: Data) -> UInt32 {
    data.withUnsafeBytes { UInt32(crc32(0, $0.bindMemory(to: UInt8.self).baseAddress, uInt($0.count))) }
  }
}
