import KVTrace

/// `output_error = ‖o − o'‖ / ‖o‖` (L2), where `o = Σ_{j≤i} softmax_j(s·q_i·k_j) v_j` over the full
/// cache and `o'` the same over the compressed cache (kept or merged `K'`, `V'` in `S`, plus
/// positions `P..i`); `s` is the trace's `attn_scale`, else `1/√D`. Needs `q`, `k`, `v`.
/// Source: METRICS.md.
public struct OutputError: Metric {
    public static let id = "output_error"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.outputNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount, D = c.headDim
        return (0 ..< c.queryHeads).map { h in
            MetricValue(Self.id, head: h, value: RowMean.mean(R) { r in
                var num = 0.0, den = 0.0
                for d in 0 ..< D {
                    let o = c.fullOutput[(h * R + r) * D + d], e = o - layer.outputs[h][r * D + d]
                    num += e * e
                    den += o * o
                }
                return den > 0 ? (num / den).squareRoot() : nil
            })
        }
    }
}
