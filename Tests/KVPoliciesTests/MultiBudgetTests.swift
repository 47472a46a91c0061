import Foundation
import Testing
import KVTrace
@testable import KVPolicies

/// `decisions(_:budgets:)` (scores computed once per layer where they do not depend on the budget)
/// must give exactly the decisions, and errors, of one `decide` per budget.
struct MultiBudgetTests {
    static let traces: [(String, TestTrace)] =
        PropertyTests.traces + [
            ("recomputed", TestTrace(.init(layers: 3, prefill: 44, future: 6, seed: 3, withAttention: false))),
            ("no-keys", TestTrace(.init(layers: 3, seed: 5, withKeys: false))),
        ]
    /// Early exits, SnapKV's clamped and unclamped windows, `r = 0`, tokens and ratios.
    static let budgets: [BudgetSpec] =
        PropertyTests.budgets + [
            .fraction(0.8), .fraction(0.9, recentShare: 0.1), .fraction(0.3, recentShare: 0),
            .tokens(40), .ratios(heavy: 0.6, recent: 0.2), .fraction(0.05),
        ]

    static func same(_ a: Result<LayerDecision, any Error>, _ b: Result<LayerDecision, any Error>) -> Bool {
        switch (a, b) {
        case let (.success(x), .success(y)): x == y
        case let (.failure(x), .failure(y)): String(describing: x) == String(describing: y)
        default: false
        }
    }

    @Test(
        "multi-budget decisions equal per-budget decide for every registry policy",
        arguments: PropertyTests.policies + ["text-prior+average", "pyramidkv+pivotal", "tova+weighted"], [Fidelity.code, .intended])
    func equalsPerBudget(_ id: String, _ fidelity: Fidelity) throws {
        let policy = try PropertyTests.make(id)
        let wrapped = AnyCachePolicy(policy)
        for (name, trace) in Self.traces {
            for at in [nil, trace.info.shape.prefillLen - 13] as [Int?] {
                for layer in trace.info.recordedLayers {
                    let ctx = try LayerContext(
                        trace: trace, layer: layer, budget: .fraction(0.5), options: PolicyOptions(fidelity: fidelity),
                        compressionPoint: at)
                    let one = Self.budgets.map { b in Result { try policy.decide(ctx.with(budget: b)) } }
                    let many = policy.decisions(ctx, budgets: Self.budgets)
                    let erased = wrapped.decisions(ctx, budgets: Self.budgets)
                    #expect(many.count == Self.budgets.count && erased.count == Self.budgets.count)
                    for (i, b) in Self.budgets.enumerated() {
                        let label = "\(id) \(name) P=\(ctx.compressionPoint) layer \(layer) \(fidelity) \(b)"
                        #expect(Self.same(one[i], many[i]), "\(label)")
                        #expect(Self.same(one[i], erased[i]), "\(label) (AnyCachePolicy)")
                    }
                    // The throwing form returns the same decisions when none fails.
                    if one.allSatisfy({ if case .success = $0 { true } else { false } }) {
                        #expect(try policy.decide(ctx, budgets: Self.budgets) == one.map { try $0.get() })
                    }
                }
            }
        }
    }

    @Test("scores are computed once per layer and shared by every budget and policy with the same score key")
    func scoresOnce() throws {
        final class Counting: ScoringPolicy, @unchecked Sendable {
            var calls = 0
            let key: String
            init(key: String) { self.key = key }
            var id: String { "counting" }
            var requirements: Requirements { .colsum }
            var scoreKey: AnyHashable { key }
            func scores(_ context: LayerContext) throws -> ScoreMatrix {
                calls += 1
                return try H2O().scores(context)
            }
        }
        let trace = TestTrace()
        let budgets: [BudgetSpec] = [.fraction(0.1), .fraction(0.3), .fraction(0.5), .fraction(1)]
        let a = Counting(key: "a"), alsoA = Counting(key: "a"), b = Counting(key: "b")
        // Without a work cache every decision computes its scores.
        let plain = try LayerContext(trace: trace, layer: 1, budget: .fraction(0.5))
        let fresh = budgets.map { try? a.decide(plain.with(budget: $0)) }
        #expect(a.calls == 3)  // fraction 1 exits early without scores
        // With one cache for the layer: once for key "a" (shared by two policy values), once for "b".
        a.calls = 0
        let ctx = try LayerContext(trace: trace, layer: 1, budget: .fraction(0.5), cache: WorkCache())
        let shared = budgets.map { try? a.decide(ctx.with(budget: $0)) }
        let other = budgets.map { try? alsoA.decide(ctx.with(budget: $0)) }
        let third = budgets.map { try? b.decide(ctx.with(budget: $0)) }
        #expect(shared == fresh && other == fresh && third == fresh)
        #expect(a.calls == 1 && alsoA.calls == 0 && b.calls == 1)
        // A second layer of the same cache computes afresh.
        let next = try LayerContext(trace: trace, layer: 2, budget: .fraction(0.5), cache: ctx.cache)
        _ = try a.decide(next)
        #expect(a.calls == 2)
    }

    @Test("merge assignments are shared by every merge strategy at the same kept set")
    func assignmentsShared() throws {
        let trace = TestTrace()
        let cache = WorkCache()
        let ctx = try LayerContext(trace: trace, layer: 1, budget: .fraction(0.3), cache: cache)
        let pivotal = try LookM().decide(ctx)
        let before = cache.count
        let average = try LookMAverage().decide(ctx)
        let weighted = try LookMWeighted().decide(ctx)
        #expect(cache.count == before)  // no new scores, no new assignments
        #expect(pivotal.heads.map(\.kept) == average.heads.map(\.kept) && average.heads.map(\.kept) == weighted.heads.map(\.kept))
        // And the shared work gives exactly what a fresh computation gives.
        let plain = try LayerContext(trace: trace, layer: 1, budget: .fraction(0.3))
        #expect(try LookMWeighted().decide(plain) == weighted)
    }
}
