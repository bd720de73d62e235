import DMLData
import DMLTesting
import Foundation
import Testing

/// `dml` on image folders: a tinted Fashion-MNIST folder written by `dml export-images`.
@Suite("dml on folders of images")
struct ImageCommandTests {
  /// Five classes of 16 tinted images (JPEG), upscaled to 32×32; removed by the caller.
  static func folder() throws -> String {
    let root = ScratchSpace.path("shop-\(UUID().uuidString)")
    let r = try dml(["export-images", "--classes", "0-4", "--per-class", "16", "--tint", "--size", "32", "--output", root])
    try #require(r.status == 0, "\(r.stderr)")
    return root
  }

  static let common = ["--image-size", "24", "--network", "convnet-s", "--loss", "contrastive", "--miner", "pair-margin",
    "--batch", "m-per-class:m=4,size=12", "--epochs", "1", "--log", "json", "--log-every", "0"]

  @Test("train on a folder, embed it with the paths beside the rows, search it with a query image, deduplicate it")
  func workflow() throws {
    let root = try Self.folder()
    let model = root + "-model"
    defer { for p in [root, model, root + "-e.npy", root + "-e.labels.npy", root + "-e.paths.csv", root + "-hits.csv"] { try? FileManager.default.removeItem(atPath: p) } }
    let classes = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
    #expect(classes.count == 5 && classes[0] == "0-t-shirt-top")
    let t = try dml(["train", "--data", "folder:\(root)", "--train-classes", "0-2", "--test-classes", "3-4", "--checkpoint", model] + Self.common)
    #expect(t.status == 0, "\(t.stderr)")
    #expect(t.stdout.contains("\"input_wait_seconds\"") && t.stdout.contains("\"event\":\"test\""), "\(t.stdout)")
    let e = try dml(["embed", "--checkpoint", model, "--output", root + "-e.npy"])
    #expect(e.status == 0, "\(e.stderr)")
    let paths = try String(contentsOfFile: root + "-e.paths.csv", encoding: .utf8).split(separator: "\n")
    #expect(paths.first == "row,path,label,class" && paths.count == 33 && paths[1].contains("/3-dress/"), "\(paths.prefix(2))")
    let query = "\(root)/4-coat/" + (try FileManager.default.contentsOfDirectory(atPath: "\(root)/4-coat").sorted()[0])
    let s = try dml(["search", "--checkpoint", model, "--queries", query, "--k", "3", "--output", root + "-hits.csv"])
    #expect(s.status == 0, "\(s.stderr)")
    let hits = s.stdout.split(separator: "\n")
    #expect(hits.first == "query,rank,id,label,distance,path" && hits.count == 4, "\(s.stdout)")
    #expect(hits[1].hasPrefix(query + ",1,") && hits[1].hasSuffix(query), "the query image is its own nearest: \(hits[1])")
    #expect(try String(contentsOfFile: root + "-hits.csv", encoding: .utf8).split(separator: "\n").count == 4)
    // A copy of an image, re-encoded: deduplication groups it with its original, by path.
    let copy = "\(root)/3-dress/copy.png"
    try Data(try ImageFile.png(try ImageFile.read(query))).write(to: URL(fileURLWithPath: copy))
    let d = try dml(["dedup", "--data", "folder:\(root)", "--image-size", "24", "--test-classes", "3-4", "--threshold", "0.999"])
    #expect(d.status == 0, "\(d.stderr)")
    let lines = d.stdout.split(separator: "\n")
    #expect(lines.first == "group,id,path")
    let group = lines.first { $0.hasSuffix(copy) }.map { $0.split(separator: ",")[0] }
    #expect(group != nil && lines.contains { $0.hasSuffix(query) && $0.hasPrefix(group! + ",") }, "\(d.stdout)")
  }

  @Test("a broken image stops the run with its path, or with --on-bad-image skip is skipped and counted")
  func badImages() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let bad = "\(root)/1-trouser/broken.jpg"
    let good = try Data(contentsOf: URL(fileURLWithPath: "\(root)/1-trouser/" + (try FileManager.default.contentsOfDirectory(atPath: "\(root)/1-trouser").sorted()[0])))
    try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: bad))
    try Data().write(to: URL(fileURLWithPath: "\(root)/2-pullover/empty.png"))
    let stop = try dml(["train", "--data", "folder:\(root)", "--train-classes", "0-2", "--test-classes", "3-4"] + Self.common)
    #expect(stop.status == 1 && (stop.stderr.contains(bad) || stop.stderr.contains("empty.png")), "\(stop.stderr)")
    let skip = try dml(["train", "--data", "folder:\(root)", "--train-classes", "0-2", "--test-classes", "3-4", "--on-bad-image", "skip"] + Self.common)
    #expect(skip.status == 0, "\(skip.stderr)")
    #expect(skip.stdout.contains("\"skipped_images\":2") && skip.stdout.contains("\"event\":\"skipped_images\""), "\(skip.stdout)")
    #expect(skip.stderr.contains("2 unreadable training images were skipped"), "\(skip.stderr)")
    #expect(skip.stderr.contains("skipped an unreadable image") && skip.stderr.contains("broken.jpg: ") && skip.stderr.contains("JPEG"), "\(skip.stderr)")
  }

  @Test("a CSV list of paths and labels; flags checked before any work")
  func listAndFlags() throws {
    let root = try Self.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    var csv = "path,label\n"
    for c in try FileManager.default.contentsOfDirectory(atPath: root).sorted() {
      for f in try FileManager.default.contentsOfDirectory(atPath: "\(root)/\(c)").sorted() { csv += "\(c)/\(f),\(c)\n" }
    }
    try csv.write(toFile: "\(root)/list.csv", atomically: true, encoding: .utf8)
    let r = try dml(["evaluate", "--checkpoint", "none", "--data", "list:\(root)/list.csv"])
    #expect(r.status != 0)
    let t = try dml(["train", "--data", "list:\(root)/list.csv", "--train-classes", "0-2", "--test-classes", "3-4", "--channels", "1"] + Self.common)
    #expect(t.status == 0, "\(t.stderr)")
    for (flags, message) in [
      (["--channels", "2"], "--channels 2 must be 1 or 3"), (["--image-size", "0"], "--image-size 0 must lie in"),
      (["--on-bad-image", "ignore"], "--on-bad-image ignore must be stop or skip"), (["--transforms", "blur"], "unknown step 'blur'"),
      (["--workers", "0"], "--workers 0 must lie in"),
    ] {
      let bad = try dml(["train", "--data", "folder:\(root)"] + flags)
      #expect(bad.status == 64 && bad.stderr.contains(message), "\(flags): \(bad.stderr)")
    }
    let missing = try dml(["train", "--data", "folder:\(root)/nowhere"])
    #expect(missing.status != 0 && missing.stderr.contains("no such folder"), "\(missing.stderr)")
  }
}

@Suite("dml on separate image folders, tuning and unreadable batches")
struct ImageFolderSplitTests {
  @Test("a separate test folder and a query folder number their own classes: compared by name")
  func classesByName() throws {
    let train = try ImageCommandTests.folder()
    let test = train + "-test", queries = train + "-queries", model = train + "-model"
    defer { for p in [train, test, queries, model] { try? FileManager.default.removeItem(atPath: p) } }
    let fm = FileManager.default
    for p in [test, queries] { try fm.createDirectory(atPath: p, withIntermediateDirectories: true) }
    try fm.moveItem(atPath: "\(train)/3-dress", toPath: "\(test)/3-dress")
    try fm.moveItem(atPath: "\(train)/4-coat", toPath: "\(test)/4-coat")
    try fm.copyItem(atPath: "\(test)/4-coat", toPath: "\(queries)/4-coat")
    // The test folder's labels 0 and 1 are classes 3-dress and 4-coat, unseen in training.
    let t = try dml(["train", "--data", "folder:\(train)", "--test-data", "folder:\(test)", "--checkpoint", model] + ImageCommandTests.common)
    #expect(t.status == 0, "\(t.stderr)")
    // The query folder's only class (its label 0) is the test folder's 4-coat: each image finds itself.
    let s = try dml(["search", "--checkpoint", model, "--queries", "folder:\(queries)", "--k", "1"])
    #expect(s.status == 0 && s.stderr.contains("Recall@1 1.0"), "\(s.stderr)")
    // A training class in the test folder is named in the refusal.
    try fm.copyItem(atPath: "\(train)/2-pullover", toPath: "\(test)/2-pullover")
    let overlap = try dml(["train", "--data", "folder:\(train)", "--test-data", "folder:\(test)"] + ImageCommandTests.common)
    #expect(overlap.status != 0 && overlap.stderr.contains("2 (2-pullover)"), "\(overlap.stderr)")
  }

  @Test("when every training image is unreadable and skipped, the run stops with a reason instead of training on nothing")
  func unreadableBatches() throws {
    let root = try ImageCommandTests.folder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    for c in ["0-t-shirt-top", "1-trouser", "2-pullover"] {
      for f in try FileManager.default.contentsOfDirectory(atPath: "\(root)/\(c)") { try Data("x".utf8).write(to: URL(fileURLWithPath: "\(root)/\(c)/\(f)")) }
    }
    let r = try dml(["train", "--data", "folder:\(root)", "--train-classes", "0-2", "--test-classes", "3-4", "--on-bad-image", "skip"] + ImageCommandTests.common)
    #expect(r.status == 1 && r.stderr.contains("no batch of epoch 1 held two readable training images"), "\(r.stderr)")
    #expect(r.stderr.contains("left out: 0 readable images"), "\(r.stderr)")
  }

  @Test("tune on a folder trains each trial on the files with random transforms, and suggests a command with the image flags")
  func tune() throws {
    let root = try ImageCommandTests.folder()
    let output = root + "-tune"
    defer { for p in [root, output] { try? FileManager.default.removeItem(atPath: p) } }
    let r = try dml([
      "tune", "--data", "folder:\(root)", "--train-classes", "0-3", "--validation-classes", "3", "--folds", "1", "--image-size", "24",
      "--network", "convnet-s", "--loss", "contrastive", "--miner", "pair-margin", "--batch", "m-per-class:m=4,size=12", "--trials", "1",
      "--epochs", "1", "--output", output,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("--image-size 24 --channels 3"), "\(r.stdout)")
    let signature = try String(contentsOfFile: "\(output)/search.json", encoding: .utf8)
    #expect(signature.contains("random-resized-crop:size=24"), "\(signature)")
  }
}

@Suite("dml dedup on planted edited copies of photos")
struct PlantedCopyTests {
  @Test("scenes with planted copies (JPEG quality 50, 75% size, 5% crop, 20% brighter): calibrated, precision and recall reported and high")
  func plantedCopies() throws {
    let root = ScratchSpace.path("scenes-\(UUID().uuidString)")
    defer { for p in [root, root + "-groups.csv"] { try? FileManager.default.removeItem(atPath: p) } }
    let e = try dml(["export-images", "--scenes", "300", "--size", "64", "--output", root])
    try #require(e.status == 0, "\(e.stderr)")
    #expect(e.stdout.contains("wrote 300 scenes"), "\(e.stdout)")
    func scores(_ text: String) -> (Double, Double)? {
      guard let r = text.range(of: "pair precision "), let q = text.range(of: ", recall ", range: r.upperBound..<text.endIndex) else { return nil }
      let precision = Double(text[r.upperBound..<q.lowerBound])
      let recall = Double(text[q.upperBound...].prefix { $0 != " " })
      guard let precision, let recall else { return nil }
      return (precision, recall)
    }
    let d = try dml([
      "dedup", "--data", "folder:\(root)", "--image-size", "32", "--train-classes", "0-4", "--test-classes", "5-9", "--plant", "20",
      "--calibrate", "--output", root + "-groups.csv",
    ])
    #expect(d.status == 0, "\(d.stderr)")
    #expect(d.stderr.contains("calibrated on") && d.stderr.contains("planted 80 edited copies of 20 test images"), "\(d.stderr)")
    let (precision, recall) = try #require(scores(d.stderr), "\(d.stderr)")
    #expect(precision >= 0.95 && recall >= 0.95, "\(d.stderr)")
    let groups = try String(contentsOfFile: root + "-groups.csv", encoding: .utf8)
    #expect(groups.contains(",planted-0,reencoded copy of ") && groups.contains("brightened copy of "), "\(groups.prefix(300))")
    // The score can fail: a loose threshold chains distinct scenes together.
    let loose = try dml(["dedup", "--data", "folder:\(root)", "--image-size", "32", "--test-classes", "5-9", "--plant", "20", "--threshold", "0.5"])
    let (p2, _) = try #require(scores(loose.stderr), "\(loose.stderr)")
    #expect(p2 < 0.5, "\(loose.stderr)")
    // Other data: planted edited copies need image files.
    let npy = try dml(["dedup", "--test-classes", "5-9", "--plant", "5", "--data-dir", "/nonexistent"])
    #expect(npy.status != 0)
  }
}
