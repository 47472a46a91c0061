import KVTrace

/// Any base policy followed by a merge of its evicted tokens into its kept ones (docs/policies.md#the-merge-wrapper).
///
/// Targets are the base's kept slots in its cache order; sources its evicted positions in
/// ascending order; everything per KV head. Per head, each evicted key is assigned to the kept key
/// of largest cosine (lowest slot on ties), then, by strategy:
/// * pivotal: every evicted token contributes `(K[ε] + K[κ_t])/2`;
/// * average: tokens passing the filter contribute `K[·]`; in `code` mode the j-th filtered
///   target receives the j-th evicted token (the official source/index mismatch);
/// * weighted: tokens passing the filter contribute `μ·K[ε]`, unnormalised.
/// The filter is `μ ≥ mean μ` over the layer, per evicted rank shared by all heads (`code`) or
/// per head (`intended`, and whenever heads evict different counts). Values follow keys.
/// Slot `k` becomes `(K[κ_k] + Σ contributions)/(1 + n_k)` (`DecisionApplier`).
///
/// Based on LOOK-M (arXiv 2406.18139), official code `SUSTechBruce/LOOK-M`.
public struct Merging<Base: CachePolicy>: CachePolicy {

    public var base: Base
    public var strategy: MergeStrategy
    /// nil → the fidelity's default (rank-shared in `code`, per-head in `intended`).
    public var filter: MergeFilter?
    /// nil → the fidelity's default (rank-mismatched in `code`, paired in `intended`).
    public var pairing: MergePairing?
    /// The registry id; default `<base>+<strategy>`.
    public var customID: String?

    public init(base: Base, strategy: MergeStrategy, filter: MergeFilter? = nil, pairing: MergePairing? = nil, id: String? = nil) {
        self.base = base
        self.strategy = strategy
        self.filter = filter
        self.pairing = pairing
        self.customID = id
    }

    public var id: String { customID ?? "\(base.id)+\(strategy.rawValue)" }
    public var requirements: Requirements { base.requirements.union([.keys, .values]) }

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        try checkTensors(ctx)
        return try merge(try base.decide(ctx), ctx)
    }

    func checkTensors(_ ctx: LayerContext) throws {
        guard ctx.tensors.keys != nil else { throw ctx.missing("k", "key similarity of the \(strategy.rawValue) merge") }
        guard ctx.tensors.values != nil else { throw ctx.missing("v", "values of the \(strategy.rawValue) merge") }
    }

    /// Adds the merge to the base decision `d` made under `ctx`.
    func merge(_ decision: LayerDecision, _ ctx: LayerContext) throws -> LayerDecision {
        var d = decision
        if d.heads.allSatisfy({ $0.evicted.isEmpty }) { return d }
        // Per head, straight from the trace tensor: no `[KVH][P][D]` Double copy of all keys.
        let kt = ctx.tensors.keys!, P = ctx.compressionPoint, D = ctx.headDim
        let T = ctx.info.shape.seqLen
        precondition(kt.count >= d.heads.count * T * D && P <= T, "keys tensor smaller than [KVH][T][D]")
        // The assignment depends only on the head and its kept set: every merge strategy, filter and
        // policy with the same kept set in this layer shares one search.
        let assigned = parallelMap(d.heads.count, scratch: { AssignScratch() }) { scratch, g in
            ctx.shared(AssignmentKey(head: g, kept: d.heads[g].kept)) {
                // Other kept sets of this head (other budgets, ratios, policies) share its ranked candidates.
                let ranking = ctx.cache == nil ? nil : ctx.shared(RankingKey(head: g)) { CandidateRanking(positions: P) }
                return MergeAssigner.assign(dim: D, kept: d.heads[g].kept, evicted: d.heads[g].evicted, scratch: scratch,
                                            ranking: ranking) { p, out in
                    LayerContext.copyDoubles(kt, from: (g * T + p) * D, count: D, into: out)
                }
            }
        }
        let G = d.heads.count
        // Filter.
        var filters: [[Bool]] = assigned.map { Array(repeating: true, count: $0.target.count) }
        if strategy != .pivotal {
            let all = assigned.flatMap(\.cosine)
            let threshold = all.isEmpty ? 0 : all.reduce(0, +) / Double(all.count)
            let ragged = Set(assigned.map(\.cosine.count)).count > 1
            let mode = ragged ? .perHead : (filter ?? (ctx.options.fidelity == .code ? .rankShared : .perHead))
            switch mode {
            case .rankShared:
                let E = assigned[0].cosine.count
                let shared = (0 ..< E).map { e in assigned.reduce(0.0) { $0 + $1.cosine[e] } / Double(G) >= threshold }
                filters = Array(repeating: shared, count: G)
            case .perHead:
                filters = assigned.map { $0.cosine.map { $0 >= threshold } }
            }
            if ragged { d.notes.append(DecisionNote("per-head-filter", "heads evict different counts: the merge filter is per head")) }
        }
        let pair = pairing ?? (ctx.options.fidelity == .code ? .rankMismatched : .paired)
        for g in 0 ..< G {
            let (t, mu) = assigned[g]
            let ev = d.heads[g].evicted
            var merges: [MergeContribution] = []
            switch strategy {
            case .pivotal:
                merges = ev.indices.map { MergeContribution(source: ev[$0], slot: t[$0], sourceWeight: 0.5, pivotWeight: 0.5, cosine: mu[$0]) }
            case .average:
                let F = ev.indices.filter { filters[g][$0] }
                merges = F.enumerated().map { j, f in
                    MergeContribution(source: pair == .rankMismatched ? ev[j] : ev[f], slot: t[f], sourceWeight: 1, pivotWeight: 0, cosine: mu[f])
                }
            case .weighted:
                merges = ev.indices.filter { filters[g][$0] }.map {
                    MergeContribution(source: ev[$0], slot: t[$0], sourceWeight: mu[$0], pivotWeight: 0, cosine: mu[$0])
                }
            }
            d.heads[g].merges = merges
            d.heads[g].assignment = MergeAssignment(target: t, cosine: mu, filter: filters[g])
        }
        return d
    }
}

/// Work-cache key of a head's nearest-kept-key assignment (evicted = the rest of `0 ..< P`).
struct AssignmentKey: Hashable {
    var head: Int
    var kept: [Int]
}
