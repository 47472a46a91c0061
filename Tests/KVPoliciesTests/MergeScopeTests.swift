import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// `--merge-scope`: an evicted token merges only into kept tokens of its own modality (or image),
/// into the nearest such key, and is dropped when its group has no kept token.
struct MergeScopeTests {
    static let trace = TestTrace()
    /// Every merge strategy, wrapped and built in (the LOOK-M family).
    static let configurations: [String] = ["lookm", "lookm-avg", "lookm-weighted", "pivot-merge", "avg-merge", "weighted-merge"]
    static let budgets: [BudgetSpec] = [.fraction(0.1), .fraction(0.3), .ratios(heavy: 0.3, recent: 0.1)]

    static func configuration(_ label: String, _ scope: MergeScope?) throws -> PolicyConfiguration {
        if label.contains("+") {
            let parts = label.split(separator: "+").map(String.init)
            return try PolicyConfiguration.parse(parts[0], merge: MergeStrategy(rawValue: parts[1]), scope: scope)
        }
        return try PolicyConfiguration.parse(label, scope: scope)
    }

    static func cosine(_ ctx: LayerContext, _ g: Int, _ a: Int, _ b: Int) throws -> Double {
        let k = try ctx.keys()
        let x = Array(k.vector(g, a)), y = Array(k.vector(g, b))
        let n = (x.reduce(0) { $0 + $1 * $1 } * y.reduce(0) { $0 + $1 * $1 }).squareRoot()
        return zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } / n
    }

    @Test(
        "scope modality and image never merge across their groups; a group with no kept token is dropped",
        arguments: configurations + ["h2o+pivotal", "snapkv+average", "tova+weighted"], [MergeScope.modality, .image])
    func withinGroup(_ label: String, _ scope: MergeScope) throws {
        let policy = try Self.configuration(label, scope).make()
        let info = Self.trace.info
        for fidelity in Fidelity.allCases {
            for budget in Self.budgets {
                let ctx = try LayerContext(trace: Self.trace, layer: 1, budget: budget, options: PolicyOptions(fidelity: fidelity))
                let groups = try #require(scope.groups(info, count: ctx.compressionPoint))
                let d = try policy.decide(ctx)
                for h in d.heads {
                    let keptGroups = Set(h.kept.map { groups[$0] })
                    for m in h.merges {
                        #expect(groups[m.source] == groups[h.kept[m.slot]], "\(label) \(scope) merged \(m.source) into \(h.kept[m.slot])")
                    }
                    let a = try #require(h.assignment)
                    for (e, p) in h.evicted.enumerated() {
                        if keptGroups.contains(groups[p]) {
                            #expect(a.target[e] >= 0 && groups[h.kept[a.target[e]]] == groups[p])
                        } else {
                            #expect(
                                a.target[e] == -1 && !a.filter[e] && h.mergeTarget[e] == -1, "\(p) has no kept token of its group: dropped")
                        }
                    }
                }
            }
        }
    }

    @Test("under a scope the target is the nearest kept key of the group (lowest slot on ties)")
    func nearestInGroup() throws {
        let ctx = try LayerContext(trace: Self.trace, layer: 2, budget: .fraction(0.5))
        let d = try Self.configuration("h2o+pivotal", .image).make().decide(ctx)
        let groups = MergeScope.image.groups(Self.trace.info, count: ctx.compressionPoint)!
        var checked = 0
        for (g, h) in d.heads.enumerated() {
            for (e, p) in h.evicted.enumerated() {
                let candidates = h.kept.indices.filter { groups[h.kept[$0]] == groups[p] }
                guard !candidates.isEmpty else { continue }
                let cos = try candidates.map { try Self.cosine(ctx, g, p, h.kept[$0]) }
                let best = cos.max()!
                let want = candidates[cos.firstIndex { $0 >= best - 1e-12 }!]
                #expect(h.assignment!.target[e] == want)
                #expect(abs(h.assignment!.cosine[e] - best) < 1e-9)
                checked += 1
            }
        }
        #expect(checked > 20)
    }

    @Test("lookm at a small budget keeps no image token: under modality every image token is dropped, text still merges")
    func droppedWhenNoKeptToken() throws {
        let ctx = try LayerContext(trace: Self.trace, layer: 0, budget: .fraction(0.1))
        let all = try PolicyConfiguration.parse("lookm").make().decide(ctx)
        let scoped = try PolicyConfiguration.parse("lookm", scope: .modality).make().decide(ctx)
        let isText = ctx.isText
        for (a, s) in zip(all.heads, scoped.heads) {
            #expect(a.kept == s.kept && a.evicted == s.evicted)
            #expect(!s.kept.contains { !isText[$0] }, "text prior keeps no image token at C = \(ctx.budget.nominal)")
            let images = s.evicted.filter { !isText[$0] }
            #expect(images.count == 24)
            // Official scope: every image token merges, into a text token.
            #expect(a.mergeTarget.allSatisfy { $0 >= 0 })
            for (e, p) in s.evicted.enumerated() {
                #expect((s.mergeTarget[e] == -1) == !isText[p])
            }
            #expect(s.merges.count == s.evicted.count - images.count)
        }
        let note = try #require(scoped.notes.first { $0.code == "merge-scope-dropped" })
        #expect(note.message.contains("\(24 * scoped.heads.count) evicted token"))
    }

    @Test("scope all is the official merge: the same decision as no scope", arguments: configurations)
    func allIsDefault(_ label: String) throws {
        for fidelity in Fidelity.allCases {
            for budget in Self.budgets {
                let ctx = try LayerContext(trace: Self.trace, layer: 3, budget: budget, options: PolicyOptions(fidelity: fidelity))
                let a = try Self.configuration(label, nil).make().decide(ctx)
                let b = try Self.configuration(label, .all).make().decide(ctx)
                #expect(a == b)
            }
        }
    }

    @Test("the averaged merge's rank mismatch stays within a group under a scope")
    func rankMismatchWithinGroup() throws {
        let ctx = try LayerContext(trace: Self.trace, layer: 1, budget: .fraction(0.3))
        let d = try Self.configuration("h2o+average", .modality).make().decide(ctx)
        let groups = MergeScope.modality.groups(Self.trace.info, count: ctx.compressionPoint)!
        for h in d.heads {
            // The j-th filtered target of a group receives the j-th evicted token of the same group.
            for group in Set(groups) {
                let ranks = h.evicted.indices.filter { groups[h.evicted[$0]] == group }
                let filtered = ranks.filter { h.assignment!.filter[$0] }
                let sources = h.merges.filter { groups[$0.source] == group }.map(\.source)
                #expect(sources == filtered.indices.map { h.evicted[ranks[$0]] })
            }
        }
    }

    @Test("a merge scope on an eviction-only policy is refused by name")
    func refusedWithoutMerge() throws {
        #expect(throws: PolicyError.self) { try PolicyConfiguration.parse("h2o", scope: .modality) }
        let c = try PolicyConfiguration.parse("h2o", merge: .pivotal, scope: .image)
        #expect(c.label == "h2o+pivotal+scope=image" && c.effectiveMergeScope == .image)
        #expect(try PolicyConfiguration.parse("lookm", scope: .all).label == "lookm")
        #expect(PolicyConfiguration("h2o").effectiveMergeScope == nil && PolicyConfiguration("lookm").effectiveMergeScope == .all)
    }
}
