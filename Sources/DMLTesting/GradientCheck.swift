@_exported import DMLCore

/// The outcome of a finite-difference check: the largest disagreement between the analytic and
/// the numerical derivative, in the mixed measure `|a − n| / max(1, |a|, |n|)`.
public struct GradientCheckReport: Sendable, CustomStringConvertible {
  /// The largest disagreement found.
  public var maxError: Double
  /// Where it was found, for the failure message.
  public var worst: String
  /// How many derivatives were compared.
  public var checked: Int
  /// The largest analytic derivative seen: a check over derivatives that are all zero proves
  /// nothing, so tests also require this to be positive.
  public var maxMagnitude: Double

  /// One line with the largest error, where it was found, the derivatives compared and the
  /// largest analytic derivative.
  public var description: String {
    "max error \(maxError) at \(worst) over \(checked) derivatives (largest |d| \(maxMagnitude))"
  }

  mutating func record(analytic: Double, numeric: Double, at place: @autoclosure () -> String) {
    let err = Swift.abs(analytic - numeric) / Swift.max(1, Swift.abs(analytic), Swift.abs(numeric))
    checked += 1
    maxMagnitude = Swift.max(maxMagnitude, Swift.abs(analytic))
    if err > maxError || !err.isFinite {
      maxError = err.isFinite ? err : .infinity
      worst = place()
    }
  }

  init() {
    maxError = 0
    worst = "-"
    checked = 0
    maxMagnitude = 0
  }
}

/// Finite-difference checks for layers and networks, in Double.
public enum GradientCheck {
  /// Checks a layer's backward pass against central differences of `⟨G, layer(x)⟩`, for every
  /// input element and every parameter element, with a random upstream gradient `G`.
  ///
  /// Each evaluation runs on a fresh copy of `layer`, so stateful layers (dropout masks, batch
  /// statistics) see the same state every time.
  public static func layer<L: Layer>(
    _ layer: L, input: Matrix<Double>, mode: ForwardMode = .training, step h: Double = 1e-6,
    seed: UInt64 = 1, compute: ComputeContext = .automatic
  ) -> GradientCheckReport where L.Scalar == Double {
    var rng = RandomSource(seed: seed)
    var probe = layer
    let y = probe(input, mode: mode)
    var upstream = Matrix<Double>(rows: y.rows, columns: y.columns)
    upstream.apply { _ in rng.normal() }

    func objective(_ l: L, _ x: Matrix<Double>) -> Double {
      var copy = l
      return copy(x, mode: mode, compute: compute).dot(upstream)
    }

    var analytic = layer
    var out = Matrix<Double>()
    analytic.forward(input, into: &out, mode: mode, compute: compute)
    var inputGradient = Matrix<Double>()
    analytic.backward(
      input: input, output: out, outputGradient: upstream, inputGradient: &inputGradient,
      propagate: true, compute: compute)

    var report = GradientCheckReport()
    var x = input
    for i in 0..<input.rows {
      for j in 0..<input.columns {
        let v = x[i, j]
        x[i, j] = v + h
        let plus = objective(layer, x)
        x[i, j] = v - h
        let minus = objective(layer, x)
        x[i, j] = v
        report.record(
          analytic: inputGradient[i, j], numeric: (plus - minus) / (2 * h),
          at: "input[\(i), \(j)]")
      }
    }
    let analyticParameters = analytic.parameters
    for (p, parameter) in analyticParameters.enumerated() where parameter.trainable {
      for e in 0..<parameter.count {
        func perturbed(_ delta: Double) -> Double {
          var l = layer
          var index = 0
          l.forEachParameter { _, q in
            if index == p {
              q.value.withUnsafeMutableBufferPointer { $0[e] += delta }
            }
            index += 1
          }
          return objective(l, input)
        }
        let numeric = (perturbed(h) - perturbed(-h)) / (2 * h)
        let a = parameter.gradient.withUnsafeBufferPointer { $0[e] }
        report.record(analytic: a, numeric: numeric, at: "\(parameter.name)#\(p)[\(e)]")
      }
    }
    return report
  }

  /// Checks a whole network along `directions` random directions in parameter space: the
  /// directional derivative of `⟨G, net(x)⟩` from backward against a central difference.
  public static func network<N: EmbeddingNetwork>(
    _ network: N, input: Matrix<Double>, directions: Int = 4, mode: ForwardMode = .training,
    step h: Double = 1e-6, seed: UInt64 = 2, compute: ComputeContext = .automatic
  ) -> GradientCheckReport where N.Scalar == Double {
    var rng = RandomSource(seed: seed)
    var probe = network
    probe.forward(input, mode: mode, compute: compute)
    var upstream = probe.embeddings
    upstream.apply { _ in rng.normal() }

    var analytic = network
    analytic.forward(input, mode: mode, compute: compute)
    analytic.backward(upstream, compute: compute)
    let trainable = analytic.parameters.map(\.trainable)
    let gradients = analytic.parameters.map(\.gradient)

    var report = GradientCheckReport()
    for d in 0..<directions {
      let direction = zip(gradients, trainable).map { g, isTrainable in
        var v = g
        v.apply { _ in isTrainable ? rng.normal() : 0 }
        return v
      }
      var directional = 0.0
      for (g, v) in zip(gradients, direction) { directional += g.dot(v) }
      func objective(_ t: Double) -> Double {
        var net = network
        var index = 0
        net.forEachParameter { _, q in
          q.value.add(direction[index], scaledBy: t)
          index += 1
        }
        net.forward(input, mode: mode, compute: compute)
        return net.embeddings.dot(upstream)
      }
      report.record(
        analytic: directional, numeric: (objective(h) - objective(-h)) / (2 * h),
        at: "direction \(d)")
    }
    return report
  }
}
