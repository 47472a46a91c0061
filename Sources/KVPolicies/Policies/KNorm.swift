import KVTrace

/// `knorm`: key-norm eviction. `score_j = −‖K[g, j]‖₂`: keep the `C` keys of smallest L2 norm
/// per KV head, ascending (ties → lowest position). Needs no attention; reads `k_norm` or `k`.
/// `skipLayers` keeps those layers whole (KVCache-Factory skips 0 and 1); by default every layer
/// is compressed, as in kvpress. Does not use `--recent-share`.
///
/// Based on "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression" (arXiv 2406.11430).
public struct KNorm: ReusesWorkAcrossBudgets {
    /// Layers kept whole (default none).
    public var skipLayers: [Int]
    public init(skipLayers: [Int] = []) { self.skipLayers = skipLayers }
    public var id: String { "knorm" }
    public var requirements: Requirements { .keys }

    /// Reused across budgets: the key norms.
    public func decide(_ context: LayerContext, reusing memo: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        if P <= C || skipLayers.contains(ctx.layer) {
            return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C,
                          notes: [P <= C ? .earlyExit : DecisionNote("skipped-layer", "layer \(ctx.layer) is kept whole (--skip-layers)")])
        }
        let norms = try memo { try ctx.keyNorms() }
        let heads = (0 ..< ctx.kvHeads).map { g in
            HeadDecision(kept: Selection.topK(Array(0 ..< P), k: C, score: { -norms[g, $0] }).sorted(), prefill: P)
        }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P)
    }
}
