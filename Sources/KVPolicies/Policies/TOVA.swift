import KVTrace

/// `tova`: Token Omission Via Attention, applied once at `P`.
///
/// `score_j = mean over all query heads of A[h, P−1, j]` (the last prefill row); keep the top `C`
/// positions, shared by all heads of the layer, ascending. TOVA proper evicts one token per decode
/// step; a look-once replay applies only its prefill reduction. Does not use `--recent-share`.
/// Needs row `P−1` (or `q[P−1]` and `k`).
///
/// Based on TOVA (arXiv 2401.06104).
public struct TOVA: ScoringPolicy, DeclaredPolicy {
    public init() {}
    public init(parameters: ParameterValues) {}

    public static let declaration = PolicyDeclaration(
        id: "tova", summary: "TOVA: top C by head-mean attention of the last prefill row, shared by heads", paper: "TOVA, arXiv 2401.06104",
        requirements: .windowRows, traits: [.keepsExactlyC, .sharedByHeads], color: 0x332288,
        rule: """
            Score s[j] = mean over all query heads of A[h, P−1, j], the last prefill row; keeps the top C \
            positions, shared by all heads of the layer, ascending. TOVA proper evicts one token per decoding \
            step; a look-once replay applies only its reduction at P. --recent-share is not used. Needs row P−1 \
            (or q[P−1] and k).
            """)

    public var scoreKey: AnyHashable { "tova" }
    /// One row, shared by every head.
    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix {
        let P = ctx.compressionPoint
        let row = try ctx.rows(P - 1 ..< P)
        var score = ScoreMatrix(rows: 1, count: P)
        for h in 0 ..< row.heads { for j in 0 ..< P { score[0, j] += row[h, 0, j] } }
        for j in 0 ..< P { score[0, j] /= Double(row.heads) }
        return score
    }
    public func protected(_ ctx: LayerContext) -> Range<Int> { ctx.compressionPoint ..< ctx.compressionPoint }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int { ctx.budget.nominal }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] { [] }
}
