import KVTrace

/// `oracle`: the upper bound by true future attention. Per (layer, KV head `g`), keeps the top `C`
/// prefix positions by `Σ_{i∈E} Σ_{h: g(h)=g} A[h, i, j] / Σ_{j'≤i} A[h, i, j']`: the attention
/// the evaluation rows `E` (recorded rows `i ≥ P`) give them, each row divided by its total.
/// At the same kept count per (layer, KV head) no eviction policy has a higher attention recall
/// (see docs/metrics.md). Not realisable: it reads the future. Needs rows `i ≥ P` (`attn`, or `q` and `k`).
public struct Oracle: ScoringPolicy, DeclaredPolicy {
    /// Per-KV-head kept counts to match (another policy's actual counts), else `C` in every head.
    public var counts: [Int]?
    public init(counts: [Int]? = nil) { self.counts = counts }
    public init(parameters: ParameterValues) { self.init() }

    public static let declaration = PolicyDeclaration(
        id: "oracle", summary: "upper bound: top C by true future attention per KV head (reads the future)",
        paper: "an upper bound, not a method", requirements: .future, traits: [.keepsExactlyC, .reference], color: 0x7F7F7F,
        rule: """
            Per (layer, KV head g), keeps the top C prefix positions by Σ_{i∈E} Σ_{h: g(h)=g} A[h, i, j] / \
            Σ_{j'≤i} A[h, i, j']: the attention the evaluation rows E give them, each row divided by its total. \
            E are the trace's rows i ≥ P when it records them, else the proxy rows the metrics use (the last \
            prefill rows; the result is then marked proxy). At the same kept count per (layer, KV head) no \
            eviction policy has a higher attention recall on those rows. Not realisable: it reads the rows it is \
            evaluated on.
            """)

    public var scoreKey: AnyHashable { "oracle" }

    /// Rows `i ≥ P` when the trace records them, else the proxy rows (`options.proxyRows`, the last
    /// prefill rows the metrics evaluate).
    public func scores(_ context: LayerContext) throws -> ScoreMatrix {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, qr = ctx.info.shape.queryRows
        let start = max(P, qr.lowerBound)
        let span: Range<Int>
        if start < qr.upperBound {
            span = start ..< qr.upperBound
        } else if let w = ctx.options.proxyRows, w >= 1, qr.upperBound >= 1 {
            let lower = max(P - w, qr.lowerBound, 0)
            span = lower ..< max(min(P, qr.upperBound), lower)
            guard !span.isEmpty else { throw noRows(ctx) }
        } else {
            throw noRows(ctx)
        }
        let rows = try ctx.rows(span)
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

    func noRows(_ ctx: LayerContext) -> PolicyError {
        let qr = ctx.info.shape.queryRows
        return PolicyError(
            .missingInput, policy: id, layer: ctx.layer, tensor: "attn",
            "needs evaluation rows: future rows i ≥ \(ctx.compressionPoint) or proxy rows (attn, or q with k); the trace records rows \(qr.lowerBound)..<\(qr.upperBound)"
        )
    }

    public func sharedScores(_ ctx: LayerContext) throws -> ScoreMatrix {
        try ctx.shared(["oracle", ctx.options.proxyRows ?? -1] as [AnyHashable]) { try scores(ctx) }
    }
    public func protected(_ ctx: LayerContext) -> Range<Int> { ctx.compressionPoint ..< ctx.compressionPoint }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int { min(ctx.compressionPoint, counts?[g] ?? ctx.budget.nominal) }
    public func shortcut(_ ctx: LayerContext) throws -> LayerDecision? { counts == nil ? ctx.wholeIfWithinBudget() : nil }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] { [] }
}
