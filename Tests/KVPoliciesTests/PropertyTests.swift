import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// Properties every registry policy must have, on synthetic traces.
struct PropertyTests {
    static let traces: [(String, TestTrace)] = [
        ("gqa", TestTrace()),
        ("mha", TestTrace(.init(heads: 3, kvHeads: 3, dim: 8, prefill: 40, future: 6, spans: [5 ..< 15, 20 ..< 30], seed: 7))),
    ]
    static let budgets: [BudgetSpec] = [
        .fraction(0.25), .fraction(0.5, recentShare: 0.25), .tokens(10), .ratios(heavy: 0.1, recent: 0.1),
        .ratios(heavy: 0.3, recent: 0.05), .fraction(1),
    ]
    /// The whole registry cross product: every declared policy, and every non-merging one under
    /// every merge strategy. A new policy is tested here without editing any list.
    static let configurations: [PolicyConfiguration] = PolicyRegistry.declarations.flatMap { d -> [PolicyConfiguration] in
        [PolicyConfiguration(d.id)]
            + (d.traits.contains(.merges) ? [] : MergeStrategy.allCases.map { PolicyConfiguration(d.id, merge: $0) })
    }
    static var policies: [String] { configurations.map(\.label) }

    static func configuration(_ label: String) -> PolicyConfiguration { configurations.first { $0.label == label }! }
    static func make(_ label: String) throws -> any CachePolicy { try configuration(label).make() }

    /// Policies whose actual size is exactly `min(C, P)` in every head: declared by the trait.
    static func keepsExactlyC(_ label: String) -> Bool {
        configuration(label).declaration!.traits.contains(.keepsExactlyC)
    }

    @Test(
        "decisions are well formed for every policy × merge × budget × trace × fidelity",
        arguments: policies, [Fidelity.code, .intended])
    func wellFormed(_ id: String, _ fidelity: Fidelity) throws {
        let policy = try Self.make(id)
        for (name, trace) in Self.traces {
            for budget in Self.budgets {
                for layer in trace.info.recordedLayers {
                    let ctx = try LayerContext(trace: trace, layer: layer, budget: budget, options: PolicyOptions(fidelity: fidelity))
                    let P = ctx.compressionPoint, C = ctx.budget.nominal
                    let declared = Self.configuration(id).declaration!
                    if declared.id == "snapkv-lookm", ctx.budget.recent == 0, P >= C {
                        #expect(throws: PolicyError.self) { try policy.decide(ctx) }
                        continue
                    }
                    if declared.baseID == "text-prior", fidelity == .code, ctx.budget.recent == 0, P > C {
                        #expect(throws: PolicyError.self) { try policy.decide(ctx) }
                        continue
                    }
                    let d = try policy.decide(ctx)
                    let label = "\(id) \(name) \(budget) layer \(layer) \(fidelity)"
                    #expect(d.heads.count == ctx.kvHeads, "\(label)")
                    #expect(d.nominal == C)
                    for (g, h) in d.heads.enumerated() {
                        #expect(Set(h.kept).count == h.kept.count, "\(label): duplicate kept positions")
                        #expect(h.kept.allSatisfy { $0 >= 0 && $0 < P }, "\(label): kept position out of range")
                        #expect(h.evicted == h.evicted.sorted(), "\(label): evicted not ascending")
                        #expect(
                            Set(h.kept).isDisjoint(with: h.evicted) && h.kept.count + h.evicted.count == P,
                            "\(label): kept ∪ evicted ≠ 0..<P")
                        for m in h.merges {
                            #expect(m.slot >= 0 && m.slot < h.kept.count && h.evicted.contains(m.source), "\(label): bad merge record")
                        }
                        // The Ada-KV authors' code compresses at C = P too (it skips only C > P): code fidelity follows it.
                        let adaAtP = (declared.id == "adakv" || declared.baseID == "adakv") && fidelity == .code && P == C
                        if P <= C, declared.id != "snapkv-lookm", declared.id != "fastv", !adaAtP {
                            #expect(h.kept == Array(0 ..< P), "\(label): C ≥ P must keep everything")
                        }
                        if Self.keepsExactlyC(id), P > C {
                            #expect(h.kept.count == C, "\(label) head \(g): kept \(h.kept.count), nominal \(C)")
                        }
                    }
                    // The applied cache has exactly the reported number of rows.
                    let out = DecisionApplier.apply(d, keys: try ctx.keys(), values: try ctx.values())
                    // Head by head from the tensors (what simulate --save-cache uses): the same cache.
                    #expect(try DecisionApplier.apply(d, context: ctx) == out, "\(label)")
                    // Rounded straight into a [KVH][C][D] float32 buffer (simulate --save-cache): each
                    // Double of `out` rounded once; the padding of heads with fewer slots untouched.
                    let Cmax = d.actual.max() ?? 0, D = ctx.headDim
                    for values in [false, true] {
                        var rounded = [Float](repeating: -7, count: d.heads.count * Cmax * D)
                        try rounded.withUnsafeMutableBufferPointer {
                            try DecisionApplier.applyRounded(d, context: ctx, values: values, slots: Cmax, into: $0.baseAddress!)
                        }
                        var expected = [Float](repeating: -7, count: d.heads.count * Cmax * D)
                        for (g, h) in out.heads.enumerated() {
                            for (i, x) in (values ? h.values : h.keys).enumerated() { expected[g * Cmax * D + i] = Float(x) }
                        }
                        #expect(rounded.map(\.bitPattern) == expected.map(\.bitPattern), "\(label) values \(values)")
                    }
                    #expect(out.heads.map { $0.keys.count / ctx.headDim } == d.actual, "\(label)")
                    #expect(out.heads.map { $0.values.count / ctx.headDim } == d.actual, "\(label)")
                    #expect(out.heads.map(\.kept) == d.heads.map(\.kept))
                    if id == "full" { #expect(d.actual.allSatisfy { $0 == P }) }
                    if declared.traits.contains(.sharedByHeads) {
                        #expect(Set(d.heads.map(\.kept)).count == 1, "\(label): one set for all heads")
                    }
                    if Self.configuration(id).merges, P > C, d.heads.contains(where: { !$0.evicted.isEmpty }) {
                        #expect(d.heads.contains { !$0.merges.isEmpty }, "\(label): a merging policy merged nothing")
                    } else if !Self.configuration(id).merges {
                        #expect(d.heads.allSatisfy { $0.merges.isEmpty }, "\(label): an eviction policy merged")
                    }
                    if id == "lookm" || id == "text-prior", fidelity == .intended, P > C {
                        #expect(d.actual.allSatisfy { $0 == C }, "\(label)")
                    }
                }
            }
        }
    }

    @Test("no policy beats the oracle's attention recall at the same kept count", arguments: policies)
    func oracleBound(_ id: String) throws {
        let policy = try Self.make(id)
        for (_, trace) in Self.traces {
            for budget in Self.budgets.prefix(4) {
                for layer in trace.info.recordedLayers {
                    let ctx = try LayerContext(trace: trace, layer: layer, budget: budget, options: PolicyOptions(fidelity: .intended))
                    let d = try policy.decide(ctx)
                    let oracle = try Oracle(counts: d.actual).decide(ctx)
                    for g in 0 ..< ctx.kvHeads {
                        #expect(oracle.heads[g].kept.count == d.heads[g].kept.count)
                        let mine = try attentionRecall(ctx, kvHead: g, kept: d.heads[g].kept)
                        let best = try attentionRecall(ctx, kvHead: g, kept: oracle.heads[g].kept)
                        #expect(mine <= best + 1e-12, "\(id) layer \(layer) head \(g): recall \(mine) > oracle \(best)")
                    }
                }
            }
        }
    }

    @Test("full keeps everything and its cache equals the input")
    func fullIsIdentity() throws {
        let trace = Self.traces[0].1
        let ctx = try LayerContext(trace: trace, layer: 1, budget: .fraction(0.2))
        let d = try FullCache().decide(ctx)
        let k = try ctx.keys(), v = try ctx.values()
        let out = DecisionApplier.apply(d, keys: k, values: v)
        #expect(out.heads.flatMap(\.keys) == k.values)
        #expect(out.heads.flatMap(\.values) == v.values)
        #expect(out.heads.allSatisfy { $0.mergeTarget.isEmpty })
        #expect(try attentionRecall(ctx, kvHead: 0, kept: d.heads[0].kept) == 1)
    }

    @Test("random is reproducible by seed", arguments: [UInt64(0), 1, 12345])
    func randomSeed(_ seed: UInt64) throws {
        let trace = Self.traces[0].1
        func run(_ s: UInt64, layer: Int) throws -> [[Int]] {
            try RandomEviction().decide(LayerContext(trace: trace, layer: layer, budget: .fraction(0.3), options: PolicyOptions(seed: s)))
                .heads.map(\.kept)
        }
        let a: [[Int]] = try run(seed, layer: 0)
        let b: [[Int]] = try run(seed, layer: 0)
        let other: [[Int]] = try run(seed &+ 1, layer: 0)
        let nextLayer: [[Int]] = try run(seed, layer: 1)
        #expect(a == b)
        #expect(a != other)
        #expect(a != nextLayer)
        let heads = a
        #expect(heads[0] != heads[1], "KV heads draw independently")
    }

    @Test("Lemire bounded draws stay in range and cover it")
    func boundedDraws() {
        var rng = SplitMix64(seed: 42)
        var seen = Set<UInt64>()
        for _ in 0 ..< 2000 {
            let x = rng.bounded(7)
            #expect(x < 7)
            seen.insert(x)
        }
        #expect(seen.count == 7)
    }

    @Test("top-k equals a full sort by (score desc, position asc)", arguments: [0, 1, 5, 30, 64])
    func topK(_ k: Int) {
        var rng = SplitMix64(seed: UInt64(k) + 3)
        let scores = (0 ..< 64).map { _ in Double(rng.bounded(10)) }  // many ties
        let got = Selection.topK(Array(0 ..< 64), k: k, score: { scores[$0] })
        let expected = (0 ..< 64).sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(k)
        #expect(got == Array(expected))
    }

    @Test("budget rounding follows int(P·x)")
    func budgets() {
        let a = BudgetSpec.fraction(0.2).resolve(97)
        #expect((a.nominal, a.recent, a.heavy) == (19, 9, 10))
        let b = BudgetSpec.ratios(heavy: 0.1, recent: 0.1).resolve(97)
        #expect((b.heavy, b.recent, b.nominal) == (9, 9, 18))
        let c = BudgetSpec.ratios(heavy: 0.15, recent: 0.05).resolve(97)
        #expect((c.heavy, c.recent) == (14, 4))
        let t = BudgetSpec.tokens(500, recentShare: 0.5).resolve(97)
        #expect((t.nominal, t.recent) == (97, 48))
        #expect(BudgetSpec.fraction(1.5).problem != nil)
        #expect(BudgetSpec.ratios(heavy: 0.1, recent: 0.1).problem == nil)
    }

    @Test(
        "missing inputs are errors naming the tensor",
        arguments: [("lookm", "k"), ("knorm", "k"), ("snapkv", "attn"), ("oracle", "attn"), ("snapkv-lookm", "q"), ("h2o+pivotal", "k")])
    func missingInputs(_ id: String, _ tensor: String) throws {
        var o = TestTrace.Options()
        o.layers = 1
        switch tensor {
        case "k": o.withKeys = false
        case "q": o.withQueries = false
        default:
            o.withAttention = false
            o.withQueries = false
        }
        let trace = TestTrace(o)
        // Column sums stay available for the text prior without attention rows.
        let ctx = try LayerContext(trace: trace, layer: 0, budget: .fraction(0.9))  // C > SnapKV's window
        do {
            _ = try Self.make(id).decide(ctx)
            Issue.record("\(id) ran without '\(tensor)'")
        } catch let e as PolicyError {
            #expect(e.kind == .missingInput)
            #expect(e.tensor == tensor, "\(e)")
            #expect(e.description.contains("'\(tensor)'"))
        }
    }

    @Test("GQA: max and mean aggregation can differ, and a group of one is the identity")
    func gqa() throws {
        let s = ScoreMatrix(rows: 4, count: 3, values: [1, 0, 0, 0, 3, 0, 2, 2, 2, 0, 0, 9])
        let mean = aggregateGQA(s, map: [0, 0, 1, 1], kvHeads: 2, .mean)
        let max = aggregateGQA(s, map: [0, 0, 1, 1], kvHeads: 2, .max)
        #expect(mean.values == [0.5, 1.5, 0, 1, 1, 5.5])
        #expect(max.values == [1, 3, 0, 2, 2, 9])
        #expect(aggregateGQA(s, map: [0, 1, 2, 3], kvHeads: 4, .mean) == s)
    }

    @Test("pivotal merge of one contribution gives (3·K_t + K_e)/4")
    func pivotalArithmetic() {
        let keys = KVBlock(heads: 1, count: 3, dim: 2, values: [1, 0, 0, 1, 4, 8])
        let d = LayerDecision(
            layer: 0,
            heads: [
                HeadDecision(
                    kept: [0, 2], evicted: [1],
                    merges: [MergeContribution(source: 1, slot: 1, sourceWeight: 0.5, pivotWeight: 0.5, cosine: 0.9)])
            ],
            nominal: 2, prefill: 3)
        let out = DecisionApplier.apply(d, keys: keys, values: keys)
        #expect(out.heads[0].keys == [1, 0, 3.0, 6.25])
        #expect(out.heads[0].mergeTarget == [1])
    }

    @Test("mergeTarget: per evicted position its slot, −1 when dropped, the last contribution of a repeated source")
    func mergeTargetOfEvicted() {
        func c(_ source: Int, _ slot: Int) -> MergeContribution {
            MergeContribution(source: source, slot: slot, sourceWeight: 1, pivotWeight: 0, cosine: 0)
        }
        let h = HeadDecision(kept: [0, 4, 9], evicted: [1, 2, 3, 5, 6, 7, 8], merges: [c(8, 2), c(2, 0), c(5, 1), c(2, 2)])
        #expect(h.mergeTarget == [-1, 2, -1, 1, -1, -1, 2])
        #expect(HeadDecision(kept: [0, 1], evicted: []).mergeTarget == [])
        #expect(HeadDecision(kept: [0], evicted: [1, 2]).mergeTarget == [-1, -1])
    }
}
