import KVTrace

/// `oracle`: the upper bound by true future attention. Per (layer, KV head `g`), keeps the top `C`
/// prefix positions by `Σ_{i∈E} Σ_{h: g(h)=g} A[h, i, j] / Σ_{j'≤i} A[h, i, j']`: the attention
/// the evaluation rows `E` (recorded rows `i ≥ P`) give them, each row divided by its total.
/// At the same kept count per (layer, KV head) no eviction policy has a higher attention recall
/// (METRICS.md). Not realisable: it reads the future. Needs rows `i ≥ P` (`attn`, or `q` and `k`).
public struct Oracle: ReusesWorkAcrossBudgets {
    /// Per-KV-head kept counts to use instead of `C` (`--match POLICY`).
    public var counts: [Int]?
    public init(counts: [Int]? = nil) { self.counts = counts }
    public var id: String { "oracle" }
    public var requirements: Requirements { .future }

    /// Normalised future attention per KV head, `[KVH][P]`.
    public func scores(_ context: LayerContext) throws -> ScoreMatrix {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, qr = ctx.info.shape.queryRows
        let start = max(P, qr.lowerBound)
        guard start < qr.upperBound else {
            throw PolicyError(.missingInput, policy: id, layer: ctx.layer, tensor: "attn",
                              "needs future attention rows i ≥ \(P) (attn, or q with k); the trace records rows \(qr.lowerBound)..<\(qr.upperBound)")
        }
        let rows = try ctx.rows(start ..< qr.upperBound)
        var out = ScoreMatrix(rows: ctx.kvHeads, count: P)
        let map = ctx.kvHeadOfQueryHead
        for h in 0 ..< rows.heads {
            for i in 0 ..< rows.positions.count {
                let pos = rows.positions.lowerBound + i
                var total = 0.0
                for j in 0 ... min(pos, rows.columns - 1) { total += rows[h, i, j] }
                guard total > 0 else { continue }
                for j in 0 ..< P { out[map[h], j] += rows[h, i, j] / total }
            }
        }
        return out
    }

    /// Reused across budgets: the future-attention scores.
    public func decide(_ context: LayerContext, reusing memo: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        if counts == nil && P <= C { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C, notes: [.earlyExit]) }
        let s = try memo { try scores(ctx) }
        let heads = (0 ..< ctx.kvHeads).map { g in
            HeadDecision(kept: Selection.topK(Array(0 ..< P), k: min(P, counts?[g] ?? C), score: { s[g, $0] }).sorted(), prefill: P)
        }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P)
    }
}
