import KVTrace

/// `output_error = ‖o − o'‖ / ‖o‖` (L2), where `o = Σ_{j≤i} softmax_j(s·q_i·k_j) v_j` over the full
/// cache and `o'` the same over the compressed cache (kept or merged `K'`, `V'` in `S`, plus
/// positions `P..i`); `s` is the trace's `attn_scale`, else `1/√D`. Needs `q`, `k`, `v`.
/// Source: docs/metrics.md.
public struct OutputError: Metric {
    public static let id = "output_error"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.outputNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        RowMean.relativeL2(id: Self.id, full: c.fullOutput, approx: layer.outputs, heads: c.queryHeads, rows: c.rowCount, dim: c.headDim)
    }
}
