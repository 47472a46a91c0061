import KVTrace

/// Pooling of window scores along positions (stride 1, padding `⌊kernel/2⌋`).
public enum Pooling: String, Sendable, Hashable, Codable, CaseIterable {
    /// Max over the in-range terms (padding `−∞` never wins).
    case max
    /// Sum of the in-range terms divided by the kernel size (zero padding).
    case avg
}

/// SnapKV's window score: `u[h, j] = Σ_{i∈[P−w,P)} A[h, i, j]` for `j < P−w`, pooled per query head.
enum WindowScores {
    /// `u` per query head `[H][P−w]` from the given rows.
    static func sum(_ rows: RowBlock, prefix n: Int) -> ScoreMatrix {
        var u = ScoreMatrix(rows: rows.heads, count: n)
        rows.values.withUnsafeBufferPointer { src in
            for h in 0 ..< rows.heads {
                for i in 0 ..< rows.positions.count {
                    let r = src.baseAddress! + rows.offset(h, i)
                    for j in 0 ..< n { u.values[h * n + j] += r[j] }
                }
            }
        }
        return u
    }

    static func pool(_ u: ScoreMatrix, kernel: Int, _ mode: Pooling) -> ScoreMatrix {
        let n = u.count, half = kernel / 2
        var out = ScoreMatrix(rows: u.rows, count: n)
        for h in 0 ..< u.rows {
            for j in 0 ..< n {
                let lo = Swift.max(0, j - half), hi = Swift.min(n - 1, j + half)
                switch mode {
                case .max:
                    var m = -Double.infinity
                    for t in lo ... hi { m = Swift.max(m, u[h, t]) }
                    out[h, j] = m
                case .avg:
                    var s = 0.0
                    for t in lo ... hi { s += u[h, t] }
                    out[h, j] = s / Double(kernel)
                }
            }
        }
        return out
    }
}

/// `snapkv`: SnapKV proper.
///
/// Score `u[h, j] = Σ_{i∈[P−w,P)} A[h, i, j]` for `j < P−w`, pooled along `j` per query head
/// (stride 1, padding `⌊kernel/2⌋`; max pads with −∞, avg pads with 0 and divides by the kernel),
/// then combined over each KV head's query heads (`--gqa`). Keep the top `C − w` prefix positions
/// per KV head plus the window `[P−w, P)`, ascending. If `C ≤ w` the window is clamped to the last
/// `C` positions (note `window-clamped`). Does not use `--recent-share`. Window rows come from the
/// recorded `attn`, else are recomputed from `q` and `k` (`Double` softmax).
///
/// Defaults: window 32, kernel 7, max pooling (SnapKV's LongBench settings `…_w32_k7_maxpool`).
/// Based on SnapKV (arXiv 2404.14469).
public struct SnapKV: ReusesWorkAcrossBudgets {
    /// Observation window `w` (default 32).
    public var window: Int
    /// Pooling kernel, odd (default 7).
    public var kernel: Int
    /// Default `.max`.
    public var pooling: Pooling
    public init(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max) {
        self.window = window
        self.kernel = kernel
        self.pooling = pooling
    }
    public var id: String { "snapkv" }
    public var requirements: Requirements { .windowRows }

    /// Pooled, GQA-combined scores `[KVH][P−w]` for window `w`.
    public func scores(_ ctx: LayerContext, window w: Int) throws -> ScoreMatrix {
        let P = ctx.compressionPoint
        let rows = try ctx.rows(P - w ..< P)
        let u = WindowScores.sum(rows, prefix: P - w)
        let pooled = WindowScores.pool(u, kernel: kernel, pooling)
        return aggregateGQA(pooled, map: ctx.kvHeadOfQueryHead, kvHeads: ctx.kvHeads, ctx.options.gqa)
    }

    /// Reused across budgets: the pooled window scores (the window `min(w, P)` is the same for every budget).
    public func decide(_ context: LayerContext, reusing memo: (() throws -> ScoreMatrix) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        guard kernel >= 1, kernel % 2 == 1 else { throw PolicyError(.parameter, policy: id, "kernel must be odd and ≥ 1, got \(kernel)") }
        guard window >= 1 else { throw PolicyError(.parameter, policy: id, "window must be ≥ 1, got \(window)") }
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        if P <= C { return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: C, notes: [.earlyExit]) }
        return try Self.select(ctx, keep: Array(repeating: C - window, count: ctx.kvHeads), window: window, nominal: C) { w in
            try memo { try scores(ctx, window: w) }
        }
    }

    /// Keeps the top `keep[g]` prefix positions by `score` plus the window, ascending; clamps the
    /// window to `C` when `C ≤ w`.
    static func select(_ ctx: LayerContext, keep: [Int], window: Int, nominal C: Int,
                       scores: (Int) throws -> ScoreMatrix) throws -> LayerDecision {
        let P = ctx.compressionPoint
        var notes = gqaNotes(ctx)
        if C <= window {
            notes.append(DecisionNote("window-clamped", "C = \(C) ≤ window \(window): kept the last \(C) positions"))
            let head = HeadDecision(kept: Array(P - C ..< P), prefill: P)
            return LayerDecision(layer: ctx.layer, heads: Array(repeating: head, count: ctx.kvHeads), nominal: C, prefill: P, notes: notes)
        }
        let w = min(window, P)
        let s = try scores(w)
        if ctx.tensors.attention == nil || !(ctx.info.shape.queryRows.lowerBound <= P - w && ctx.info.shape.queryRows.upperBound >= P) {
            notes.append(DecisionNote("recomputed-rows", "window rows recomputed from q and k"))
        }
        let heads = try parallelMap(ctx.kvHeads) { g -> HeadDecision in
            let top = Selection.topK(Array(0 ..< P - w), k: max(0, keep[g]), score: { s[g, $0] })
            return HeadDecision(kept: (top + Array(P - w ..< P)).sorted(), prefill: P)
        }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: C, prefill: P, notes: notes)
    }
}
