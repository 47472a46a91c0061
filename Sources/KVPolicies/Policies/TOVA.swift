import KVTrace

/// `tova`: Token Omission Via Attention, applied once at `P`.
///
/// `score_j = mean over all query heads of A[h, P−1, j]` (the last prefill row); keep the top `C`
/// positions, shared by all heads of the layer, ascending. TOVA proper evicts one token per decode
/// step; a look-once replay applies only its prefill reduction. Does not use `--recent-share`.
/// Needs row `P−1` (or `q[P−1]` and `k`).
///
/// Based on TOVA (arXiv 2401.06104).
public struct TOVA: ReusesWorkAcrossBudgets {
    public init() {}
    public var id: String { "tova" }
    public var requirements: Requirements { .windowRows }

    /// Reused across budgets: the last row's head-mean attention.
    public func decide(_ context: LayerContext, reusing memo: (() throws -> [Double]) throws -> [Double]) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        if P <= C { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C, notes: [.earlyExit]) }
        let score = try memo {
            let row = try ctx.rows(P - 1 ..< P)
            var score = [Double](repeating: 0, count: P)
            for h in 0 ..< row.heads { for j in 0 ..< P { score[j] += row[h, 0, j] } }
            for j in 0 ..< P { score[j] /= Double(row.heads) }
            return score
        }
        let head = HeadDecision(kept: Selection.topK(Array(0 ..< P), k: C, score: { score[$0] }).sorted(), prefill: P)
        return LayerDecision(layer: ctx.layer, heads: Array(repeating: head, count: ctx.kvHeads), nominal: C, prefill: P)
    }
}
