import KVTrace

/// `topk_recall = |top_k(A[h,i,0..<P]) ∩ S_g(h)| / k`, `k = 16` by default (`--topk`), capped at
/// `P`; ties go to the lowest position. Source: docs/metrics.md.
public struct TopKRecall: Metric {
    public static let id = "topk_recall"
    public init() {}
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? { c.attentionNote }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let R = c.rowCount, k = Double(min(c.topK, c.compressionPoint))
        return (0 ..< c.queryHeads).map { h in
            MetricValue(Self.id, head: h, value: k > 0 ? RowMean.mean(R) { r in Double(layer.topHits[h][r]) / k } : nil)
        }
    }
}
