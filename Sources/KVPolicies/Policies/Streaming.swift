/// `streaming`: StreamingLLM. Keeps the sinks `[0, n_sink)` and the most recent `C − n_sink`
/// positions, the same in every head and layer. If `C ≤ n_sink`, keeps `[0, C)`.
/// Does not use `--recent-share`. A replay cannot model StreamingLLM's in-cache position
/// re-assignment. KVCache-Factory's variant (first `C − w` + last `w`) is `sinks = C − w`.
///
/// Based on StreamingLLM (arXiv 2309.17453).
public struct Streaming: CachePolicy {
    /// Attention sinks (default 4, as StreamingLLM and kvpress).
    public var sinks: Int
    public init(sinks: Int = 4) { self.sinks = sinks }
    public var id: String { "streaming" }
    public var requirements: Requirements { [] }
    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let P = context.compressionPoint, C = context.budget.nominal
        if P <= C { return .whole(layer: context.layer, kvHeads: context.kvHeads, prefill: P, nominal: C, notes: [.earlyExit]) }
        let kept = C <= sinks ? Array(0 ..< C) : Array(0 ..< sinks) + Array((P - (C - sinks)) ..< P)
        let head = HeadDecision(kept: kept, prefill: P)
        return LayerDecision(layer: context.layer, heads: Array(repeating: head, count: context.kvHeads), nominal: C, prefill: P)
    }
}
