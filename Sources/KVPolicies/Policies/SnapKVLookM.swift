import KVTrace

/// `snapkv-lookm`: the LOOK-M repository's SnapKV variant (`PoolingKVCache_LayerWise`,
/// `kv_mode snapkv`, built with kernel 5 and average pooling).
///
/// Window `w = r` (the recent window of the budget). In `code` fidelity, attention of the last `w`
/// queries over all `P` keys is recomputed from `q` and `k`: logits `q·k/√D` in `Double`, causal
/// inside the window, rounded to `Float` and softmaxed in `Float`. `u[h, j]` sums the window rows
/// for `j < P−w`; it is average-pooled (kernel 5, zero padding 2, divided by 5). Per head the top
/// `hh` are kept **in descending pooled score** (ties → lowest position), followed by the window
/// ascending. No merge, sinks or image awareness. Exits unchanged when `P < hh + r` (strictly; at
/// `P = hh + r` it runs and reorders the prefix). `r = 0` is an error in both modes.
/// `intended` fidelity may read the window rows from the recorded `attn` and computes in `Double`.
///
/// Based on SnapKV (arXiv 2404.14469), as in LOOK-M's official code (arXiv 2406.18139).
public struct SnapKVLookM: DeclaredPolicy {
    /// Default 5 (as the official wrapper builds it).
    public var kernel: Int
    /// Default `.avg`.
    public var pooling: Pooling
    public init(kernel: Int = 5, pooling: Pooling = .avg) {
        self.kernel = kernel
        self.pooling = pooling
    }
    public init(parameters p: ParameterValues) { self.init(kernel: p.int("kernel"), pooling: p.choice("pooling")) }

    public static let declaration = PolicyDeclaration(
        id: "snapkv-lookm", summary: "the LOOK-M repository's SnapKV: w = r, avg-pool k5, float softmax, descending-score order",
        paper: "SnapKV, arXiv 2404.14469, as in the official LOOK-M code", officialMode: "snapkv",
        parameters: [
            .integer("kernel", 5, in: 1 ... 1023, odd: true, "pooling kernel (odd)"), .choice("pooling", Pooling.avg, "avg | max"),
        ],
        requirements: [.queries, .keys], traits: [.usesRecent, .keepsExactlyC], color: 0x44AA99,
        rule: """
            The SnapKV variant of the LOOK-M repository (PoolingKVCache_LayerWise, kernel 5, average pooling). \
            The window is w = r, the budget's recent window. In code fidelity the attention of the last w \
            queries over all P keys is recomputed from q and k (logits q·k/√D, causal inside the window, \
            rounded to float and softmaxed in float). u[h, j] sums the window rows for j < P−w and is \
            average-pooled (kernel 5, zero padding, divided by 5). Per head the top hh are kept in descending \
            pooled score (ties to the lowest position), followed by the window ascending: the cache order is \
            not position order. No merge, sinks or image awareness. Exits unchanged only when P < hh + r \
            (at P = hh + r it runs and reorders the prefix). r = 0 is an error. Intended fidelity may read the \
            window rows from the recorded attn and computes in double.
            """)

    /// `u` and its pooled form per query head, `[H][P−w]`.
    public func windowScores(_ context: LayerContext) throws -> (window: ScoreMatrix, pooled: ScoreMatrix) {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, w = ctx.budget.recent
        let rows: RowBlock
        if ctx.options.fidelity == .code {
            guard ctx.tensors.queries != nil else {
                throw ctx.missing("q", "queries of the window rows \(P - w)..<\(P) (official SnapKV recomputes attention)")
            }
            guard ctx.tensors.keys != nil else { throw ctx.missing("k", "keys to recompute the window attention") }
            rows = try ctx.recomputedRows(P - w ..< P, scale: 1 / Double(ctx.headDim).squareRoot(), floatSoftmax: true)
        } else {
            rows = try ctx.rows(P - w ..< P)
        }
        let u = WindowScores.sum(rows, prefix: P - w)
        return (u, WindowScores.pool(u, kernel: kernel, pooling))
    }

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, b = ctx.budget
        if P < b.nominal { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: b.nominal, notes: [.earlyExit]) }
        guard b.recent > 0 else {
            throw PolicyError(.budget, policy: id, layer: ctx.layer, "the official SnapKV variant needs a window w = r: \(b.recentFormula)")
        }
        let pooled = try ctx.shared(
            ["snapkv-lookm", kernel, pooling, b.recent, ctx.options.fidelity.rawValue, ctx.options.gqa.rawValue] as [AnyHashable]
        ) {
            aggregateGQA(try windowScores(ctx).pooled, map: ctx.kvHeadOfQueryHead, kvHeads: ctx.kvHeads, ctx.options.gqa)
        }
        let w = b.recent
        let heads = try parallelMap(ctx.kvHeads) { g -> HeadDecision in
            let top = Selection.topK(Array(0 ..< P - w), k: b.heavy, score: { pooled[g, $0] })
            return HeadDecision(kept: top + Array(P - w ..< P), prefill: P)
        }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: b.nominal, prefill: P, notes: gqaNotes(ctx))
    }
}
