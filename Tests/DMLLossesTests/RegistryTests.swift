import DMLLosses
import DMLNetworks
import Foundation
import Testing

@Suite("Loss registry: names, declared hyperparameters, errors")
struct RegistryTests {
  let registry = LossRegistry.standard
  let context = LossContext(classes: 5, embeddingDimension: 8, seed: 1, classCounts: [20, 5, 9, 40, 12])

  @Test("every module registers its losses at startup")
  func names() {
    #expect(registry.names == [
      "angular", "arcface", "center", "circle", "contrastive", "cosface", "decoupled-contrastive", "dynamic-arcface", "dynamic-soft-margin", "fast-ap", "generalized-lifted-structure", "histogram", "instance", "intra-pair-variance", "large-margin-softmax", "lifted-structure", "manifold",
      "margin", "multi-similarity", "nca", "normalized-softmax", "npairs", "ntxent", "p2s-grad", "pnp", "proxy-anchor", "proxy-nca", "ranked-list", "selectively-contrastive-triplet", "smooth-ap", "snr-contrastive", "soft-triple", "softmax", "sphereface", "subcenter-arcface", "supcon", "tcm", "triplet",
      "tuplet-margin", "uniformity", "vicreg",
    ])
    // The command line's memory check reads this flag: it is the loss's own declaration.
    #expect(registry.factories["ntxent"]!.acceptsMemory && !registry.factories["lifted-structure"]!.acceptsMemory)
    for name in registry.names {
      let f = registry.factories[name]!
      #expect(!f.summary.isEmpty)
      #expect(f.hyperparameters.allSatisfy { !$0.help.isEmpty }, "\(name) has undocumented hyperparameters")
    }
  }

  @Test("every loss builds from its name alone and evaluates a batch")
  func buildsAll() throws {
    var rng = RandomSource(seed: 2)
    var x = Matrix<Float>(rows: 10, columns: 8)
    x.apply { _ in rng.normal() }
    let labels = (0..<10).map { $0 % 5 }
    for name in registry.names {
      // The manifold loss draws each of its K meta-classes in every batch: K = 5 for 10 rows.
      var (loss, weight) = try registry.make(name == "manifold" ? "manifold:K=5" : name, context: context)
      #expect(weight == 1)
      let value = loss.evaluate(x, labels: labels, tuples: nil)
      // Uniformity is the log of a mean potential below 1: negative by construction.
      #expect(value.total.isFinite && (name == "uniformity" ? value.total < 0 : value.total > 0), "\(name): \(value)")
      #expect(loss.embeddingGradient.rows == 10 && loss.embeddingGradient.isFinite)
    }
  }

  @Test("hyperparameters from text reach the loss")
  func parsing() throws {
    let values = try HyperparameterValues(parsing: "triplet: margin=0.3, swap=true ,distance=cosine")
    #expect(values.component == "triplet")
    var v = values
    try v.validate(against: TripletMarginLoss<Float>.hyperparameters)
    let t = try TripletMarginLoss<Float>(v, context: context)
    #expect(t.margin == 0.3 && t.swap && !t.smoothLoss && t.distance == .cosine && t.reduction == .nonZeroMean)
    let (_, weight) = try registry.make("center:weight=0.01,alpha=0.3", context: context)
    #expect(weight == 0.01)
    let anchor = try ProxyAnchorLoss<Float>.make("classes=7,group=2", context: context)
    #expect(try CenterLoss<Float>.make(context: context).alpha == 0.5)
    #expect(throws: SpecificationError.self) { try CenterLoss<Float>.make("triplet:margin=1", context: context) }
    #expect(anchor.proxies.classes == 7 && anchor.proxies.parameter.group == 2)
  }

  @Test(
    "bad specifications are errors that name the value at fault",
    arguments: [
      ("tripplet", "unknown loss 'tripplet'; known: angular, arcface"),
      ("triplet:margn=0.2", "triplet: unknown hyperparameter 'margn'; known:"),
      ("triplet:margin=abc", "triplet: margin=abc is not a finite number"),
      ("triplet:margin=nan", "triplet: margin=nan is not a finite number"),
      ("triplet:swap=maybe", "triplet: swap=maybe is not true or false"),
      ("triplet:distance=manhattan", "triplet: distance=manhattan is not one of euclidean"),
      ("triplet:margin", "'margin' in 'triplet:margin' is not key=value"),
      ("triplet:margin=1,margin=2", "'margin' given twice"),
      ("multi-similarity:alpha=-1", "multi-similarity: alpha=-1 must be > 0"),
      ("center:weight=x", "center: weight=x is not a finite number"),
      (":margin=1", "empty component name"),
    ])
  func errors(text: String, message: String) {
    do {
      _ = try registry.make(text, context: context)
      Issue.record("\(text) was accepted")
    } catch {
      #expect("\(error)".contains(message), "\(text): \(error)")
    }
  }

  @Test("weighted sums: softmax + 0.01 × center, statically typed")
  func weightedSum() {
    var rng = RandomSource(seed: 3)
    var x = Matrix<Double>(rows: 8, columns: 6)
    x.apply { _ in rng.normal() }
    let y = (0..<8).map { $0 % 4 }
    var centers = Matrix<Double>(rows: 4, columns: 6)
    centers.apply { _ in rng.normal() }
    let softmax = LossEvaluator(SoftmaxLoss<Double>(weights: ClassWeights(classes: 4, dimension: 6, seed: 1)))
    let center = LossEvaluator(CenterLoss<Double>(centers: centers))
    var sum = WeightedSum(softmax, center, secondWeight: 0.01)
    let value = sum.evaluate(x, labels: y, tuples: nil)
    var a = softmax, b = center
    let va = a.evaluate(x, labels: y, tuples: nil), vb = b.evaluate(x, labels: y, tuples: nil)
    #expect(abs(value.total - (va.total + 0.01 * vb.total)) < 1e-12)
    var expected = a.embeddingGradient
    expected.add(b.embeddingGradient, scaledBy: 0.01)
    expected.add(sum.embeddingGradient, scaledBy: -1)
    #expect(expected.maxAbs() < 1e-12)
    // The classifier's weights and bias, then the centers (learned state the optimizer skips).
    #expect(sum.namedParameters().map(\.name) == ["0.class_weights", "0.bias", "1.centers"])
    #expect(sum.parameters.map(\.trainable) == [true, true, false])
    sum.updateReferences()
    #expect(sum.second.loss.centers != centers)
  }
}

@Suite("Golden network with its loss (Golden/network.json)")
struct GoldenNetworkLossTests {
  @Test("MLP → L2 → TripletMarginLoss(0.2): loss and every weight gradient to 1e-9")
  func mlpTriplet() throws {
    let c = GoldenCase.load("network").first { $0.name == "mlp_triplet" }!
    func vector(_ key: String) -> Matrix<Double> {
      let v = (c.inputs[key] as! [NSNumber]).map(\.doubleValue)
      return Matrix(rows: 1, columns: v.count, elements: v)
    }
    func outVector(_ key: String) -> Matrix<Double> {
      let v = (c.outputs[key] as! [NSNumber]).map(\.doubleValue)
      return Matrix(rows: 1, columns: v.count, elements: v)
    }
    var net = Network(
      inputFeatures: 8,
      body: sequential {
        Linear(weight: c.matrix("layer1_weight"), bias: vector("layer1_bias"))
        ReLU<Double>()
        Linear(weight: c.matrix("layer2_weight"), bias: vector("layer2_bias"))
        L2Normalize<Double>()
      })
    net.forward(c.matrix("input"), mode: .training, compute: .automatic)
    var loss = LossEvaluator(TripletMarginLoss<Double>(margin: 0.2))
    let value = loss.evaluate(net.embeddings, labels: c.labels, tuples: nil)
    expectClose(value.total, c.scalar("loss"), "loss")
    expectClose(loss.embeddingGradient, c.output("grad_embeddings"), "grad_embeddings")
    net.backward(loss.embeddingGradient, compute: .automatic)
    let p = net.parameters
    expectClose(p[0].gradient, c.output("grad_layer1_weight"), "grad W1")
    expectClose(p[1].gradient, outVector("grad_layer1_bias"), "grad b1")
    expectClose(p[2].gradient, c.output("grad_layer2_weight"), "grad W2")
    expectClose(p[3].gradient, outVector("grad_layer2_bias"), "grad b2")
  }
}
