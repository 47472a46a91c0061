import Foundation
import KVPolicies
import Testing
@testable import KVSimulator

@Suite struct SafeSetTests {
    /// Rows of one setting: per layer values of each metric, the all-layers mean, and `actual` kept tokens of P = 100.
    static func setting(
        _ policy: String = "lookm", hh: Double, recent: Double, actual: Double,
        _ metrics: [String: [Double?]], trace: String = "t"
    ) -> [ResultRow] {
        var rows: [ResultRow] = []
        for (m, perLayer) in metrics.sorted(by: { $0.key < $1.key }) {
            func row(_ layer: Int?, _ v: Double?) -> ResultRow {
                ResultRow(
                    trace: trace, traceHash: "h-" + trace, configuration: PolicyConfiguration(policy), fidelity: "code",
                    budget: .ratios(heavy: hh, recent: recent), compressionPoint: 100, nominalTokens: Int(actual), actualTokens: actual,
                    metric: m, layer: layer, head: nil, image: nil, value: v, evalRows: .future, evalRowCount: 4,
                    note: v == nil ? "needs rows 129..<161" : nil)
            }
            for (l, v) in perLayer.enumerated() { rows.append(row(l, v)) }
            let finite = perLayer.compactMap { $0 }
            rows.append(row(nil, finite.count == perLayer.count ? finite.reduce(0, +) / Double(finite.count) : nil))
        }
        return rows
    }

    @Test func conditionsParse() throws {
        let a = try SafeCondition.parse("attention_recall>=0.95")
        #expect(a == SafeCondition(metric: "attention_recall", .atLeast, 0.95))
        #expect(try SafeCondition.parse(" output_error <= 0.1 ") == SafeCondition(metric: "output_error", .atMost, 0.1))
        #expect(try SafeCondition.parse("kept_ratio<0.3").comparison == .below)
        #expect(try SafeCondition.parse("topk_recall>0.5").comparison == .above)
        let img = try SafeCondition.parse("image_recall[1]>=0.9")
        #expect(img.metric == "image_recall" && img.image == 1 && img.metricLabel == "image_recall[1]")
        for bad in [
            "attention_recall", "attention_recall>=", ">=0.9", "attention_recall>=abc", "attention_recall>=nan",
            "attention recall>=0.9", "image_recall[x]>=0.5", "attention_recall=0.9",
        ] {
            #expect(throws: SimulatorError.self, "\(bad)") { try SafeCondition.parse(bad) }
        }
        #expect(a.holds(0.95) && !a.holds(0.9499) && !a.holds(nil) && !a.holds(.nan))
    }

    @Test func cheapestIsSmallestKeptRatioTiesToSmallerHH() {
        var rows: [ResultRow] = []
        rows += Self.setting(hh: 0.2, recent: 0.1, actual: 30, ["attention_recall": [0.97, 0.97]])
        rows += Self.setting(hh: 0.1, recent: 0.2, actual: 30, ["attention_recall": [0.96, 0.96]])  // same kept, smaller hh
        rows += Self.setting(hh: 0.05, recent: 0.05, actual: 10, ["attention_recall": [0.90, 0.90]])  // cheaper, not safe
        rows += Self.setting(hh: 0.3, recent: 0.3, actual: 60, ["attention_recall": [0.99, 0.99]])
        let set = SafeSet(rows, conditions: [SafeCondition(metric: "attention_recall", .atLeast, 0.95)], perLayer: false)
        #expect(set.groups.count == 1)
        let g = set.groups[0]
        #expect(g.settings.count == 4)
        #expect(g.settings.map(\.safe) == [true, true, false, true])
        let best = try! #require(g.cheapest.map { g.settings[$0] })
        #expect(best.row.hhRatio == 0.1 && best.row.recentRatio == 0.2 && best.keptRatio == 0.3)
        #expect(g.settings.filter(\.cheapest).count == 1)
        let lines = set.csv.split(separator: "\n").map(String.init)
        #expect(lines.count == 1 + 3)  // header + the three safe settings
        let header = lines[0].split(separator: ",").map(String.init)
        let cheapCol = header.firstIndex(of: "cheapest")!, hhCol = header.firstIndex(of: "hh_ratio")!
        let cheapRows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }.filter {
            $0[cheapCol] == "true"
        }
        #expect(cheapRows.count == 1 && cheapRows[0][hhCol] == "0.1")
        #expect(set.table.contains("hh_ratio=0.1 recent_ratio=0.2"))
    }

    @Test func perLayerNeedsEveryLayer() {
        // The mean passes (0.96) but layer 1 does not (0.93).
        let rows =
            Self.setting(hh: 0.1, recent: 0.1, actual: 20, ["attention_recall": [0.99, 0.93], "output_error": [0.05, 0.08]])
            + Self.setting(hh: 0.2, recent: 0.2, actual: 40, ["attention_recall": [0.97, 0.96], "output_error": [0.02, 0.03]])
        let conds = [SafeCondition(metric: "attention_recall", .atLeast, 0.95), SafeCondition(metric: "output_error", .atMost, 0.1)]
        let mean = SafeSet(rows, conditions: conds, perLayer: false)
        let strict = SafeSet(rows, conditions: conds, perLayer: true)
        #expect(mean.groups[0].settings.map(\.safe) == [true, true])
        #expect(mean.cheapest[0].setting?.row.hhRatio == 0.1)
        #expect(strict.groups[0].settings.map(\.safe) == [false, true])
        #expect(strict.cheapest[0].setting?.row.hhRatio == 0.2)
        #expect(strict.groups[0].settings[0].reason?.contains("layer 1") == true)
        // Worst layers: the smallest recall, the largest error.
        #expect(strict.groups[0].settings[0].worst[0] == 0.93 && strict.groups[0].settings[0].worst[1] == 0.08)
        let header = strict.csv.split(separator: "\n")[0]
        #expect(header.hasSuffix("attention_recall,worst_attention_recall,output_error,worst_output_error,cheapest,note"))
        #expect(!mean.csv.contains("worst_"))
    }

    @Test func noSettingIsSafeIsARow() {
        let rows =
            Self.setting("h2o", hh: 0.1, recent: 0.1, actual: 20, ["attention_recall": [0.5, 0.6]])
            + Self.setting("h2o", hh: 0.2, recent: 0.1, actual: 30, ["attention_recall": [nil, 0.7]])
            + Self.setting("lookm", hh: 0.1, recent: 0.1, actual: 20, ["attention_recall": [0.99, 0.99]])
        let set = SafeSet(rows, conditions: [SafeCondition(metric: "attention_recall", .atLeast, 0.95)], perLayer: false)
        #expect(set.groups.map(\.policy) == ["h2o", "lookm"])
        #expect(set.groups[0].cheapest == nil && set.groups[1].cheapest == 0)
        #expect(set.groups[0].settings[1].reason?.contains("needs rows 129..<161") == true)  // a missing value fails, with its note
        let lines = set.csv.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[1].hasPrefix("t,h2o,") && lines[1].contains("no setting is safe (2 tried") && lines[1].contains(",false,"))
        #expect(lines[2].hasPrefix("t,lookm,") && lines[2].contains(",true,"))
        #expect(set.table.contains("no setting is safe"))
    }

    @Test func groupsArePerTraceAndPolicy() {
        let rows =
            Self.setting(hh: 0.1, recent: 0.1, actual: 20, ["attention_recall": [0.99]], trace: "a")
            + Self.setting(hh: 0.1, recent: 0.1, actual: 50, ["attention_recall": [0.99]], trace: "b")
        let set = SafeSet(rows, conditions: [SafeCondition(metric: "attention_recall", .atLeast, 0.95)], perLayer: false)
        #expect(set.groups.map(\.trace) == ["a", "b"])
        #expect(set.groups.allSatisfy { $0.cheapest == 0 })
    }

    @Test func ratioGridLaysOutCellsAndVerdicts() {
        var rows: [ResultRow] = []
        for (x, y, a, r) in [(0.1, 0.1, 10.0, 0.8), (0.2, 0.1, 20, 0.9), (0.1, 0.2, 20, 0.96), (0.2, 0.2, 30, 0.99)] {
            rows += Self.setting(hh: x, recent: y, actual: a, ["attention_recall": [r]])
        }
        let set = SafeSet(rows, conditions: [SafeCondition(metric: "attention_recall", .atLeast, 0.95)], perLayer: false)
        let grids = RatioGrid.grids(rows, policy: "lookm", metric: "attention_recall", safe: set)
        #expect(grids.count == 1)
        let g = grids[0]
        #expect(g.hh == [0.1, 0.2] && g.recent == [0.1, 0.2])
        #expect(g.values == [0.8, 0.9, 0.96, 0.99])  // row 0 = recent 0.1
        #expect(g.kept == [0.1, 0.2, 0.2, 0.3])
        #expect(g.safe == [false, false, true, true])
        #expect(g.cheapest == RatioGrid.Cell(row: 1, col: 0))
        #expect(g.notes == [nil, nil, nil, nil])
        #expect(RatioGrid.grids(rows, policy: "h2o", metric: "attention_recall").isEmpty)
        let other = RatioGrid.grids(rows, policy: "lookm", metric: "output_error")[0]
        #expect(other.values.allSatisfy { $0 == nil } && other.notes.allSatisfy { $0 == "output_error not in the results" })
    }
}
