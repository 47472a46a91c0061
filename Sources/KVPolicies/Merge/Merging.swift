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
/// Under a merge scope other than `all` (docs/policies.md#merge-scope) the search runs within
/// the evicted token's group (modality or image): a token whose group has no kept token in that
/// head is dropped. The filter's mean and the rank-shared flags are then taken over the assigned
/// tokens only (a dropped token never passes), and the averaged merge's rank mismatch pairs the
/// j-th filtered target of a group with the j-th evicted token of the same group.
///
/// Based on LOOK-M (arXiv 2406.18139), official code `SUSTechBruce/LOOK-M`.
public struct Merging<Base: CachePolicy>: CachePolicy {

    public var base: Base
    public var strategy: MergeStrategy
    /// nil → the fidelity's default (rank-shared in `code`, per-head in `intended`).
    public var filter: MergeFilter?
    /// nil → the fidelity's default (rank-mismatched in `code`, paired in `intended`).
    public var pairing: MergePairing?
    /// nil → `.all` (the official behaviour, in both fidelities).
    public var scope: MergeScope?
    /// The registry id; default `<base>+<strategy>`.
    public var customID: String?

    public init(
        base: Base, strategy: MergeStrategy, filter: MergeFilter? = nil, pairing: MergePairing? = nil, scope: MergeScope? = nil,
        id: String? = nil
    ) {
        self.base = base
        self.strategy = strategy
        self.filter = filter
        self.pairing = pairing
        self.scope = scope
        self.customID = id
    }

    public var id: String { customID ?? "\(base.id)+\(strategy.rawValue)" }
    public var requirements: Requirements { base.requirements.union([.keys, .values]) }

    public func decide(_ context: LayerContext) throws -> LayerDecision {
        let ctx = context.named(id)
        try checkTensors(ctx)
        return try merge(try base.decide(ctx), ctx)
    }

    /// The base decision's kept sets (merge scope `all` only; scoped searches are not planned).
    public func plannedMerge(_ context: LayerContext) -> [[Int]]? {
        let ctx = context.named(id)
        guard (scope ?? .all) == .all, (try? checkTensors(ctx)) != nil, let d = try? base.decide(ctx) else { return nil }
        return d.heads.map { $0.evicted.isEmpty ? [] : $0.kept }
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
        // The assignment depends only on the head, its kept set and the scope: every merge strategy,
        // filter and policy with the same kept set in this layer shares one search.
        let scope = self.scope ?? .all
        let groups = scope.groups(ctx.info, count: P)
        let assigned = parallelMap(d.heads.count, scratch: { AssignScratch() }) { scratch, g in
            ctx.shared(AssignmentKey(head: g, kept: d.heads[g].kept, scope: scope)) {
                let load = { (p: Int, out: UnsafeMutablePointer<Double>) in
                    kt.copyDoubles(from: (g * T + p) * D, count: D, into: out)
                }
                if let groups {
                    return MergeAssigner.assign(
                        dim: D, kept: d.heads[g].kept, evicted: d.heads[g].evicted, groups: groups, scratch: scratch, load: load)
                }
                // Every planned kept set of this head (a grid's settings) in one batched search.
                if let plan = MergePlan.of(ctx), g < plan.keptSets.count, plan.keptSets[g].contains(d.heads[g].kept),
                    let batch = ctx.shared(
                        MergeBatchKey(head: g),
                        {
                            MergeBatch.assign(sets: plan.keptSets[g], positions: P, dim: D, scratch: BatchScratch(), load: load)
                        }), let a = batch[d.heads[g].kept]
                {
                    return a
                }
                // Other kept sets of this head (other budgets, ratios, policies) share its ranked candidates.
                let ranking = ctx.cache == nil ? nil : ctx.shared(RankingKey(head: g)) { CandidateRanking(positions: P) }
                return MergeAssigner.assign(
                    dim: D, kept: d.heads[g].kept, evicted: d.heads[g].evicted, scratch: scratch,
                    ranking: ranking, load: load)
            }
        }
        let G = d.heads.count
        // Filter (under a scope, over the assigned tokens only: target ≥ 0).
        var filters: [[Bool]] = assigned.map { $0.target.map { $0 >= 0 } }
        if strategy != .pivotal {
            let all =
                groups == nil
                ? assigned.flatMap(\.cosine) : assigned.flatMap { a in a.cosine.indices.filter { a.target[$0] >= 0 }.map { a.cosine[$0] } }
            let threshold = all.isEmpty ? 0 : all.reduce(0, +) / Double(all.count)
            let ragged = Set(assigned.map(\.cosine.count)).count > 1
            let mode = ragged ? .perHead : (filter ?? (ctx.options.fidelity == .code ? .rankShared : .perHead))
            switch mode {
            case .rankShared where groups == nil:
                let E = assigned[0].cosine.count
                let shared = (0 ..< E).map { e in assigned.reduce(0.0) { $0 + $1.cosine[e] } / Double(G) >= threshold }
                filters = Array(repeating: shared, count: G)
            case .rankShared:
                // The mean over the heads that assign rank e; a head that drops it never passes.
                let E = assigned[0].cosine.count
                let shared = (0 ..< E).map { e -> Bool in
                    let on = assigned.filter { $0.target[e] >= 0 }
                    return !on.isEmpty && on.reduce(0.0) { $0 + $1.cosine[e] } / Double(on.count) >= threshold
                }
                filters = assigned.map { a in shared.indices.map { shared[$0] && a.target[$0] >= 0 } }
            case .perHead:
                filters = assigned.map { a in a.cosine.indices.map { a.cosine[$0] >= threshold && a.target[$0] >= 0 } }
            }
            if ragged { d.notes.append(DecisionNote("per-head-filter", "heads evict different counts: the merge filter is per head")) }
        }
        let pair = pairing ?? (ctx.options.fidelity == .code ? .rankMismatched : .paired)
        var dropped = 0
        for g in 0 ..< G {
            let (t, mu) = assigned[g]
            let ev = d.heads[g].evicted
            var merges: [MergeContribution] = []
            switch strategy {
            case .pivotal:
                merges = ev.indices.filter { t[$0] >= 0 }.map {
                    MergeContribution(source: ev[$0], slot: t[$0], sourceWeight: 0.5, pivotWeight: 0.5, cosine: mu[$0])
                }
            case .average:
                let F = ev.indices.filter { filters[g][$0] }
                // The source of the j-th filtered target: the j-th evicted token (of its group, under a scope).
                var source: (Int, Int) -> Int = { j, _ in ev[j] }
                if let groups {
                    var ranksOf: [TokenGroup: [Int]] = [:]
                    for e in ev.indices { ranksOf[groups[ev[e]], default: []].append(e) }
                    var seen: [TokenGroup: Int] = [:]
                    var nth = [Int](repeating: 0, count: ev.count)
                    for f in F { nth[f] = seen[groups[ev[f]], default: 0]; seen[groups[ev[f]], default: 0] += 1 }
                    source = { _, f in ev[ranksOf[groups[ev[f]]]![nth[f]]] }
                }
                merges = F.enumerated().map { j, f in
                    MergeContribution(
                        source: pair == .rankMismatched ? source(j, f) : ev[f], slot: t[f], sourceWeight: 1, pivotWeight: 0, cosine: mu[f])
                }
            case .weighted:
                merges = ev.indices.filter { filters[g][$0] }.map {
                    MergeContribution(source: ev[$0], slot: t[$0], sourceWeight: mu[$0], pivotWeight: 0, cosine: mu[$0])
                }
            }
            dropped += t.filter { $0 < 0 }.count
            d.heads[g].merges = merges
            d.heads[g].assignment = MergeAssignment(target: t, cosine: mu, filter: filters[g])
        }
        if dropped > 0 {
            d.notes.append(
                DecisionNote(
                    "merge-scope-dropped",
                    "merge scope \(scope.rawValue): \(dropped) evicted token(s) over the KV heads had no kept token of their own \(scope == .image ? "image or modality" : "modality") and were dropped"
                ))
        }
        return d
    }
}

/// Work-cache key of a head's nearest-kept-key assignment (evicted = the rest of `0 ..< P`).
struct AssignmentKey: Hashable {
    var head: Int
    var kept: [Int]
    var scope: MergeScope
}
