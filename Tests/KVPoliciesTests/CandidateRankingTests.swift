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

    /// Random keys with exact duplicates (ties settled in `Double`, lowest slot) and near-duplicates.
    @Test("MergeAssigner with a ranking equals without over many kept sets of one head, ties included")
    func assignerStress() {
        let P = 260, D = 24
        var rng = SplitMix64(seed: 7)
        var keys = (0 ..< P * D).map { _ in Double(rng.uniform() * 2 - 1) }
        for p in stride(from: 5, to: P, by: 17) { for d in 0 ..< D { keys[p * D + d] = keys[(p - 3) * D + d] } }
        for p in stride(from: 9, to: P, by: 23) { for d in 0 ..< D { keys[p * D + d] = keys[(p - 1) * D + d] * (1 + 1e-9) } }
        for d in 0 ..< D { keys[40 * D + d] = 0 }  // a zero-norm key
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
