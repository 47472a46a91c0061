import KVTrace

/// `knorm`: key-norm eviction. `score_j = −‖K[g, j]‖₂`: keep the `C` keys of smallest L2 norm
/// per KV head, ascending (ties → lowest position). Needs no attention; reads `k_norm` or `k`.
/// `skipLayers` keeps those layers whole (KVCache-Factory skips 0 and 1); by default every layer
/// is compressed, as in kvpress. Does not use `--recent-share`.
///
/// Based on "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression" (arXiv 2406.11430).
public struct KNorm: ScoringPolicy, DeclaredPolicy {
    /// Layers kept whole.
    public var skipLayers: [Int]
    public init(skipLayers: [Int] = []) { self.skipLayers = skipLayers }
    public init(parameters p: ParameterValues) { self.init(skipLayers: p.ints("skip-layers")) }

    public static let declaration = PolicyDeclaration(
        id: "knorm", summary: "keep the C keys of smallest L2 norm per KV head", paper: "KNorm, arXiv 2406.11430",
        parameters: [ParameterSpec("skip-layers", .integers(0 ... 1 << 16), default: .integers([]), "layers kept whole, e.g. 0,1")],
        requirements: .keys, traits: [.keepsExactlyC], color: 0x88CCEE,
        rule: """
            Score −‖K[g, j]‖₂: keep the C keys of smallest L2 norm per KV head, ascending (ties to the lowest \
            position). Needs no attention; reads k_norm, else k. `skip-layers` keeps those layers whole \
            (KVCache-Factory skips layers 0 and 1); by default every layer is compressed, as in kvpress. \
            --recent-share is not used.
            """)

    public var scoreKey: AnyHashable { "knorm" }
    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix {
        var s = try ctx.keyNorms()
        for i in s.values.indices { s.values[i] = -s.values[i] }
        return s
    }
    public func protected(_ ctx: LayerContext) -> Range<Int> { ctx.compressionPoint ..< ctx.compressionPoint }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int { ctx.budget.nominal }
    public func shortcut(_ ctx: LayerContext) throws -> LayerDecision? {
        if let d = ctx.wholeIfWithinBudget() { return d }
        if skipLayers.contains(ctx.layer) {
            return ctx.whole([DecisionNote("skipped-layer", "layer \(ctx.layer) is kept whole (--skip-layers)")])
        }
        return nil
    }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] { [] }
}
