import Foundation
import Testing
import KVTrace
import KVPlot
@testable import KVPolicies

/// The declarations the registry, CLI, results and figures are derived from.
struct DeclarationTests {
    @Test("ids are unique kebab-case, and every declaration is complete")
    func complete() throws {
        let ids = PolicyRegistry.ids
        #expect(Set(ids).count == ids.count)
        for d in PolicyRegistry.declarations {
            #expect(d.id.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" }, "\(d.id)")
            #expect(!d.summary.isEmpty && !d.paper.isEmpty && d.rule.count > 80, "\(d.id): summary, paper and rule")
            #expect(!d.rule.contains(".md") && !d.rule.contains("§"), "\(d.id): the rule points at a document")
            if let c = d.composition {
                let base = try #require(PolicyRegistry.declaration(c.base), "\(d.id): base \(c.base)")
                #expect(d.color == base.color && d.traits.contains(.merges), "\(d.id) draws and merges as its base")
            }
            for p in d.parameters {
                if let v = p.defaultValue { #expect(throws: Never.self, "\(d.id).\(p.name)") { try p.check(v, policy: d.id) } }
                #expect(Set(d.parameters.map(\.name)).count == d.parameters.count)
            }
        }
    }

    @Test("every pair of configurations that differ in base or merge draws differently")
    func everyPairHasItsOwnStyle() {
        let configs = PropertyTests.configurations
        func look(_ c: PolicyConfiguration) -> PolicyStyle {
            let d = PolicyRegistry.declaration(c.base)!
            return .declared(color: d.color, merge: c.mergeStrategy?.rawValue, reference: d.traits.contains(.reference))
        }
        for (i, a) in configs.enumerated() {
            for b in configs[(i + 1)...] where a.base != b.base || a.mergeStrategy != b.mergeStrategy {
                #expect(look(a) != look(b), "\(a.label) and \(b.label) look the same")
            }
        }
        // pivot-merge is h2o-sinks under the pivotal merge, so it draws as exactly that.
        #expect(look(PolicyConfiguration("pivot-merge")) == look(PolicyConfiguration("h2o-sinks", merge: .pivotal)))
    }

    @Test("distinct base policies have distinct colours")
    func colours() {
        let bases = PolicyRegistry.declarations.filter { $0.composition == nil }
        #expect(Set(bases.map(\.color)).count == bases.count)
    }

    @Test("a configuration resolves ids case-insensitively and suggests near misses")
    func resolve() throws {
        #expect(try PolicyConfiguration.parse("LookM").id == "lookm")
        do { _ = try PolicyConfiguration.parse("lookn"); Issue.record("accepted lookn") } catch let e as PolicyError {
            #expect(e.message.contains("did you mean 'lookm'"))
        }
        do { _ = try PolicyConfiguration.parse("lookm,h2o"); Issue.record("accepted a list") } catch let e as PolicyError {
            #expect(e.message.contains("sweep"))
        }
    }

    @Test(
        "parameters are typed and range-checked by their declaration",
        arguments: [
            ("snapkv", "window", "-1"), ("snapkv", "window", "9223372036854775807"), ("pyramidkv", "window", "0"),
            ("adakv", "window", "-1"), ("snapkv", "kernel", "4"), ("adakv", "alpha", "1.5"), ("h2o", "score", "median"),
            ("knorm", "skip-layers", "0,x"), ("snapkv", "windw", "8"),
        ])
    func badParameters(_ id: String, _ name: String, _ value: String) {
        #expect(throws: PolicyError.self) { try PolicyConfiguration.parse(id, parameters: [name: value]) }
    }

    @Test("defaults fill every declared parameter; the params text keeps set values only")
    func defaults() throws {
        let c = try PolicyConfiguration.parse("snapkv", parameters: ["window": "16"])
        #expect(c.parameters.int("window") == 16 && c.parameters.int("kernel") == 7)
        #expect(c.parameters.text == "kernel=7;pooling=max;window=16")
        #expect(PolicyConfiguration("knorm").parameters.text.isEmpty)
        let m = try PolicyConfiguration.parse("h2o", merge: .pivotal)
        #expect(m.label == "h2o+pivotal" && m.base == "h2o" && m.mergeStrategy == .pivotal && m.merges)
        #expect(PolicyConfiguration("lookm").base == "text-prior" && PolicyConfiguration("lookm").mergeStrategy == .pivotal)
        #expect(PolicyConfiguration("pivot-merge").base == "h2o-sinks")
        #expect(throws: PolicyError.self) { try PolicyConfiguration.parse("lookm", merge: .pivotal) }
    }

    @Test("KeyDiff keeps the C keys least cosine-similar to the head's mean unit key")
    func keyDiff() throws {
        let trace = TestTrace()
        for budget in [BudgetSpec.tokens(5), .fraction(0.5)] {
            let ctx = try LayerContext(trace: trace, layer: 1, budget: budget)
            let d = try KeyDiff().decide(ctx)
            let k = try ctx.keys()
            for g in 0 ..< ctx.kvHeads {
                // Reference: plain loops over the formula.
                let rows = (0 ..< k.count).map { j in (0 ..< k.dim).map { k.values[k.offset(g, j) + $0] } }
                func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
                var anchor = [Double](repeating: 0, count: k.dim)
                for r in rows { for (i, x) in r.enumerated() { anchor[i] += x / norm(r) / Double(k.count) } }
                let score = rows.map { r in -zip(r, anchor).reduce(0) { $0 + $1.0 * $1.1 } / (norm(r) * norm(anchor)) }
                let expected = (0 ..< k.count).sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
                    .prefix(ctx.budget.nominal).sorted()
                #expect(d.heads[g].kept == Array(expected), "head \(g) \(budget)")
            }
        }
    }
}
