import DMLData
import DMLTesting
import Foundation
import Testing

func temporaryPath(_ name: String) -> String {
  ScratchSpace.path("data-" + name)
}

func write(_ text: String, _ name: String) -> String {
  let p = temporaryPath(name)
  _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
  return p
}

@Suite("Data loaders")
struct DataTests {
  @Test("Fashion-MNIST from Debian's dataset-fashion-mnist, gunzipped and normalised")
  func fashionMNIST() throws {
    let train = try FashionMNIST.load(train: true)
    #expect(train.features.rows == 60000 && train.features.columns == 784)
    #expect(train.imageShape?.height == 28 && train.classes == Array(0...9))
    let test = try FashionMNIST.load(train: false, normalized: false)
    #expect(test.features.rows == 10000)
    #expect(test.features.maxAbs() <= 1 && test.features.maxAbs() > 0.99)
    // The benchmarks' normalisation gives roughly zero mean and unit variance.
    let mean = Double(train.features.sum()) / Double(train.features.count)
    #expect(abs(mean) < 0.01)
    #expect(train.labels.filter { $0 == 3 }.count == 6000)
  }

  @Test("IDX errors name the file and the fault")
  func idxErrors() {
    #expect(throws: DataError("/nonexistent.gz: no such file")) { try IDX.read("/nonexistent.gz") }
    let bad = write("not idx", "bad.idx")
    #expect(throws: DataError("\(bad): not an IDX file (bad magic)")) { try IDX.read(bad) }
    let short = temporaryPath("short.idx")
    _ = FileManager.default.createFile(atPath: short, contents: Data([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    #expect(throws: DataError("\(short): header says [5] = 5 values, file holds 2")) { try IDX.read(short) }
  }

  @Test("CSV with a header, and its errors with line numbers")
  func csv() throws {
    let ok = write("label,a,b\n1,0.5,2\n0,1e-3,-4\n", "ok.csv")
    let d = try CSV.dataset(ok)
    #expect(d.labels == [1, 0] && d.features == Matrix([[0.5, 2], [0.001, -4]]))
    let noHeader = write("2,1,1\n3,4,4\n", "noheader.csv")
    #expect(try CSV.dataset(noHeader).labels == [2, 3])
    for (text, message) in [
      ("1,2,3\n4,5\n", ":2: 2 columns, expected 3"),
      ("1,2\nx,3\n", ":2: label 'x' is not an integer"),
      ("1,2\n2,nan\n", ":2: column 2 value 'nan' is not a finite number"),
      ("-1,2\n", ":1: label -1 is negative"),
      ("a,b\n", ": no data rows (only a header line)"),
      ("", ": no data rows"),
      // A malformed first row is an error, not a header skipped in silence.
      ("0,1.5,abc\n1,2,3\n", ":1: column 3 value 'abc' is not a finite number"),
      ("label,a\n0,1,2\n", ":1: the header has 2 columns, the data 3"),
    ] {
      let p = write(text, "bad\(message.count).csv")
      #expect(throws: DataError(p + message)) { try CSV.dataset(p) }
    }
  }

  @Test("CSV from Windows and Excel: CRLF line endings, a UTF-8 byte-order mark, a lone CR")
  func csvLineEndings() throws {
    for (name, text) in [
      ("crlf", "label,a,b\r\n1,0.5,2\r\n0,1e-3,-4\r\n"), ("bom", "\u{FEFF}label,a,b\r\n1,0.5,2\r\n0,1e-3,-4"),
      ("cr", "label,a,b\r1,0.5,2\r0,1e-3,-4\r"), ("lf", "label,a,b\n1,0.5,2\n0,1e-3,-4\n"),
    ] {
      let d = try CSV.dataset(write(text, "\(name).csv"))
      #expect(d.labels == [1, 0] && d.features == Matrix([[0.5, 2], [0.001, -4]]), "\(name)")
      #expect(d.columnNames == ["label", "a", "b"], "\(name)")
    }
    let bad = write("label,a\r\n1,0.5\r\n0,x\r\n", "crlf-bad.csv")
    #expect(throws: DataError(bad + ":3: column 2 value 'x' is not a finite number")) { try CSV.dataset(bad) }
  }

  @Test("NPY round trip and errors")
  func npy() throws {
    let m = Matrix<Float>([[1, 2, 3], [4, 5, 6]])
    let p = temporaryPath("m.npy")
    try NPY.write(m, to: p)
    let (shape, values) = try NPY.read(p)
    #expect(shape == [2, 3] && values == [1, 2, 3, 4, 5, 6])
    let labels = write("0\n1\n", "labels.csv")
    let d = try NPY.dataset(features: p, labels: labels)
    #expect(d.features == m && d.labels == [0, 1])
    let wrong = write("0\n1\n2\n", "labels3.csv")
    #expect(throws: DataError("\(wrong): 3 labels for 2 rows of \(p)")) { try NPY.dataset(features: p, labels: wrong) }
    let garbage = write("garbage", "g.npy")
    #expect(throws: DataError("\(garbage): not an NPY file (bad magic)")) { try NPY.read(garbage) }
  }
}

@Suite("Super-classes from a file (CLASS,SUPER)")
struct SuperClassTests {
  @Test("by class number, or by class name when the data names its classes; super-classes numbered by name; subsets keep them")
  func read() throws {
    var d = Dataset(features: Matrix(rows: 5, columns: 1), labels: [0, 1, 2, 1, 3])
    let file = write("class,super\n# comment\n0,vehicle\n1, animal\n\n2,vehicle\n3,animal\n9,unused\n", "supers.csv")
    let withSupers = try d.withSuperClasses(fromFile: file)
    #expect(withSupers.superLabels == [1, 0, 1, 0, 0])
    #expect(withSupers.subset([4, 0]).superLabels == [0, 1])
    d.classNames = ["car", "cat", "bus", "dog"]
    let named = try d.withSuperClasses(fromFile: write("car,v\ncat,a\nbus,v\ndog,a\n", "named.csv"))
    #expect(named.superLabels == [1, 0, 1, 0, 0])
  }

  @Test("errors name the file and line: a malformed line, a class given twice, a class left out")
  func errors() {
    let d = Dataset(features: Matrix(rows: 3, columns: 1), labels: [0, 1, 2])
    func fails(_ text: String, _ message: String) {
      let file = write(text, "bad-supers.csv")
      do {
        _ = try d.withSuperClasses(fromFile: file)
        Issue.record("accepted \(text)")
      } catch { #expect("\(error)".contains(message), "\(error)") }
    }
    fails("0,a\n1\n2,b\n", "bad-supers.csv: line 2: expected CLASS,SUPER, got '1'")
    fails("0,a\n1,b\n0,b\n2,a\n", "line 3: class 0 was given a super-class on line 1 already")
    fails("0,a\n1,b\n", "class 2 of the data has no super-class")
    fails("0,a,b\n", "line 1: expected CLASS,SUPER")
  }
}

@Suite("Multi-label CSV rows (labels joined by |)")
struct MultiLabelCSVTests {
  @Test("label sets, deduplicated and sorted; labels number the distinct sets; single-label files unchanged")
  func read() throws {
    let d = try CSV.dataset(write("label,a,b\n3|1,0.5,1\n2,1,2\n1|3|3,0,0\n7|2, 1,1\n", "multi.csv"))
    #expect(d.labelSets == [[1, 3], [2], [1, 3], [2, 7]])
    #expect(d.labels == [0, 1, 0, 2])
    #expect(d.subset([3, 1]).labelSets == [[2, 7], [2]])
    let plain = try CSV.dataset(write("1,0.5\n2,1\n", "plain.csv"))
    #expect(plain.labelSets == nil && plain.labels == [1, 2])
  }

  @Test("a bad label in a set names the file, line and label")
  func errors() {
    for (text, message) in [("1|x,0.5\n", "multi-bad.csv:1: label 'x' is not an integer"), ("1,0\n2|-3,0.5\n", "multi-bad.csv:2: label -3 is negative"),
      ("1|,0.5\n", "multi-bad.csv:1: label '' is not an integer")] {
      do {
        _ = try CSV.dataset(write(text, "multi-bad.csv"))
        Issue.record("accepted \(text)")
      } catch { #expect("\(error)".contains(message), "\(error)") }
    }
  }
}
