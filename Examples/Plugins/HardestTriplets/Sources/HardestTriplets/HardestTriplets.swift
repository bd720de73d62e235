// Batch-hard triplet mining (Hermans et al. 2017) as a plugin: for each anchor, its hardest
// positive (the farthest item of its class) and its hardest negative (the closest item of another
// class) make one triplet. It reads n x m scores, so it also mines against a cross-batch memory.
import DMLPluginABI

#if canImport(Glibc)
  import Glibc
#endif

/// The instance's state: the distance it mines under.
struct MinerState {
  var distance: Int32
}

/// Whether `a` is closer than `b` under `distance`: a smaller distance, or a larger similarity.
@inline(__always)
func closer(_ a: Double, _ b: Double, distance: Int32) -> Bool {
  distance == DML_DISTANCE_COSINE || distance == DML_DISTANCE_DOT ? a > b : a < b
}

func mine<T: BinaryFloatingPoint>(_: T.Type, _ input: dml_miner_input, _ distance: Int32, _ sink: dml_tuple_sink) {
  let n = Int(input.rows), m = Int(input.columns)
  guard n > 0, m > 0, let raw = input.scores, let labels = input.labels else { return }
  let scores = raw.assumingMemoryBound(to: T.self)
  for a in 0..<n {
    var positive = -1, negative = -1
    var farthest = 0.0, closest = 0.0
    for j in 0..<m where j != a {
      let s = Double(scores[a * m + j])
      if labels[j] == labels[a] {
        if positive < 0 || closer(farthest, s, distance: distance) { (positive, farthest) = (j, s) }
      } else if negative < 0 || closer(s, closest, distance: distance) {
        (negative, closest) = (j, s)
      }
    }
    if positive >= 0 && negative >= 0 { sink.triplet(sink.host, Int32(a), Int32(positive), Int32(negative)) }
  }
}

/// Copies `message` into the host's error buffer of `size` bytes, NUL-terminated.
func report(_ message: String, into error: UnsafeMutablePointer<CChar>?, size: Int) {
  guard let error, size > 0 else { return }
  message.withCString { _ = strncpy(error, $0, size - 1) }
  error[size - 1] = 0
}

/// `create`: the one hyperparameter is the distance.
let create: dml_create_fn = { values, count, _, _, instance, error, size in
  guard count == 1, let values, let instance, let choice = values[0].choice else {
    report("expected one hyperparameter value, got \(count)", into: error, size: size)
    return DML_PLUGIN_ERROR
  }
  let distance = String(cString: choice) == "cosine" ? DML_DISTANCE_COSINE : DML_DISTANCE_EUCLIDEAN
  let state = UnsafeMutablePointer<MinerState>.allocate(capacity: 1)
  state.initialize(to: MinerState(distance: distance))
  instance.pointee.state = UnsafeMutableRawPointer(state)
  instance.pointee.distance = distance
  instance.pointee.tensor_count = 0
  instance.pointee.tensors = nil
  return DML_PLUGIN_OK
}

let destroy: dml_destroy_fn = { state in
  state?.assumingMemoryBound(to: MinerState.self).deallocate()
}

let mineFunction: dml_mine_fn = { state, input, sink, _, _ in
  guard let state, let input, let sink else { return DML_PLUGIN_ERROR }
  let distance = state.assumingMemoryBound(to: MinerState.self).pointee.distance
  if input.pointee.scalar == DML_SCALAR_F64 {
    mine(Double.self, input.pointee, distance, sink.pointee)
  } else {
    mine(Float.self, input.pointee, distance, sink.pointee)
  }
  return DML_PLUGIN_OK
}

/// Declarations live as long as the process: strings and arrays the host reads at any time.
nonisolated(unsafe) let hyperparameters: UnsafeMutablePointer<dml_hyperparameter> = {
  let h = UnsafeMutablePointer<dml_hyperparameter>.allocate(capacity: 1)
  h.initialize(
    to: dml_hyperparameter(
      name: strdup("distance"), type: DML_HYPERPARAMETER_CHOICE, default_value: strdup("euclidean"),
      doc: strdup("compare embeddings by Euclidean distance or cosine similarity"), choices: strdup("euclidean|cosine"),
      bounds: 0, lower: 0, upper: 0))
  return h
}()

nonisolated(unsafe) let descriptor: UnsafeMutablePointer<dml_miner_descriptor> = {
  let d = UnsafeMutablePointer<dml_miner_descriptor>.allocate(capacity: 1)
  d.initialize(
    to: dml_miner_descriptor(
      abi_version: DML_PLUGIN_ABI_VERSION, name: strdup("hardest-triplets"),
      doc: strdup("each anchor's hardest positive and hardest negative, as a triplet (Swift example)"),
      hyperparameter_count: 1, hyperparameters: hyperparameters, flags: DML_ACCEPTS_MEMORY, create: create, destroy: destroy,
      mine: mineFunction))
  return d
}()

/// The entry point: registers the miner.
@_cdecl("dml_plugin_init")
public func dmlPluginInit(_ registrar: UnsafePointer<dml_registrar>?) -> Int32 {
  guard let r = registrar?.pointee, r.abi_version == DML_PLUGIN_ABI_VERSION else { return DML_PLUGIN_ERROR }
  r.register_miner(r.host, descriptor)
  return DML_PLUGIN_OK
}
