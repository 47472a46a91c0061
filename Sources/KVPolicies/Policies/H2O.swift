import KVTrace

/// `h2o`: Heavy-Hitter Oracle as the official LOOK-M code runs it at prefill
/// (`H2OKVCache_LayerWise`, `kv_mode h2o`).
///
/// Score `s[h, j] = Σ_{i<P} A[h, i, j]` (accumulated attention). Per KV head, keep the top `hh` of
/// `s[0 ..< P−r]` plus the recent window `[P−r, P)`, ascending; evicted tokens are dropped.
/// No sinks, no image awareness. `P ≤ hh + r` keeps the cache whole; `r = 0` works.
/// Ties go to the lowest position. `C_act = hh + r`.
///
/// Based on H2O (arXiv 2306.14048), as in LOOK-M's official code (arXiv 2406.18139).
public struct H2O: ScoringPolicy, DeclaredPolicy {
    /// How the column sums are turned into scores.
    public enum Score: String, Sendable, Hashable, CaseIterable {
        /// `s[h, j]` (official).
        case sum
        /// `s[h, j] / P`: the shadowed `MeanH2OKVCache_LayerWise`; ranks like `sum`.
        case mean
        /// `s[h, j] / (P − j)`: count-normalised (kvpress ObservedAttention); a KVScope addition.
        case normalized
    }
    /// Default `.sum`.
    public var score: Score
    /// Forced sink positions `0 ..< sinks` (0 for `h2o`, 4 for `h2o-sinks`), counted in `hh`.
    public var sinks: Int

    public init(score: Score = .sum, sinks: Int = 0) {
        self.score = score
        self.sinks = sinks
    }

    public init(parameters p: ParameterValues) { self.init(score: p.choice("score")) }

    static let scoreParameter = ParameterSpec.choice("score", Score.sum, "sum | mean | normalized (s/(P−j), a KVScope addition)")

    public static let declaration = PolicyDeclaration(
        id: "h2o", summary: "per-head top-hh of accumulated attention + recent window (no sinks)",
        paper: "H2O, arXiv 2306.14048 (as run by the official LOOK-M code)", officialMode: "h2o",
        parameters: [scoreParameter], requirements: .colsum, traits: [.usesRecent, .keepsExactlyC], color: 0x0072B2,
        rule: """
            Score s[h, j] = Σ_{i<P} A[h, i, j], the attention position j received from every prefill row; \
            combined over the query heads of each KV head by --gqa. Per KV head, keep the top hh of s over \
            the positions 0 ..< P−r, plus the recent window P−r ..< P, in ascending order. Evicted tokens are \
            dropped. Ties go to the lowest position. P ≤ hh + r keeps the cache whole; r = 0 works. \
            `score=mean` divides by P (ranks like sum); `score=normalized` divides by P − j, the number of rows \
            that could attend to j (an addition of KVScope, as in kvpress's observed-attention score).
            """)

    public var scoreKey: AnyHashable { [score.rawValue, String(sinks)] }

    public func scores(_ context: LayerContext) throws -> ScoreMatrix {
        let P = context.compressionPoint
        var g: ScoreMatrix
        switch score {
        case .sum: g = try context.aggregatedColsum()
        case .mean:
            var s = try context.colsum()
            for i in s.values.indices { s.values[i] /= Double(P) }
            g = aggregateGQA(s, map: context.kvHeadOfQueryHead, kvHeads: context.kvHeads, context.options.gqa)
        case .normalized:
            g = aggregateGQA(try context.meanReceived(), map: context.kvHeadOfQueryHead, kvHeads: context.kvHeads, context.options.gqa)
        }
        // Sinks are set to +∞ and count towards hh; among themselves, lowest position first.
        for h in 0 ..< g.rows { for j in 0 ..< min(sinks, P) { g[h, j] = .infinity } }
        return g
    }
}

/// `h2o-sinks`: the selection step of the official `pivot_merge`, `avg_merge` and
/// `weighted_merge` classes: `h2o` with positions `0 ..< sinks` (default 4) forced (score +∞),
/// counted in `hh`. If `hh < sinks`, keeps `0 ..< hh` (the official result depends on an unstable
/// sort there).
///
/// Based on LOOK-M's official code (arXiv 2406.18139).
public struct H2OSinks: ScoringPolicy, DeclaredPolicy {
    public var h2o: H2O
    public init(score: H2O.Score = .sum, sinks: Int = 4) { h2o = H2O(score: score, sinks: sinks) }
    public init(parameters p: ParameterValues) { self.init(score: p.choice("score"), sinks: p.int("sinks")) }

    public static let declaration = PolicyDeclaration(
        id: "h2o-sinks", summary: "h2o with positions 0–3 forced (the selection step of the official merge classes)",
        paper: "LOOK-M, arXiv 2406.18139 (official code)",
        parameters: [H2O.scoreParameter, .integer("sinks", 4, in: 0 ... 1 << 20, "forced sink positions")],
        requirements: .colsum, traits: [.usesRecent, .keepsExactlyC], color: 0x56B4E9,
        rule: """
            h2o with the first `sinks` positions (default 4) forced into every head: their score is +∞ and \
            they count towards hh. This is the selection step of the official pivot_merge, avg_merge and \
            weighted_merge classes. If hh < sinks, keeps 0 ..< hh (the official result depends on an \
            unstable sort there).
            """)

    public var scoreKey: AnyHashable { h2o.scoreKey }
    public func scores(_ context: LayerContext) throws -> ScoreMatrix { try h2o.scores(context) }
}
