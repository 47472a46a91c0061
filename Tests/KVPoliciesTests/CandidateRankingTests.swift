import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// The merge search through a layer's shared `CandidateRanking` (one per KV head, reused by every
/// budget, ratio setting and merge strategy) must give exactly the targets and cosines of a fresh
/// search, whatever ran before it.
struct CandidateRankingTests {
    /// Spans and a prefill long enough for several 64-position blocks, dense (text, window) and sparse.
    static let trace = TestTrace(
        .init(
            layers: 2, heads: 4, kvHeads: 2, dim: 16, prefill: 300, future: 6,
            spans: [20 ..< 120, 130 ..< 230], seed: 11))
    static let budgets: [BudgetSpec] = [
        .fraction(0.05), .fraction(0.1), .fraction(0.2), .fraction(0.3), .fraction(0.5),
        .ratios(heavy: 0.02, recent: 0.3), .ratios(heavy: 0.3, recent: 0.05), .ratios(heavy: 0.15, recent: 0.2),
        .tokens(70), .fraction(0.4, recentShare: 0.9),
    ]

    @Test(
        "shared candidate rankings give the decisions of fresh searches over budgets, ratios and merge strategies",
        arguments: ["lookm", "lookm-avg", "lookm-weighted", "pivot-merge", "snapkv-lookm", "h2o+average", "streaming+pivotal"],
        [Fidelity.code, .intended])
    func sharedEqualsFresh(_ id: String, _ fidelity: Fidelity) throws {
        let policy = try PropertyTests.make(id)
        for layer in Self.trace.info.recordedLayers {
            let cache = WorkCache()
            let shared = try LayerContext(
                trace: Self.trace, layer: layer, budget: .fraction(0.5), options: PolicyOptions(fidelity: fidelity), cache: cache)
            let plain = try LayerContext(
                trace: Self.trace, layer: layer, budget: .fraction(0.5), options: PolicyOptions(fidelity: fidelity))
            // Forwards, then backwards through the same cache: every order of settings gives the same.
            for b in Self.budgets + Self.budgets.reversed() {
                let fresh = Result { try policy.decide(plain.with(budget: b)) }
                let reused = Result { try policy.decide(shared.with(budget: b)) }
                #expect(MultiBudgetTests.same(fresh, reused), "\(id) layer \(layer) \(fidelity) \(b)")
            }
        }
    }

    @Test("the ranking is reused: dense blocks are stored once per mask and later settings search fewer rows")
    func reused() throws {
        let cache = WorkCache()
        let ctx = try LayerContext(trace: Self.trace, layer: 0, budget: .fraction(0.2), cache: cache)
        _ = try LookM().decide(ctx)
        let ranking = cache.value(WorkKey(layer: 0, P: ctx.compressionPoint, key: AnyHashable(RankingKey(head: 0)))) {
            CandidateRanking(positions: 0)
        }
        #expect(ranking.positions == ctx.compressionPoint)  // made by the merge, not by this look-up
        let stored = ranking.storedMasks
        #expect(stored > 0)
        _ = try LookMWeighted().decide(ctx.with(budget: .fraction(0.3)))
        _ = try LookM().decide(ctx.with(budget: .fraction(0.3)))
        #expect(ranking.storedMasks >= stored && ranking.storedMasks <= ranking.maxMasks)
    }

    /// Random `[P][D]` keys with exact duplicates (ties settled in `Double`, lowest slot),
    /// near-duplicates and one zero-norm key.
    static func stressKeys(P: Int, D: Int, rng: inout SplitMix64) -> [Double] {
        var keys = (0 ..< P * D).map { _ in Double(rng.uniform() * 2 - 1) }
        for p in stride(from: 5, to: P, by: 17) { for d in 0 ..< D { keys[p * D + d] = keys[(p - 3) * D + d] } }
        for p in stride(from: 9, to: P, by: 23) { for d in 0 ..< D { keys[p * D + d] = keys[(p - 1) * D + d] * (1 + 1e-9) } }
        for d in 0 ..< D { keys[40 * D + d] = 0 }
        return keys
    }

    @Test("MergeAssigner with a ranking equals without over many kept sets of one head, ties included")
    func assignerStress() {
        let P = 260, D = 24
        var rng = SplitMix64(seed: 7)
        let keys = Self.stressKeys(P: P, D: D, rng: &rng)
        let ranking = CandidateRanking(positions: P)
        let scratch = AssignScratch()
        func load(_ p: Int, _ out: UnsafeMutablePointer<Double>) { for d in 0 ..< D { out[d] = keys[p * D + d] } }
        var denseSeen = false
        for trial in 0 ..< 40 {
            // A dense run (like text or a window), scattered picks, in a shuffled cache order.
            let run = (trial * 7) % 150, len = 64 + (trial * 13) % 90
            var kept = Set(run ..< Swift.min(P, run + len))
            for _ in 0 ..< 10 + trial { kept.insert(Int(rng.next() % UInt64(P))) }
            var order = Array(kept).sorted()
            if trial % 3 == 1 { order.reverse() }
            let evicted = (0 ..< P).filter { !kept.contains($0) }
            let fresh = MergeAssigner.assign(dim: D, kept: order, evicted: evicted, load: load)
            let shared = MergeAssigner.assign(dim: D, kept: order, evicted: evicted, scratch: scratch, ranking: ranking, load: load)
            #expect(fresh.target == shared.target && fresh.cosine == shared.cosine, "trial \(trial)")
            denseSeen = denseSeen || ranking.storedMasks > 0
        }
        #expect(denseSeen)
    }
}

/// The batched merge search of a layer's planned kept sets (`MergePlan`, `MergeBatch`) must give
/// exactly each set's own search.
struct MergeBatchTests {
    @Test("MergeBatch equals MergeAssigner on every set, over dense, sparse and reordered kept sets with ties")
    func batchEqualsFresh() throws {
        let P = 260, D = 24
        var rng = SplitMix64(seed: 5)
        var keys = CandidateRankingTests.stressKeys(P: P, D: D, rng: &rng)
        func load(_ p: Int, _ out: UnsafeMutablePointer<Double>) { for d in 0 ..< D { out[d] = keys[p * D + d] } }
        var sets: [[Int]] = []
        for trial in 0 ..< 25 {
            let run = (trial * 11) % 150, len = 20 + (trial * 13) % 90
            var kept = Set(run ..< Swift.min(P, run + len)).union(P - 10 - trial ..< P)
            for _ in 0 ..< 3 + 2 * trial { kept.insert(Int(rng.next() % UInt64(P))) }
            var order = Array(kept).sorted()
            if trial % 3 == 1 { order.reverse() }
            if trial % 4 == 2 { order = order.sorted { ($0 * 7919) % 101 < ($1 * 7919) % 101 } }
            sets.append(order)
        }
        sets.append([7])  // one kept slot: no second best
        let batch = try #require(MergeBatch.assign(sets: sets, positions: P, dim: D, scratch: BatchScratch(), load: load))
        #expect(batch.count == sets.count)
        for (i, kept) in sets.enumerated() {
            let evicted = (0 ..< P).filter { !Set(kept).contains($0) }
            let fresh = MergeAssigner.assign(dim: D, kept: kept, evicted: evicted, load: load)
            let mine = try #require(batch[kept])
            #expect(fresh.target == mine.target && fresh.cosine == mine.cosine, "set \(i)")
        }
        // A key that is not finite: no batched answer (each set's own search scores it in Double).
        keys[3 * D] = .infinity
        #expect(MergeBatch.assign(sets: sets, positions: P, dim: D, scratch: BatchScratch(), load: load) == nil)
    }

    @Test(
        "a registered merge plan gives the decisions of fresh searches over a ratio grid and the LOOK-M family",
        arguments: [Fidelity.code, .intended])
    func plannedEqualsFresh(_ fidelity: Fidelity) throws {
        let ids = ["lookm", "lookm-avg", "lookm-weighted", "pivot-merge", "h2o+average"]
        let policies = try ids.map { try PropertyTests.make($0) }
        let trace = CandidateRankingTests.trace
        let budgets: [BudgetSpec] = [0.02, 0.1, 0.2].flatMap { h in [0.05, 0.1, 0.3].map { r in BudgetSpec.ratios(heavy: h, recent: r) } }
        for layer in trace.info.recordedLayers {
            let cache = WorkCache()
            let base = try LayerContext(
                trace: trace, layer: layer, budget: .fraction(0.5), options: PolicyOptions(fidelity: fidelity), cache: cache)
            let plain = try LayerContext(trace: trace, layer: layer, budget: .fraction(0.5), options: PolicyOptions(fidelity: fidelity))
            let settings = policies.flatMap { p in budgets.map { (policy: p, budget: $0) } }
            MergePlan.register(settings.map { (policy: $0.policy, context: base.with(budget: $0.budget)) })
            let plan = try #require(MergePlan.of(base))
            #expect(plan.keptSets.contains { $0.count > 1 })
            for (policy, b) in settings {
                let fresh = Result { try policy.decide(plain.with(budget: b)) }
                let planned = Result { try policy.decide(base.with(budget: b)) }
                #expect(MultiBudgetTests.same(fresh, planned), "\(policy.id) layer \(layer) \(fidelity) \(b)")
            }
            // The batched search did run (its results are in the layer's cache).
            let g = try #require(plan.keptSets.firstIndex { !$0.isEmpty })
            let batch = cache.value(WorkKey(layer: layer, P: base.compressionPoint, key: AnyHashable(MergeBatchKey(head: g)))) {
                [[Int]: MergeBatch.Assignment]?.none
            }
            #expect(batch != nil)
            #expect(cache.count > 0)
        }
    }
}
