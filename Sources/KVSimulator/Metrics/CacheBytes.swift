import KVTrace

/// `cache_bytes = Σ_layers Σ_g kept_tokens · head_dim · 2 (K and V) · bytes per element`; the
/// element size is the trace's `k` dtype width, else 2. One value per layer; the `all` row is the
/// sum over layers. Missing (with a note) when the trace does not tell the head dimension (`D = 0`:
/// no `q`, `k` or `v`), rather than a size of 0. Source: docs/metrics.md.
public struct CacheBytes: Metric {
    public static let describesCache = true
    public static let id = "cache_bytes"
    public init() {}
    public var aggregation: Aggregation { .sum }
    public func missing(_ layer: ReplayLayer, _ c: EvaluationContext) -> String? {
        c.headDim > 0 ? nil : "the trace records no q, k or v, so the head dimension D (and the cache size) is unknown"
    }
    public func evaluate(_ layer: ReplayLayer, _ c: EvaluationContext) throws -> [MetricValue] {
        let tokens = layer.decision.heads.reduce(0) { $0 + $1.kept.count }
        return [MetricValue(Self.id, value: Double(tokens * c.headDim * 2 * c.elementBytes))]
    }
}
