import KVTrace

/// `text-prior`: LOOK-M's text-prior eviction without a merge (official `kv_mode
/// text_prior_h2o`; the orphaned `TextH2OKVCache_LayerWise` methods).
///
/// `code` fidelity implements the official four steps literally, per KV head:
/// 1. `m[j] = s[j] − 65516·[j non-text] − 65516·[j ≥ P−r]`;
/// 2. top `hh` of `m[0 ..< P−r]`;
/// 3. `m ← 0` at those and on the recent window;
/// 4. keep every `j` with `m[j] ≥ 0`, ascending.
/// This keeps every text token, the recent window and the top `max(0, hh − T_nr)` non-text tokens
/// (`T_nr`: text positions in `[0, P−r)`), so `C_act = max(hh, T_nr) + r` can exceed `C`.
/// `r = 0` is an error (the official code slices `[:-r]`). `P ≤ hh + r` keeps the cache whole.
///
/// `intended` fidelity: a strict budget. Rank `[0, P−r)` by (text first, score descending,
/// position ascending), keep the top `hh`, add the window; `C_act = hh + r`; `r = 0` allowed.
///
/// Spans come from the trace's modality (non-text = image, video, audio). Ties → lowest position.
///
/// Based on LOOK-M (arXiv 2406.18139), official code `SUSTechBruce/LOOK-M`.
public struct TextPrior: ReusesWorkAcrossBudgets {
    /// The offset the official code subtracts (`65516`).
    public var offset: Double
    public init(offset: Double = 65516) { self.offset = offset }
    public var id: String { "text-prior" }
    public var requirements: Requirements { [.colsum, .spans] }

    /// Reused across budgets: the GQA-combined column sums.
    public func decide(_ context: LayerContext, reusing colsum: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(context.policyID.isEmpty ? id : context.policyID)
        let P = ctx.compressionPoint, b = ctx.budget
        var notes = gqaNotes(ctx)
        if !ctx.hasNonText {
            if ctx.options.imageGate {
                return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: b.nominal, notes: [.noImage])
            }
            notes.append(.noImage)
        }
        if P <= b.nominal { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: b.nominal, notes: [.earlyExit] + notes) }
        let code = ctx.options.fidelity == .code
        if code && b.recent == 0 {
            throw PolicyError(.budget, policy: ctx.policyID, layer: ctx.layer,
                              "text prior (official code) needs a recent window: \(b.recentFormula); use --fidelity intended or a larger recent ratio")
        }
        let s = try colsum { aggregateGQA(try ctx.colsum(), map: ctx.kvHeadOfQueryHead, kvHeads: ctx.kvHeads, ctx.options.gqa) }
        let text = ctx.isText
        let cut = P - b.recent
        let heads = try parallelMap(ctx.kvHeads) { g -> HeadDecision in
            if code {
                var m = (0 ..< P).map { j in s[g, j] - (text[j] ? 0 : offset) - (j >= cut ? offset : 0) }
                for j in Selection.topK(Array(0 ..< cut), k: b.heavy, score: { m[$0] }) { m[j] = 0 }
                for j in cut ..< P { m[j] = 0 }
                return HeadDecision(kept: (0 ..< P).filter { m[$0] >= 0 }, prefill: P)
            } else {
                let ranked = Selection.topK(Array(0 ..< cut), k: b.heavy, score: { j in (text[j] ? 4 * offset : 0) + s[g, j] })
                return HeadDecision(kept: (ranked + Array(cut ..< P)).sorted(), prefill: P)
            }
        }
        if heads.contains(where: { $0.kept.count > b.nominal }) { notes.append(.overBudget) }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: b.nominal, prefill: P, notes: notes)
    }
}
