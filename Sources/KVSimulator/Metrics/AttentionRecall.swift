import KVTrace

/// `attention_recall`: `R(h,i) = Σ_{j∈S_g(h) ∪ [P,i]} A[h,i,j] / Σ_{j≤i} A[h,i,j]` (generated positions
/// a decoding replay evicted are not in the numerator), the share of
/// the row's recorded attention that falls on tokens still in the cache. Merged-away tokens count
/// as lost. Averaged over evaluation rows. Source: docs/metrics.md.
public struct AttentionRecall: Metric {
    public static let id = "attention_recall"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.attentionNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount
        return (0 ..< c.queryHeads).map { h in
            MetricValue(
                Self.id, head: h,
                value: RowMean.mean(R) { r in
                    let x = h * R + r
                    let total = c.prefixMass[x] + c.tailMass[x]
                    return total > 0 ? (layer.keptMass[h][r] + layer.tailMass[h][r]) / total : nil
                })
        }
    }
}
