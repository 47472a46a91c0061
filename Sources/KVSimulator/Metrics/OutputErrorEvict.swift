import KVTrace

/// `output_error_evict`: an eviction-only estimate without queries,
/// `o' = Σ_{j∈S∪[P,i]} A[h,i,j] v_j / Σ_{same} A[h,i,j]`, compared with `o = Σ_{j≤i} A v / Σ A` by
/// `‖o − o'‖ / ‖o‖`. Exact for policies that do not merge; omitted for merging ones.
/// Needs the evaluation rows and `v`. Source: METRICS.md.
public struct OutputErrorEvict: Metric {
    public static let id = "output_error_evict"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? {
        if let n = c.evictNote { return n }
        return layer.merges ? "undefined for merging policies (use output_error)" : nil
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount, D = c.headDim
        return (0 ..< c.queryHeads).map { h in
            MetricValue(Self.id, head: h, value: RowMean.mean(R) { r in
                var num = 0.0, den = 0.0
                for d in 0 ..< D {
                    let o = c.evictFullOutput[(h * R + r) * D + d], e = o - layer.evictOutputs[h][r * D + d]
                    num += e * e
                    den += o * o
                }
                return den > 0 ? (num / den).squareRoot() : nil
            })
        }
    }
}
