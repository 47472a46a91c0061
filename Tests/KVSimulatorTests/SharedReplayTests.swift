import Foundation
import KVPolicies
import KVTestSupport
import KVTrace
import Testing
@testable import KVSimulator

/// Runs of one layer that decide alike share one replay (`LayerEngine`): their rows must be exactly
/// those of each run alone, with the budget-dependent columns (nominal tokens) their own.
@Suite struct SharedReplayTests {
    static let trace = TestTrace(.init(layers: 2, heads: 4, kvHeads: 2, dim: 16, prefill: 120, future: 6, seed: 3))

    @Test func alikeDecisionsShareAReplayAndKeepTheirOwnRows() throws {
        // `full` decides the same at every budget; h2o twice at 0.3 too; h2o at 0.1 differs.
        let combos = [
            Combination(policy: "full", budget: .fraction(0.1)), Combination(policy: "full", budget: .fraction(0.3)),
            Combination(policy: "h2o", budget: .fraction(0.3)), Combination(policy: "h2o", budget: .fraction(0.3)),
            Combination(policy: "h2o", budget: .fraction(0.1)), Combination(policy: "lookm", budget: .fraction(0.3)),
        ]
        let runs = try combos.map { try PlannedRun($0) }
        for layer in Self.trace.info.recordedLayers {
            let together = try LayerEngine.run(
                trace: Self.trace, layer: layer, runs: runs, metrics: MetricCatalogue.all, settings: EvaluationSettings(perHead: true))
            let alone = try runs.flatMap {
                try LayerEngine.run(
                    trace: Self.trace, layer: layer, runs: [$0], metrics: MetricCatalogue.all, settings: EvaluationSettings(perHead: true))
            }
            #expect(together.count == alone.count && together.count > 100)
            for (a, b) in zip(together, alone) {
                #expect(a == b, "\(a.policy) \(a.budgetSpec) \(a.metric)")
            }
            // The two full runs report their own nominal budgets.
            let nominal = Set(together.filter { $0.policy == "full" }.map(\.nominalTokens))
            #expect(nominal.count == 2)
        }
    }
}
