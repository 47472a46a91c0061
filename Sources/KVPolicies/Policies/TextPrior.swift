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
public struct TextPrior: ScoringPolicy, DeclaredPolicy, MergeSettable {
    /// The offset the official code subtracts (`65516`).
    public var offset: Double
    /// Unused (no merge); lets the LOOK-M family share this type's `--merge-filter` handling.
    public var mergeFilter: MergeFilter?
    /// Unused (no merge), as `mergeFilter`.
    public var mergeScope: MergeScope?
    public init(offset: Double = 65516) { self.offset = offset }
    public init(parameters: ParameterValues) { self.init() }

    public static let declaration = PolicyDeclaration(
        id: "text-prior", summary: "LOOK-M text-prior eviction, no merge (code mode keeps every text token)",
        paper: "LOOK-M, arXiv 2406.18139", officialMode: "text_prior_h2o",
        requirements: [.colsum, .spans], traits: [.usesRecent], color: 0xD55E00, rule: textPriorRule)

    static let textPriorRule = """
        Scores are the accumulated attention s[j] = Σ_{i<P} A[i, j] per KV head (--gqa). `code` fidelity         runs the official four steps literally, per KV head: (1) m[j] = s[j] − 65516·[j is not text] −         65516·[j ≥ P−r]; (2) take the top hh of m over 0 ..< P−r; (3) set m to 0 there and on the recent         window; (4) keep every j with m[j] ≥ 0, ascending. So every text token is kept, plus the recent         window and the top max(0, hh − T) non-text tokens (T: text positions before the window): the         cache can exceed C (note over-budget). r = 0 is an error in code fidelity (the official code         slices [:-r]). `intended` fidelity keeps exactly C: rank 0 ..< P−r by (text first, score         descending, position ascending), keep the top hh, add the window; r = 0 is allowed. Non-text means         image, video or audio. A prompt without any non-text token is compressed all the same unless         --image-gate is set (the official pipeline would not have compressed it). P ≤ C keeps the cache whole.
        """

    public var scoreKey: AnyHashable { [offset] }
    /// The hooks read only the offset, the budget and the options: merge variants at one budget share the decision.
    public var decisionKey: AnyHashable? { scoreKey }

    /// `code`: the official `m` (text and window get 0 or more, the rest is pushed below 0).
    /// `intended`: text ranked above every non-text token, then by score.
    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix {
        var s = try ctx.aggregatedColsum()
        let P = ctx.compressionPoint, cut = P - ctx.budget.recent
        let text = ctx.isText
        for g in 0 ..< s.rows {
            for j in 0 ..< P {
                if ctx.options.fidelity == .code {
                    s[g, j] -= (text[j] ? 0 : offset) + (j >= cut ? offset : 0)
                } else if text[j] {
                    s[g, j] += 4 * offset
                }
            }
        }
        return s
    }

    /// The scores read the fidelity and, in code mode, the window boundary.
    public func sharedScores(_ ctx: LayerContext) throws -> ScoreMatrix {
        let cut = ctx.compressionPoint - ctx.budget.recent
        return try ctx.shared(
            ["text-prior", offset, ctx.options.fidelity.rawValue, ctx.options.fidelity == .code ? cut : 0] as [AnyHashable]
        ) {
            try scores(ctx)
        }
    }

    /// Code mode keeps every position whose `m` is not negative (every text token).
    public func alsoKept(_ ctx: LayerContext, scores m: ScoreMatrix, head g: Int) -> [Int] {
        guard ctx.options.fidelity == .code else { return [] }
        let cut = ctx.compressionPoint - ctx.budget.recent
        return (0 ..< cut).filter { m[g, $0] >= 0 }
    }

    public func shortcut(_ ctx: LayerContext) throws -> LayerDecision? {
        let b = ctx.budget
        let gate: [DecisionNote] = ctx.hasNonText ? [] : [.noImage]
        if !ctx.hasNonText, ctx.options.imageGate { return ctx.whole([.noImage]) }
        if let d = ctx.wholeIfWithinBudget(gqaNotes(ctx) + gate) { return d }
        if ctx.options.fidelity == .code && b.recent == 0 {
            throw PolicyError(
                .budget, policy: ctx.policyID, layer: ctx.layer,
                "text prior (official code) needs a recent window: \(b.recentFormula); use --fidelity intended or a larger recent ratio")
        }
        return nil
    }

    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] {
        var notes = gqaNotes(ctx)
        if !ctx.hasNonText { notes.append(.noImage) }
        if d.heads.contains(where: { $0.kept.count > d.nominal }) { notes.append(.overBudget) }
        return notes
    }
}
