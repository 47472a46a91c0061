import KVTrace

/// `pyramidkv`: SnapKV scoring with a per-layer budget that shrinks with depth.
///
/// With `m = C − w` and the model's layer count `L` (integer division throughout, as in the
/// PyramidKV / KVCache-Factory code): if `P < C` the cache is unchanged; if `P < 2m` every layer
/// uses SnapKV's uniform budget; otherwise `lo = m / β`, `hi = 2m − lo` (if `hi ≥ P − w`:
/// `hi = P − w`, `lo = 2m − hi`), `step = (hi − lo) / (L − 1)`, and layer `l` keeps the top
/// `hi − l·step` by SnapKV score plus the window. `C_act` varies by layer.
///
/// Defaults: `β = 20`; window 32, kernel 7, max pooling as `snapkv`.
/// Based on PyramidKV (arXiv 2406.02069).
public struct PyramidKV: ScoringPolicy, DeclaredPolicy {
    /// Default 20.
    public var beta: Int
    public var snap: SnapKV
    public init(beta: Int = 20, snap: SnapKV = SnapKV()) {
        self.beta = beta
        self.snap = snap
    }
    public init(parameters p: ParameterValues) { self.init(beta: p.int("beta"), snap: SnapKV(parameters: p)) }

    public static let declaration = PolicyDeclaration(
        id: "pyramidkv", summary: "PyramidKV: SnapKV scores with layer budgets shrinking with depth", paper: "PyramidKV, arXiv 2406.02069",
        parameters: [.integer("beta", 20, in: 1 ... 1 << 20, "pyramid ratio β")] + SnapKV.parameters, requirements: .windowRows,
        traits: [], color: 0xCC79A7,
        rule: """
            SnapKV's scores with a per-layer budget that shrinks with depth. With m = C − w and the model's layer \
            count L (integer division throughout, as in the PyramidKV and KVCache-Factory code): if P < C the \
            cache is unchanged; if P < 2m every layer uses SnapKV's uniform budget; otherwise lo = m / β, \
            hi = 2m − lo (if hi ≥ P − w: hi = P − w, lo = 2m − hi), step = (hi − lo) / (L − 1), and layer l \
            keeps the top hi − l·step by SnapKV score plus the window. The kept count varies by layer; \
            the mean over layers is near C.
            """)

    /// The number of prefix positions layer `l` keeps (excluding the window), or nil for "unchanged".
    public func layerKeep(P: Int, C: Int, layer l: Int, layers L: Int) -> Int? {
        let w = snap.window
        if P < C { return nil }
        let m = C - w
        if P < 2 * m { return m }
        var lo = m / max(beta, 1)
        var hi = 2 * m - lo
        if hi >= P - w {
            hi = P - w
            lo = 2 * m - hi
        }
        let step = L > 1 ? (hi - lo) / (L - 1) : 0
        return hi - l * step
    }

    /// SnapKV's scores (shared with `snapkv` and `adakv` of the same window, kernel and pooling).
    public var scoreKey: AnyHashable { snap.scoreKey }
    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix { try snap.scores(ctx) }
    public func sharedScores(_ ctx: LayerContext) throws -> ScoreMatrix { try snap.sharedScores(ctx) }
    public func protected(_ ctx: LayerContext) -> Range<Int> { snap.protected(ctx) }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int {
        let C = ctx.budget.nominal
        return max(0, layerKeep(P: ctx.compressionPoint, C: C, layer: ctx.layer, layers: ctx.info.shape.layers) ?? C)
    }
    public func shortcut(_ ctx: LayerContext) throws -> LayerDecision? {
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        guard P > C, layerKeep(P: P, C: C, layer: ctx.layer, layers: ctx.info.shape.layers) != nil else { return ctx.whole([.earlyExit]) }
        return SnapKV.clamped(ctx, window: snap.window).map { d in
            var d = d
            d.notes.append(layerNote(ctx))
            return d
        }
    }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] {
        SnapKV.windowNotes(ctx, window: snap.window) + [layerNote(ctx)]
    }
    func layerNote(_ ctx: LayerContext) -> DecisionNote {
        DecisionNote("layer-budget", "layer \(ctx.layer) keeps \(keepCount(ctx, head: 0)) + window \(snap.window)")
    }
}
