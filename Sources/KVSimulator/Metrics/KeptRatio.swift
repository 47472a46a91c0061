import KVTrace

/// `kept_ratio = kept_tokens / P`. Source: docs/metrics.md.
public struct KeptRatio: Metric {
    public static let describesCache = true
    public static let id = "kept_ratio"
    public init() {}
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let P = Double(max(c.compressionPoint, 1))
        return (0 ..< c.queryHeads).map { h in
            MetricValue(Self.id, head: h, value: Double(layer.decision.heads[c.kvHeadOfQueryHead[h]].kept.count) / P)
        }
    }
}
