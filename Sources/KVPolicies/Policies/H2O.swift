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
public struct H2O: ScoringPolicy {
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
    /// Forced sink positions `0 ..< sinks` (0 for `h2o`, 4 for `h2o-sinks`).
    public var sinks: Int
    public var customID: String?

    public init(score: Score = .sum, sinks: Int = 0, id: String? = nil) {
        self.score = score
        self.sinks = sinks
        self.customID = id
    }

    public var id: String { customID ?? (sinks > 0 ? "h2o-sinks" : "h2o") }
    public var requirements: Requirements { .colsum }
    /// The scores read the column sums, `P`, `--gqa` and `sinks`, never the budget.
    public var scoresIndependentOfBudget: Bool { true }

    public func scores(_ context: LayerContext) throws -> ScoreMatrix {
        var s = try context.colsum()
        let P = context.compressionPoint
        switch score {
        case .sum: break
        case .mean: for i in s.values.indices { s.values[i] /= Double(P) }
        case .normalized: for h in 0 ..< s.rows { for j in 0 ..< P { s[h, j] /= Double(P - j) } }
        }
        var g = aggregateGQA(s, map: context.kvHeadOfQueryHead, kvHeads: context.kvHeads, context.options.gqa)
        // Sinks are set to +∞ and count towards hh; among themselves, lowest position first.
        for h in 0 ..< g.rows { for j in 0 ..< min(sinks, P) { g[h, j] = .infinity } }
        return g
    }
}

/// `h2o-sinks`: the selection step of the official `pivot_merge`, `avg_merge` and
/// `weighted_merge` classes: `h2o` with positions 0–3 forced (score +∞), counted in `hh`.
/// If `hh < 4`, keeps `0 ..< hh` (the official result depends on an unstable sort there).
///
/// Based on LOOK-M's official code (arXiv 2406.18139).
public func H2OSinks(score: H2O.Score = .sum, sinks: Int = 4) -> H2O { H2O(score: score, sinks: sinks, id: "h2o-sinks") }
