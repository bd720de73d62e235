/// The affine map `y = a wᵀ + b` over a chunk of rows, shared by `Linear` and `Conv2D` (whose
/// rows are im2col's patches). Each function works on raw pointers to the chunk's rows, so that
/// the chunks of `BatchParallelism.forEachChunk` can run them side by side.
///
/// `w` is `outputs × inputs`. `Linear` splits its parameter gradients by output
/// (`outputGradients`). A convolution splits them by image (`backward`): the parameter gradients
/// of chunk 0 go to the parameters, those of the other chunks to rows of a partial-gradient buffer
/// (`outputs · inputs` weight values, then `outputs` bias values per row), which
/// `addPartialGradients` adds afterwards in chunk order.
@usableFromInline
enum ChunkedAffine {
  /// `y = b + a wᵀ` for `rows` rows: the bias goes in first and GEMM accumulates onto it. With
  /// `transposed`, `w` holds `wᵀ` (`inputs × outputs`), so the product needs no transposition.
  @inlinable
  static func forward<T: DMLScalar>(
    _ a: UnsafePointer<T>, rows: Int, inputs: Int, weight w: UnsafePointer<T>,
    bias b: UnsafePointer<T>, outputs: Int, into y: UnsafeMutablePointer<T>, transposed: Bool = false,
    engine: LayerGemm.Engine
  ) {
    for i in 0..<rows { (y + i * outputs).update(from: b, count: outputs) }
    T.layerGemm(
      transposeA: false, transposeB: !transposed, m: rows, n: outputs, k: inputs,
      a: a, lda: inputs, b: w, ldb: transposed ? outputs : inputs, beta: 1, c: y, ldc: outputs, engine: engine)
  }

  /// `∂w = ∂yᵀ a` and `∂b = Σ_rows ∂y` over `rows` rows: overwritten, or added to the
  /// gradients already there when `accumulate`.
  @inlinable
  static func parameterGradients<T: DMLScalar>(
    _ a: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows: Int, inputs: Int, outputs: Int,
    weightGradient dw: UnsafeMutablePointer<T>, biasGradient db: UnsafeMutablePointer<T>,
    accumulate: Bool = false, engine: LayerGemm.Engine
  ) {
    T.layerGemm(
      transposeA: true, transposeB: false, m: outputs, n: inputs, k: rows,
      a: dy, lda: outputs, b: a, ldb: inputs, beta: accumulate ? 1 : 0, c: dw, ldc: inputs, engine: engine)
    if !accumulate { db.update(repeating: 0, count: outputs) }
    for i in 0..<rows {
      let row = dy + i * outputs
      for j in 0..<outputs { db[j] += row[j] }
    }
  }

  /// Rows `outs` of `∂w = ∂yᵀ a` and entries `outs` of `∂b = Σ_rows ∂y`, over all `rows` rows
  /// (overwritten): the gradients of a share of the outputs, which a chunk can compute without
  /// touching another chunk's.
  @inlinable
  static func outputGradients<T: DMLScalar>(
    _ a: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows: Int, inputs: Int, outputs: Int, of outs: Range<Int>,
    weightGradient dw: UnsafeMutablePointer<T>, biasGradient db: UnsafeMutablePointer<T>,
    engine: LayerGemm.Engine
  ) {
    T.layerGemm(
      transposeA: true, transposeB: false, m: outs.count, n: inputs, k: rows,
      a: dy + outs.lowerBound, lda: outputs, b: a, ldb: inputs, beta: 0, c: dw + outs.lowerBound * inputs,
      ldc: inputs, engine: engine)
    let bias = db + outs.lowerBound
    bias.update(repeating: 0, count: outs.count)
    for i in 0..<rows {
      let row = dy + i * outputs + outs.lowerBound
      for j in 0..<outs.count { bias[j] += row[j] }
    }
  }

  /// `∂a = ∂y w` over `rows` rows.
  @inlinable
  static func inputGradient<T: DMLScalar>(
    _ dy: UnsafePointer<T>, rows: Int, inputs: Int, outputs: Int, weight w: UnsafePointer<T>,
    into da: UnsafeMutablePointer<T>, engine: LayerGemm.Engine
  ) {
    T.layerGemm(
      transposeA: false, transposeB: false, m: rows, n: inputs, k: outputs,
      a: dy, lda: outputs, b: w, ldb: inputs, beta: 0, c: da, ldc: inputs, engine: engine)
  }

  /// Where chunk `chunk` writes its parameter gradients: the parameters' own buffers for chunk
  /// 0, else row `chunk − 1` of `partial`.
  @inlinable
  static func gradientTargets<T>(
    chunk: Int, inputs: Int, outputs: Int, weightGradient dw: UnsafeMutablePointer<T>,
    biasGradient db: UnsafeMutablePointer<T>, partial: UnsafeMutablePointer<T>?
  ) -> (weight: UnsafeMutablePointer<T>, bias: UnsafeMutablePointer<T>) {
    guard chunk > 0 else { return (dw, db) }
    let base = partial! + (chunk - 1) * (outputs * inputs + outputs)
    return (base, base + outputs * inputs)
  }

  /// The whole backward pass over `items` items of `rowsPerItem` rows each (a
  /// `Conv2D` image's patches), split into `chunks` chunks of items run in parallel
  /// (`BatchParallelism`). Each chunk writes its parameter gradients (see `gradientTargets`),
  /// then, when `da` is given, its rows of `∂a` and calls `afterInputGradient(items, ∂a rows)`
  /// (`col2im` for a convolution). The partial gradients are added at the end, in chunk order.
  @inlinable
  static func backward<T: DMLScalar>(
    items: Int, rowsPerItem: Int, chunks: Int, inputs: Int, outputs: Int,
    input a: UnsafePointer<T>, outputGradient dy: UnsafePointer<T>, weight w: UnsafePointer<T>,
    weightGradient dw: UnsafeMutablePointer<T>, biasGradient db: UnsafeMutablePointer<T>,
    partial: UnsafeMutablePointer<T>?, inputGradient da: UnsafeMutablePointer<T>?,
    engine: LayerGemm.Engine,
    afterInputGradient: (Range<Int>, UnsafeMutablePointer<T>) -> Void = { _, _ in }
  ) {
    BatchParallelism.forEachChunk(rows: items, chunks: chunks) { chunk, range in
      let (first, rows) = (range.lowerBound * rowsPerItem, range.count * rowsPerItem)
      let target = gradientTargets(
        chunk: chunk, inputs: inputs, outputs: outputs, weightGradient: dw, biasGradient: db,
        partial: partial)
      parameterGradients(
        a + first * inputs, dy + first * outputs, rows: rows, inputs: inputs, outputs: outputs,
        weightGradient: target.weight, biasGradient: target.bias, engine: engine)
      guard let da else { return }
      inputGradient(
        dy + first * outputs, rows: rows, inputs: inputs, outputs: outputs, weight: w,
        into: da + first * inputs, engine: engine)
      afterInputGradient(range, da + first * inputs)
    }
    addPartialGradients(
      chunks: chunks, inputs: inputs, outputs: outputs, weightGradient: dw, biasGradient: db,
      partial: partial)
  }

  /// Adds the partial gradients of chunks 1..<chunks to the parameters', in chunk order.
  @inlinable
  static func addPartialGradients<T: DMLScalar>(
    chunks: Int, inputs: Int, outputs: Int, weightGradient dw: UnsafeMutablePointer<T>,
    biasGradient db: UnsafeMutablePointer<T>, partial: UnsafeMutablePointer<T>?
  ) {
    for chunk in 1..<Swift.max(1, chunks) {
      let t = gradientTargets(
        chunk: chunk, inputs: inputs, outputs: outputs, weightGradient: dw, biasGradient: db,
        partial: partial)
      for k in 0..<(outputs * inputs) { dw[k] += t.weight[k] }
      for j in 0..<outputs { db[j] += t.bias[j] }
    }
  }
}
