/// He (Kaiming) normal initialisation: `N(0, 2 / fanIn)`, for layers followed by ReLU.
func heNormal<T: DMLScalar>(rows: Int, columns: Int, fanIn: Int, rng: inout RandomSource)
  -> Matrix<T>
{
  let std = (2 / Double(fanIn)).squareRoot()
  var m = Matrix<T>(rows: rows, columns: columns)
  m.withUnsafeMutableBufferPointer { p in
    for i in p.indices { p[i] = T(std * rng.normal(Double.self)) }
  }
  return m
}
