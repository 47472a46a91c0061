import KVTrace

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
public struct SnapKV: ScoringPolicy, DeclaredPolicy {
    /// Observation window `w` (default 32).
    public var window: Int
    /// Pooling kernel, odd (default 7).
    public var kernel: Int
    /// Default `.max`.
    public var pooling: Pooling
    /// Combine each KV head's query heads before pooling instead of after (default false). The Ada-KV
    /// authors' GQA path does so; it differs from pooling first only for a mean combined with max pooling.
    public var combineBeforePooling: Bool
    public init(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max, combineBeforePooling: Bool = false) {
        self.window = window
        self.kernel = kernel
        self.pooling = pooling
        self.combineBeforePooling = combineBeforePooling
    }
    public init(parameters p: ParameterValues) {
        self.init(window: p.int("window"), kernel: p.int("kernel"), pooling: p.choice("pooling"))
    }

    /// The parameters of SnapKV and of the policies that score like it.
    static let parameters: [ParameterSpec] = [
        .integer("window", 32, in: 1 ... 1 << 20, "observation window w (the last w prefill rows; always kept)"),
        .integer("kernel", 7, in: 1 ... 1023, odd: true, "pooling kernel (odd)"),
        .choice("pooling", Pooling.max, "max | avg"),
    ]

    public static let declaration = PolicyDeclaration(
        id: "snapkv", summary: "SnapKV: top C − w by pooled window attention + the window", paper: "SnapKV, arXiv 2404.14469",
        parameters: parameters, requirements: .windowRows, traits: [.keepsExactlyC], color: 0x009E73,
        rule: """
            Score u[h, j] = Σ_{i ∈ [P−w, P)} A[h, i, j] for j < P−w: the attention the last w prefill rows (the \
            observation window) give each earlier position, pooled along j per query head (stride 1, padding \
            ⌊kernel/2⌋; max pooling pads with −∞, avg pooling pads with 0 and divides by the kernel), then \
            combined per KV head (--gqa). Keep the top C − w positions per KV head plus the window, ascending. \
            If C ≤ w the window is clamped to the last C positions (note window-clamped). --recent-share is not \
            used. Window rows come from the recorded attn, else are recomputed from q and k. Defaults w = 32, \
            kernel 7, max pooling (SnapKV's LongBench settings).
            """)

    public var scoreKey: AnyHashable {
        [AnyHashable(window), AnyHashable(kernel), AnyHashable(pooling), AnyHashable(combineBeforePooling)]
    }

    /// Pooled, GQA-combined scores `[KVH][P−w]` for window `w`.
    public func scores(_ ctx: LayerContext, window w: Int) throws -> ScoreMatrix {
        let P = ctx.compressionPoint
        let rows = try ctx.rows(P - w ..< P)
        let u = WindowScores.sum(rows, prefix: P - w)
        func combine(_ s: ScoreMatrix) -> ScoreMatrix { aggregateGQA(s, map: ctx.kvHeadOfQueryHead, kvHeads: ctx.kvHeads, ctx.options.gqa) }
        if combineBeforePooling { return WindowScores.pool(combine(u), kernel: kernel, pooling) }
        return combine(WindowScores.pool(u, kernel: kernel, pooling))
    }

    /// Over the window `min(w, P)`, the same for every budget.
    public func scores(_ ctx: LayerContext) throws -> ScoreMatrix { try scores(ctx, window: min(window, ctx.compressionPoint)) }

    public func protected(_ ctx: LayerContext) -> Range<Int> { max(0, ctx.compressionPoint - window) ..< ctx.compressionPoint }
    public func keepCount(_ ctx: LayerContext, head g: Int) -> Int { ctx.budget.nominal - window }
    public func shortcut(_ ctx: LayerContext) throws -> LayerDecision? {
        if let d = ctx.wholeIfWithinBudget() { return d }
        return Self.clamped(ctx, window: window)
    }
    public func notes(_ ctx: LayerContext, _ d: LayerDecision) -> [DecisionNote] { Self.windowNotes(ctx, window: window) }

    /// `C ≤ w`: the last `C` positions in every head (note `window-clamped`), else nil.
    static func clamped(_ ctx: LayerContext, window: Int) -> LayerDecision? {
        let P = ctx.compressionPoint, C = ctx.budget.nominal
        guard C <= window else { return nil }
        return ctx.sameInEveryHead(
            kept: Array(P - C ..< P),
            notes: gqaNotes(ctx) + [
                DecisionNote("window-clamped", "C = \(C) ≤ window \(window): kept the last \(C) positions")
            ])
    }

    /// The GQA note, and a note when the window rows were recomputed from `q` and `k`.
    static func windowNotes(_ ctx: LayerContext, window: Int) -> [DecisionNote] {
        let P = ctx.compressionPoint, w = min(window, P), qr = ctx.info.shape.queryRows
        var notes = gqaNotes(ctx)
        if ctx.tensors.attention == nil || !(qr.lowerBound <= P - w && qr.upperBound >= P) {
            notes.append(DecisionNote("recomputed-rows", "window rows recomputed from q and k"))
        }
        return notes
    }
}
