import KVTrace

/// `output_cosine`: the cosine similarity of `o` and `o'` (see `output_error`). Needs `q`, `k`, `v`.
/// Source: docs/metrics.md.
public struct OutputCosine: Metric {
    public static let id = "output_cosine"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.outputNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount, D = c.headDim
        return (0 ..< c.queryHeads).map { h in
            MetricValue(
                Self.id, head: h,
                value: RowMean.mean(R) { r in
                    var dot = 0.0, a = 0.0, b = 0.0
                    for d in 0 ..< D {
                        let o = c.fullOutput[(h * R + r) * D + d], p = layer.outputs[h][r * D + d]
                        dot += o * p; a += o * o; b += p * p
                    }
                    return a > 0 && b > 0 ? dot / (a.squareRoot() * b.squareRoot()) : nil
                })
        }
    }
}
