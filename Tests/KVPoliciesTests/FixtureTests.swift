import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// Conformance with the official LOOK-M classes (`code` fidelity), fixture by fixture.
@Suite(.enabled(if: Fixtures.sharedExists, "needs ../shared beside the project (the lookm-oracle fixtures)"))
struct FixtureTests {
    @Test("every manifest policy is covered", arguments: Fixtures.cases)
    func manifestCovered(_ c: String) throws {
        let names = try Fixtures.manifestPolicies(c)
        #expect(!names.isEmpty)
        for n in names { #expect(Fixtures.policies[n] != nil, "fixture policy \(n) has no KVScope id") }
    }

    @Test("code mode reproduces the official outputs", arguments: Fixtures.cases, Fixtures.policyNames)
    func conformance(_ c: String, _ name: String) throws {
        let f = try Fixtures.load(c)
        let pre = "out__\(name)__"
        try #require(f.has(pre + "kept_indices"), "fixture \(c) lacks \(name)")
        let (id, params) = Fixtures.policies[name]!
        let policy = try PolicyRegistry.make(id, parameters: params)
        let ctx = try Fixtures.context(f)
        let d = try policy.decide(ctx)
        let H = ctx.kvHeads, D = ctx.headDim

        // Kept indices: exact, in order.
        let kept = rowsOf(try f.ints(pre + "kept_indices"), rows: H)
        #expect(d.heads.map(\.kept) == kept, "\(c) \(id): kept indices differ")
        if f.has(pre + "evicted_indices") {
            let ev = rowsOf(try f.ints(pre + "evicted_indices"), rows: H)
            #expect(d.heads.map(\.evicted) == ev)
        }

        // Keys and values within 1e-4.
        let out = DecisionApplier.apply(d, keys: try ctx.keys(), values: try ctx.values())
        let ko = try f.doubles(pre + "keys_out"), vo = try f.doubles(pre + "values_out")
        let myK = out.heads.flatMap(\.keys), myV = out.heads.flatMap(\.values)
        try #require(myK.count == ko.count && myV.count == vo.count, "\(c) \(id): cache size \(myK.count / D) vs \(ko.count / D)")
        #expect(maxAbsDiff(myK, ko) <= 1e-4, "\(c) \(id): keys differ by \(maxAbsDiff(myK, ko))")
        #expect(maxAbsDiff(myV, vo) <= 1e-4, "\(c) \(id): values differ by \(maxAbsDiff(myV, vo))")

        // Scores within 1e-6 relative.
        if f.has(pre + "scores") {
            var s = try ctx.colsum()
            if params["score"] == "mean" { s.values = s.values.map { $0 / Double(ctx.compressionPoint) } }
            let ref = try f.doubles(pre + "scores")
            let bad = zip(s.values, ref).filter { abs($0 - $1) > 1e-6 * abs($1) + 1e-12 }.count
            #expect(bad == 0, "\(c) \(id): \(bad) scores outside 1e-6 relative")
        }

        // Merge records.
        if f.has(pre + "merge_target_slot") {
            let t = rowsOf(try f.ints(pre + "merge_target_slot"), rows: H)
            let mu = rowsOf(try f.doubles(pre + "merge_max_cos"), rows: H)
            for g in 0 ..< H {
                let a = try #require(d.heads[g].assignment)
                #expect(a.target == t[g], "\(c) \(id) head \(g): merge targets differ")
                #expect(maxAbsDiff(a.cosine, mu[g]) <= 1e-9)
            }
        }
        if f.has(pre + "merge_filter") {
            let filter = try f.ints(pre + "merge_filter").map { $0 != 0 }
            let ranks = try f.ints(pre + "merge_src_rank")
            for g in 0 ..< H {
                #expect(d.heads[g].assignment?.filter == filter, "\(c) \(id) head \(g): merge filter differs")
                let ev = d.heads[g].evicted
                let srcRanks = d.heads[g].merges.map { m in ev.firstIndex(of: m.source)! }
                #expect(srcRanks == ranks, "\(c) \(id) head \(g): merge source ranks differ")
            }
        }

        // SnapKV window scores within 1e-5 relative.
        if f.has(pre + "snapkv_window_scores") {
            let (u, pooled) = try SnapKVLookM().windowScores(ctx)
            for (mine, key) in [(u, "snapkv_window_scores"), (pooled, "snapkv_pooled_scores")] {
                let ref = try f.doubles(pre + key)
                let bad = zip(mine.values, ref).filter { abs($0 - $1) > 1e-5 * abs($1) + 1e-12 }.count
                #expect(mine.values.count == ref.count && bad == 0, "\(c) \(key): \(bad) values outside 1e-5 relative")
            }
        }
    }

    @Test(
        "r = 0 is a clear error for the text prior and snapkv-lookm in code mode",
        arguments: ["text-prior", "lookm", "lookm-avg", "lookm-weighted", "snapkv-lookm"])
    func zeroRecentWindow(_ id: String) throws {
        let f = try Fixtures.load("s2_text_light")
        let ctx = try Fixtures.context(f, budget: .ratios(heavy: 0.2, recent: 0.001))  // int(200 × 0.001) = 0
        #expect(ctx.budget.recent == 0)
        let policy = try PolicyRegistry.make(id)
        do {
            _ = try policy.decide(ctx)
            Issue.record("\(id) accepted r = 0")
        } catch let e as PolicyError {
            #expect(e.kind == .budget)
            #expect(e.description.contains("int(200 × 0.001) = 0"), "message: \(e)")
        }
        if id != "snapkv-lookm" {
            let intended = try Fixtures.context(f, fidelity: .intended, budget: .ratios(heavy: 0.2, recent: 0.001))
            let d = try policy.decide(intended)
            #expect(d.actual.allSatisfy { $0 == 40 })
        }
    }

    @Test("official classes equal base + merge wrapper", arguments: Fixtures.cases, [Fidelity.code, .intended])
    func wrapperIdentities(_ c: String, _ fidelity: Fidelity) throws {
        let f = try Fixtures.load(c)
        let ctx = try Fixtures.context(f, fidelity: fidelity)
        let pairs: [(String, String, MergeStrategy)] = [
            ("lookm", "text-prior", .pivotal), ("lookm-avg", "text-prior", .average), ("lookm-weighted", "text-prior", .weighted),
            ("pivot-merge", "h2o-sinks", .pivotal), ("avg-merge", "h2o-sinks", .average), ("weighted-merge", "h2o-sinks", .weighted),
        ]
        for (official, base, strategy) in pairs {
            let a = try PolicyRegistry.make(official).decide(ctx)
            let b = try PolicyRegistry.make(base, merge: strategy).decide(ctx)
            #expect(a.heads == b.heads, "\(official) ≠ \(base) + \(strategy) (\(fidelity))")
        }
    }

    @Test("text prior closed form: all text ∪ window ∪ top max(0, hh − T_nr) non-text", arguments: Fixtures.cases)
    func textPriorClosedForm(_ c: String) throws {
        let f = try Fixtures.load(c)
        let ctx = try Fixtures.context(f)
        let d = try TextPrior().decide(ctx)
        let P = ctx.compressionPoint, b = ctx.budget, cut = P - b.recent
        let text = ctx.isText
        let tnr = (0 ..< cut).filter { text[$0] }.count
        let s = try ctx.colsum()
        for g in 0 ..< ctx.kvHeads {
            let nonText = (0 ..< cut).filter { !text[$0] }
            let top = Selection.topK(nonText, k: max(0, b.heavy - tnr), score: { s[g, $0] })
            let expected = Set((0 ..< cut).filter { text[$0] } + Array(cut ..< P) + top)
            #expect(Set(d.heads[g].kept) == expected)
            #expect(d.heads[g].kept.count == max(b.heavy, tnr) + b.recent)
        }
    }

    @Test("intended averaged merge pairs sources and differs from code mode")
    func intendedAverage() throws {
        let f = try Fixtures.load("s2_text_light")
        let code = try LookMAverage().decide(try Fixtures.context(f))
        let intended = try Merging(base: TextPrior(), strategy: .average, filter: .rankShared, pairing: .paired).decide(
            try Fixtures.context(f))
        for g in code.heads.indices {
            let a = try #require(intended.heads[g].assignment)
            for m in intended.heads[g].merges {
                let rank = intended.heads[g].evicted.firstIndex(of: m.source)!
                #expect(a.target[rank] == m.slot)
            }
        }
        #expect(code.heads != intended.heads)
    }
}
