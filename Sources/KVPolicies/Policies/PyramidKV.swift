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
public struct PyramidKV: ReusesWorkAcrossBudgets {
    /// Default 20.
    public var beta: Int
    public var snap: SnapKV
    public init(beta: Int = 20, snap: SnapKV = SnapKV()) {
        self.beta = beta
        self.snap = snap
    }
    public var id: String { "pyramidkv" }
    public var requirements: Requirements { .windowRows }

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

    /// Reused across budgets: SnapKV's scores over window `min(w, P)` (only the layer's keep count depends on the budget).
    public func decide(_ context: LayerContext, reusing memo: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        guard P > C, let k = layerKeep(P: P, C: C, layer: ctx.layer, layers: ctx.info.shape.layers) else {
            return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C, notes: [.earlyExit])
        }
        var d = try SnapKV.select(ctx, keep: Array(repeating: max(0, k), count: ctx.kvHeads), window: snap.window, nominal: C) { w in
            try memo { try snap.scores(ctx, window: w) }
        }
        d.notes.append(DecisionNote("layer-budget", "layer \(ctx.layer) keeps \(max(0, k)) + window \(snap.window)"))
        return d
    }
}
