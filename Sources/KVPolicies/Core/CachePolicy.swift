import KVTrace

/// The trace inputs a policy reads (docs/policy-catalogue.md, "inputs needed").
public struct Requirements: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `attn_colsum`, or `attn` rows `0 ..< P`.
    public static let colsum = Requirements(rawValue: 1 << 0)
    /// Some prefill `attn` rows (a window), or `q` for them plus `k`.
    public static let windowRows = Requirements(rawValue: 1 << 1)
    /// `q` rows plus `k` (recomputed attention).
    public static let queries = Requirements(rawValue: 1 << 2)
    public static let keys = Requirements(rawValue: 1 << 3)
    public static let values = Requirements(rawValue: 1 << 4)
    /// Image spans / token modality.
    public static let spans = Requirements(rawValue: 1 << 5)
    /// Evaluation rows `i ≥ P`.
    public static let future = Requirements(rawValue: 1 << 6)
    /// Another layer of the trace.
    public static let otherLayers = Requirements(rawValue: 1 << 7)

    public var description: String {
        let names: [(Requirements, String)] = [
            (.colsum, "colsum"), (.windowRows, "window rows"), (.queries, "q"),
            (.keys, "k"), (.values, "v"), (.spans, "spans"), (.future, "future rows"),
            (.otherLayers, "other layers"),
        ]
        let s = names.filter { contains($0.0) }.map(\.1)
        return s.isEmpty ? "—" : s.joined(separator: ", ")
    }
}

/// A look-once KV-cache policy: decides, per layer, what each KV head keeps (and merges).
///
/// Decisions are values; `DecisionApplier` turns them into compressed keys and values.
/// Work that several budgets or policies need (scores, norms, merge assignments) goes through
/// `LayerContext.shared(_:_:)`, so that the engine computes it once per layer.
public protocol CachePolicy: Sendable {
    /// The id results and messages use ("h2o", "lookm", "h2o+pivotal").
    var id: String { get }
    /// Tensors and rows it reads.
    var requirements: Requirements { get }
    /// Decides for one layer.
    func decide(_ context: LayerContext) throws -> LayerDecision
    /// Per KV head, the kept set whose evicted tokens this policy's merge will search under
    /// `context` (an empty set: none for that head), or nil when it does not merge (the default).
    /// The engine gathers these for every run of a layer (`MergePlan`) so that each head's merge
    /// search serves all of them in one pass; decisions are the same with or without a plan.
    func plannedMerge(_ context: LayerContext) -> [[Int]]?
}

extension CachePolicy {
    public func plannedMerge(_ context: LayerContext) -> [[Int]]? { nil }

    /// Decides for one layer under each of `budgets` (the budget of `context` is ignored): element
    /// `i` is exactly `Result { try decide(context.with(budget: budgets[i])) }`, error included.
    /// Work that does not depend on the budget is shared through the context's cache (one is made
    /// for the call when the context has none).
    public func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>] {
        let ctx = context.cache == nil ? context.sharing(WorkCache()) : context
        return budgets.map { b in Result { try decide(ctx.with(budget: b)) } }
    }

    /// `decisions(_:budgets:)`, throwing the first error.
    public func decide(_ context: LayerContext, budgets: [BudgetSpec]) throws -> [LayerDecision] {
        try decisions(context, budgets: budgets).map { try $0.get() }
    }
}

/// A policy that only scores positions; selection, ties, cache order, early exits and the
/// decision are written once here (kvpress's "implement score, get selection").
///
/// Per KV head `g`, keeps the top `keepCount(g)` candidates `0 ..< protected.lowerBound` by
/// `scores[g]` (ties to the lowest position), plus `alsoKept`, plus the protected positions, in
/// ascending order. Scores go through the layer's work cache under `scoreKey`, so every budget and
/// every policy with the same key computes them once per layer.
public protocol ScoringPolicy: CachePolicy {
    /// Scores `[KVH][n]` (or one row shared by every head), higher = keep, for positions `0 ..< n`
    /// with `n ≥` the protected range's lower bound. Must not read the budget.
    func scores(_ context: LayerContext) throws -> ScoreMatrix
    /// Everything `scores` depends on besides the layer and `P` (the parameters and run options it
    /// reads); policies with equal keys share scores.
    var scoreKey: AnyHashable { get }
    /// `scores` through the layer's work cache. Default: keyed by the type, `scoreKey` and the run
    /// options that scores read (`--gqa`, `--fidelity`); a wrapper may forward to its scorer's.
    func sharedScores(_ context: LayerContext) throws -> ScoreMatrix
    /// Positions kept in every head regardless of score. Default: the recent window `r`.
    func protected(_ context: LayerContext) -> Range<Int>
    /// How many candidates head `g` keeps. Default: `hh`.
    func keepCount(_ context: LayerContext, head g: Int) -> Int
    /// Positions kept besides the top candidates (default none).
    func alsoKept(_ context: LayerContext, scores: ScoreMatrix, head g: Int) -> [Int]
    /// A decision that needs no scores (early exit). Default: `P ≤ C` keeps the cache whole.
    func shortcut(_ context: LayerContext) throws -> LayerDecision?
    /// Notes on the decision. Default: the GQA extension note when `KVH ≠ H`.
    func notes(_ context: LayerContext, _ decision: LayerDecision) -> [DecisionNote]
    /// When non-nil, decisions go through the layer's work cache under this key with the type, the
    /// resolved budget and the run options, so that runs deciding alike (a LOOK-M merge variant and
    /// its text prior at one budget) select once. It must name everything the hooks read besides
    /// those, the layer and `P`. Default nil: every call selects afresh.
    var decisionKey: AnyHashable? { get }
}

extension ScoringPolicy {
    public func protected(_ context: LayerContext) -> Range<Int> {
        let P = context.compressionPoint
        return max(0, P - context.budget.recent) ..< P
    }
    public func keepCount(_ context: LayerContext, head g: Int) -> Int { context.budget.heavy }
    public func alsoKept(_ context: LayerContext, scores: ScoreMatrix, head g: Int) -> [Int] { [] }
    public func shortcut(_ context: LayerContext) throws -> LayerDecision? { context.wholeIfWithinBudget() }
    public func notes(_ context: LayerContext, _ decision: LayerDecision) -> [DecisionNote] { gqaNotes(context) }
    public var decisionKey: AnyHashable? { nil }

    /// The scores through the layer's work cache.
    public func sharedScores(_ context: LayerContext) throws -> ScoreMatrix {
        try context.shared(
            [
                "scores", String(describing: Self.self), scoreKey, context.options.gqa.rawValue,
                context.options.fidelity.rawValue,
            ] as [AnyHashable]
        ) { try scores(context) }
    }

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(context.policyID.isEmpty ? id : context.policyID)
        guard let key = decisionKey else { return try select(ctx) }
        return try ctx.shared(["decision", String(describing: Self.self), key, ctx.budget, ctx.options] as [AnyHashable]) {
            try select(ctx)
        }
    }

    /// The decision made afresh: early exit, scores, each head's top candidates, protected and extra positions.
    func select(_ ctx: LayerContext) throws -> LayerDecision {
        if let d = try shortcut(ctx) { return d }
        let P = ctx.compressionPoint
        let prot = protected(ctx)
        let s = try sharedScores(ctx)
        // One ranking per layer and score matrix serves every budget (the same positions as a fresh top-k).
        let ranking = prot.lowerBound <= s.count ? ctx.sharedRanking(s) : nil
        let heads = try parallelMap(ctx.kvHeads) { g -> HeadDecision in
            let row = s.rows == 1 ? 0 : g
            let k = max(0, keepCount(ctx, head: g))
            let chosen =
                ranking?.top(row, k: k, below: prot.lowerBound)
                ?? Selection.topK(Array(0 ..< prot.lowerBound), k: k, score: { s[row, $0] })
            // Ascending, each position once (the extra positions may repeat chosen ones).
            var kept = (chosen + Array(prot) + alsoKept(ctx, scores: s, head: row)).sorted()
            kept.removeAdjacentDuplicates()
            return HeadDecision(kept: kept, prefill: P)
        }
        var d = LayerDecision(layer: ctx.layer, heads: heads, nominal: ctx.budget.nominal, prefill: P)
        d.notes = notes(ctx, d)
        return d
    }
}

extension LayerContext {
    /// The whole cache with the early-exit note when `P ≤ C`, else nil.
    public func wholeIfWithinBudget(_ extra: [DecisionNote] = []) -> LayerDecision? {
        compressionPoint <= budget.nominal ? whole([.earlyExit] + extra) : nil
    }

    /// Every head keeps `0 ..< P`.
    public func whole(_ notes: [DecisionNote] = []) -> LayerDecision {
        .whole(layer: layer, kvHeads: kvHeads, prefill: compressionPoint, nominal: budget.nominal, notes: notes)
    }

    /// The same decision in every KV head.
    public func sameInEveryHead(kept: [Int], notes: [DecisionNote] = []) -> LayerDecision {
        let head = HeadDecision(kept: kept, prefill: compressionPoint)
        return LayerDecision(
            layer: layer, heads: Array(repeating: head, count: kvHeads), nominal: budget.nominal,
            prefill: compressionPoint, notes: notes)
    }

    /// The same context sharing work through `cache`.
    public func sharing(_ cache: WorkCache) -> LayerContext {
        var c = LayerContext(
            info: info, tensors: tensors, budget: budget.spec, options: options, compressionPoint: compressionPoint,
            trace: trace, cache: cache)
        c.policyID = policyID
        return c
    }
}

func gqaNotes(_ ctx: LayerContext) -> [DecisionNote] {
    ctx.kvHeads != ctx.queryHeads ? [.gqaExtension] : []
}

/// Type-erased policy, so that `Merging` can wrap any registry entry.
public struct AnyCachePolicy: CachePolicy {
    public let base: any CachePolicy
    public init(_ base: any CachePolicy) { self.base = base }
    public var id: String { base.id }
    public var requirements: Requirements { base.requirements }
    public func decide(_ context: LayerContext) throws -> LayerDecision { try base.decide(context) }
    public func plannedMerge(_ context: LayerContext) -> [[Int]]? { base.plannedMerge(context) }
}

extension Array where Element: Equatable {
    /// Removes each element equal to the one before it (on a sorted array: every repeat).
    mutating func removeAdjacentDuplicates() {
        guard count > 1 else { return }
        var n = 1
        for i in 1 ..< count where self[i] != self[n - 1] {
            self[n] = self[i]
            n += 1
        }
        removeLast(count - n)
    }
}
