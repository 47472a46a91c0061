import KVTrace

/// `adakv`: Ada-KV head-adaptive budget allocation over SnapKV scores.
///
/// Per layer, with the per-KV-head budget `B = C − w` and the window protected: each KV head first
/// takes its own top `⌊α·B⌋`; the remaining `KVH·B − KVH·⌊α·B⌋` slots go to the highest remaining
/// scores pooled across the layer's KV heads (ties → lower head, then lower position); the window
/// is kept in every head. Heads end up with different counts (ragged decisions); the mean per
/// head equals SnapKV's budget. Only SnapKV is accepted as the base: its window attention sums are
/// on a common scale across heads.
///
/// Defaults: `α = 0.2` (kvpress `alpha_safeguard`); SnapKV defaults.
/// Based on Ada-KV (arXiv 2407.11550).
public struct AdaKV: ReusesWorkAcrossBudgets {
    /// Default 0.2.
    public var alpha: Double
    public var base: SnapKV
    public init(alpha: Double = 0.2, base: SnapKV = SnapKV()) {
        self.alpha = alpha
        self.base = base
    }
    public var id: String { "adakv" }
    public var requirements: Requirements { .windowRows }

    /// Reused across budgets: SnapKV's scores over window `w` (only the allocation depends on the budget).
    public func decide(_ context: LayerContext, reusing memo: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        guard alpha >= 0, alpha <= 1 else { throw PolicyError(.parameter, policy: id, "alpha must be in [0, 1], got \(alpha)") }
        let P = ctx.compressionPoint, C = ctx.budget.nominal, w = base.window
        if P <= C { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C, notes: [.earlyExit]) }
        if C <= w {
            return try SnapKV.select(ctx, keep: [], window: w, nominal: C) { _ in ScoreMatrix(rows: 0, count: 0) }
        }
        let s = try memo { try base.scores(ctx, window: w) }
        let G = ctx.kvHeads, n = P - w, B = C - w
        let floor = Int(alpha * Double(B))
        var chosen = (0 ..< G).map { g in Selection.topK(Array(0 ..< n), k: floor, score: { s[g, $0] }) }
        var taken = [Bool](repeating: false, count: G * n)
        for g in 0 ..< G { for j in chosen[g] { taken[g * n + j] = true } }
        let rest = (0 ..< G * n).filter { !taken[$0] }
        // Flat index g·n + j orders ties by (head, position).
        for f in Selection.topK(rest, k: G * B - G * floor, score: { s.values[$0] }) { chosen[f / n].append(f % n) }
        let heads = chosen.map { HeadDecision(kept: ($0 + Array(n ..< P)).sorted(), prefill: P) }
        var d = LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P, notes: gqaNotes(ctx))
        d.notes.append(DecisionNote("ragged", "per-head counts \(d.actual.map(String.init).joined(separator: ","))"))
        return d
    }
}
