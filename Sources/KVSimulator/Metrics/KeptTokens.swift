import KVTrace

/// `kept_tokens`: `|S_g|`, the number of prefix positions a KV head actually keeps (not the nominal
/// budget: text-prior keeps more). Reported per query head as `|S_g(h)|`. Source: docs/metrics.md.
public struct KeptTokens: Metric {
    public static let describesCache = true
    public static let id = "kept_tokens"
    public init() {}
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        (0 ..< c.queryHeads).map { h in
            MetricValue(Self.id, head: h, value: Double(layer.decision.heads[c.kvHeadOfQueryHead[h]].kept.count))
        }
    }
}
