import KVTrace

/// `fastv`: FastV-style image-token pruning.
///
/// At layer `K` rank the image tokens by `φ_j = mean over heads of A[h, P−1, j]` (the last prefill
/// row, as FastV's released code; `rows = .all` averages all prefill rows, as the paper's text).
/// Every layer `> K` keeps all text and the best `Int(n_img·(1 − R))` image tokens, shared by all
/// heads and later layers; layers `≤ K` keep everything. With `--budget b` and no explicit drop
/// ratio, `R = 1 − b`. FastV prunes hidden states; replay drops only KV entries. Refuses traces
/// that did not record layer `K`.
///
/// Defaults: `K = 2`, `R = 0.5`. Based on FastV (arXiv 2403.06764).
public struct FastV: DeclaredPolicy {
    public enum Rows: String, Sendable, Hashable, CaseIterable { case last, all }
    /// Default 2.
    public var layer: Int
    /// nil → `1 − b` under `--budget b`, else 0.5.
    public var dropRatio: Double?
    /// Default `.last`.
    public var rows: Rows
    public init(layer: Int = 2, dropRatio: Double? = nil, rows: Rows = .last) {
        self.layer = layer
        self.dropRatio = dropRatio
        self.rows = rows
    }
    public init(parameters p: ParameterValues) {
        self.init(layer: p.int("fastv-layer"), dropRatio: p.real("drop-ratio"), rows: p.choice("fastv-rows"))
    }

    public static let declaration = PolicyDeclaration(
        id: "fastv", summary: "FastV: after layer K drop the lowest R of image tokens by attention at K", paper: "FastV, arXiv 2403.06764",
        parameters: [
            .integer("fastv-layer", 2, in: 0 ... 1 << 16, "layer K"),
            .real("drop-ratio", nil, in: 0 ... 1, "R (default 1 − b under --budget b, else 0.5)"),
            .choice("fastv-rows", Rows.last, "last | all"),
        ],
        requirements: [.windowRows, .spans, .otherLayers], traits: [.sharedByHeads], color: 0xDDCC77,
        rule: """
            At layer K rank the image tokens by φ_j = Σ over heads of A[h, P−1, j] (the last prefill row, as \
            FastV's released code; fastv-rows=all sums all prefill rows, as the paper's text). Every layer \
            after K keeps all text and the best ⌊n_img·(1 − R)⌋ image tokens, shared by all heads and later \
            layers; layers up to K keep everything. Without an explicit drop ratio, R = 1 − b under --budget b \
            (else 0.5). FastV prunes hidden states; a replay drops only KV entries. Refuses traces that did not \
            record layer K.
            """)

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint
        let R = dropRatio ?? ctx.budget.spec.fraction.map { 1 - $0 } ?? 0.5
        guard R >= 0, R <= 1 else { throw PolicyError(.parameter, policy: id, "drop ratio must be in [0, 1], got \(R)") }
        if ctx.layer <= layer {
            return .whole(
                layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: ctx.budget.nominal,
                notes: [DecisionNote("fastv-before", "layers ≤ \(layer) keep everything")])
        }
        let text = ctx.isText
        let images = (0 ..< P).filter { !text[$0] }
        let keep = Int(Double(images.count) * (1 - R))
        var source = ctx
        if ctx.tensors.layer != layer {
            guard let trace = ctx.trace, trace.info.recordedLayers.contains(layer) else {
                throw PolicyError(
                    .missingInput, policy: id, layer: ctx.layer, tensor: "attn",
                    "needs the attention of layer \(layer) (--fastv-layer), which the trace did not record")
            }
            source = LayerContext(
                info: ctx.info, tensors: try trace.layer(layer), budget: ctx.budget.spec, options: ctx.options,
                compressionPoint: P, trace: trace
            ).named(id)
        }
        let block = rows == .last ? try source.rows(P - 1 ..< P) : try source.rows(0 ..< P)
        var phi = [Double](repeating: 0, count: P)
        for h in 0 ..< block.heads { for i in 0 ..< block.positions.count { for j in 0 ..< P { phi[j] += block[h, i, j] } } }
        let chosen = Selection.topK(images, k: keep, score: { phi[$0] })
        let kept = ((0 ..< P).filter { text[$0] } + chosen).sorted()
        let head = HeadDecision(kept: kept, prefill: P)
        return LayerDecision(
            layer: ctx.layer, heads: Array(repeating: head, count: ctx.kvHeads), nominal: ctx.budget.nominal, prefill: P,
            notes: [DecisionNote("fastv", "kept \(keep) of \(images.count) image tokens (R = \(R)) by layer \(layer)")])
    }
}
