import KVTrace

/// `output_error_evict`: an eviction-only estimate without queries,
/// `o' = Σ_{j∈S∪[P,i]} A[h,i,j] v_j / Σ_{same} A[h,i,j]`, compared with `o = Σ_{j≤i} A v / Σ A` by
/// `‖o − o'‖ / ‖o‖`. Exact for policies that do not merge; omitted for merging ones.
/// Needs the evaluation rows and `v`. Source: docs/metrics.md.
public struct OutputErrorEvict: Metric {
    public static let id = "output_error_evict"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? {
        if let n = c.evictNote { return n }
        return layer.merges ? "undefined for merging policies (use output_error)" : nil
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        RowMean.relativeL2(
            id: Self.id, full: c.evictFullOutput, approx: layer.evictOutputs, heads: c.queryHeads, rows: c.rowCount, dim: c.headDim)
    }
}
