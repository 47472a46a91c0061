import KVTrace

/// The trace inputs a policy reads (POLICIES.md §9, "inputs needed").
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
        let names: [(Requirements, String)] = [(.colsum, "colsum"), (.windowRows, "window rows"), (.queries, "q"),
                                               (.keys, "k"), (.values, "v"), (.spans, "spans"), (.future, "future rows"),
                                               (.otherLayers, "other layers")]
        let s = names.filter { contains($0.0) }.map(\.1)
        return s.isEmpty ? "—" : s.joined(separator: ", ")
    }
}

/// A look-once KV-cache policy: decides, per layer, what each KV head keeps (and merges).
///
/// Decisions are values; `DecisionApplier` turns them into compressed keys and values.
public protocol CachePolicy: Sendable {
    /// The kebab-case registry id ("h2o", "lookm", "h2o+pivotal", …).
    var id: String { get }
    /// Tensors and rows it reads.
    var requirements: Requirements { get }
    /// Decides for one layer.
    func decide(_ context: LayerContext) throws -> LayerDecision
    /// Decides for one layer under each of `budgets` (the budget of `context` is ignored): element
    /// `i` is exactly `Result { try decide(context.with(budget: budgets[i])) }`, error included.
    /// The default loops over the budgets; policies whose scores do not depend on the budget
    /// compute them once per layer and select per budget.
    func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>]
}

extension CachePolicy {
    public func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>] {
        budgets.map { b in Result { try decide(context.with(budget: b)) } }
    }

    /// `decisions(_:budgets:)`, throwing the first error.
    public func decide(_ context: LayerContext, budgets: [BudgetSpec]) throws -> [LayerDecision] {
        try decisions(context, budgets: budgets).map { try $0.get() }
    }
}

/// A policy whose costly input (scores, key norms, column sums) does not depend on the budget.
/// It implements `decide(_:reusing:)`, obtaining that input through `reusing(make)`, and gets
/// `decide(_:)` and a multi-budget `decisions` that computes the input once for all budgets.
public protocol ReusesWorkAcrossBudgets: CachePolicy {
    associatedtype Reused
    /// Decides for one budget; `reusing(make)` returns `make()` or an earlier result of it.
    func decide(_ context: LayerContext, reusing: (() throws -> Reused) throws -> Reused) throws -> LayerDecision
}

extension ReusesWorkAcrossBudgets {
    public func decide(_ context: LayerContext) throws -> LayerDecision {
        try decide(context, reusing: { try $0() })
    }

    public func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>] {
        let memo = Memo<Reused>()
        return budgets.map { b in Result { try decide(context.with(budget: b), reusing: { try memo.get($0) }) } }
    }
}

/// A budget-independent computation done at most once per multi-budget call: the first `get`
/// runs `make`, later ones return its value (or rethrow its error).
final class Memo<Value> {
    private var stored: Result<Value, any Error>?
    init() {}
    func get(_ make: () throws -> Value) throws -> Value {
        if let s = stored { return try s.get() }
        let r = Result { try make() }
        stored = r
        return try r.get()
    }
}

/// A policy that only scores positions; selection, ties, cache order and early exits are shared
/// (kvpress's "implement score, get selection"). Keeps the top `keepCount` of the candidates
/// (positions `< P` not protected) by score per KV head, plus the protected positions, in
/// ascending order. Ties go to the lowest position.
public protocol ScoringPolicy: CachePolicy {
    /// Scores `[KVH][P]`, higher = keep. Protected positions' scores are ignored.
    func scores(_ context: LayerContext) throws -> ScoreMatrix
    /// Positions kept in every head regardless of score. Default: the recent window `r`.
    func protected(_ context: LayerContext) -> Range<Int>
    /// How many candidates each head keeps. Default: `hh`.
    func keepCount(_ context: LayerContext) -> Int
    /// True when `scores` reads nothing of `context.budget`, so that `decisions(_:budgets:)` may
    /// compute them once for all budgets. Default: false (scores recomputed per budget).
    var scoresIndependentOfBudget: Bool { get }
}

extension ScoringPolicy {
    public func protected(_ context: LayerContext) -> Range<Int> {
        let P = context.compressionPoint
        return max(0, P - context.budget.recent) ..< P
    }
    public func keepCount(_ context: LayerContext) -> Int { context.budget.heavy }
    public var scoresIndependentOfBudget: Bool { false }

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        try decide(context, scores: { try scores($0) })
    }

    public func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>] {
        guard scoresIndependentOfBudget else { return budgets.map { b in Result { try decide(context.with(budget: b)) } } }
        let memo = Memo<ScoreMatrix>()
        return budgets.map { b in Result { try decide(context.with(budget: b), scores: { c in try memo.get { try scores(c) } }) } }
    }

    func decide(_ context: LayerContext, scores score: (LayerContext) throws -> ScoreMatrix) throws -> LayerDecision {
        let ctx = context.named(id)
        let P = ctx.compressionPoint
        let nominal = ctx.budget.nominal
        if P <= nominal {
            return .whole(layer: ctx.layer, kvHeads: ctx.kvHeads, prefill: P, nominal: nominal, notes: [.earlyExit])
        }
        let prot = protected(ctx)
        let k = keepCount(ctx)
        let s = try score(ctx)
        let heads = try parallelMap(ctx.kvHeads) { g -> HeadDecision in
            let chosen = Selection.topK(Array(0 ..< prot.lowerBound), k: k, score: { s[g, $0] })
            return HeadDecision(kept: (chosen + Array(prot)).sorted(), prefill: P)
        }
        return LayerDecision(layer: ctx.layer, heads: heads, nominal: nominal, prefill: P, notes: gqaNotes(ctx))
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
    public func decisions(_ context: LayerContext, budgets: [BudgetSpec]) -> [Result<LayerDecision, any Error>] {
        base.decisions(context, budgets: budgets)
    }
}
