import Foundation

/// Wall-clock helpers. Every figure is a median over trials, each trial long enough to swamp the
/// clock's resolution.
enum Timing {
  static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

  /// The median seconds per call of `body`, over `trials` trials of enough calls to last about
  /// `trialSeconds`.
  static func median(trials: Int = 7, trialSeconds: Double = 0.05, _ body: () -> Void) -> Double {
    body()
    let t0 = now()
    body()
    let once = max(1e-9, Double(now() - t0) / 1e9)
    let reps = max(1, Int(trialSeconds / once))
    var times: [Double] = []
    for _ in 0..<trials {
      let t = now()
      for _ in 0..<reps { body() }
      times.append(Double(now() - t) / 1e9 / Double(reps))
    }
    times.sort()
    return times[times.count / 2]
  }
}

extension Double {
  func fixed(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }
}

func pad(_ s: String, _ width: Int) -> String {
  s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
