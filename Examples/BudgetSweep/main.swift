// BudgetSweep: how much of the attention do H2O, SnapKV and LOOK-M still see at each budget?
//
//     swift run BudgetSweep [output-folder] [trace]
//
// For each policy and budget, every layer is compressed once at the end of prefill (P). The
// attention recall of a layer is the share of the evaluation rows' attention mass that falls on
// positions still in the cache (METRICS.md): kept prompt positions plus the generated ones. The
// evaluation rows are the recorded rows ≥ P (true future queries) when the trace has them, else
// the last 32 prefill rows (a proxy: those rows also fed the scores).

import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVTrace

enum BudgetSweepExample {
    static let policies = ["h2o", "snapkv", "lookm"]
    static let budgets = [0.05, 0.1, 0.2, 0.3, 0.5]

    static func run(_ args: [String]) throws {
        let outDir = URL(fileURLWithPath: args.count > 1 ? args[1] : "Output/examples")
        let tracePath = args.count > 2 ? args[2] : "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let trace = try TraceLoader.open(tracePath)
        let info = trace.info
        let P = info.shape.prefillLen, rows = info.shape.queryRows

        // The evaluation rows.
        let future = max(P, rows.lowerBound) ..< rows.upperBound
        let evalRows = future.isEmpty ? max(rows.lowerBound, P - 32) ..< P : future
        let proxy = future.isEmpty
        print("\(info.name): P = \(P), evaluation rows \(evalRows.lowerBound)..<\(evalRows.upperBound)\(proxy ? " (proxy)" : "")")

        // recall[policy][budget] summed over layers, and the kept ratio C_act / P.
        var recall = [[Double]](repeating: [Double](repeating: 0, count: budgets.count), count: policies.count)
        var keptRatio = recall
        // SnapKV scores the prompt with its last `window` prefill rows (32 by default). A window
        // trace records fewer; use the ones it has.
        let window = min(32, P - max(rows.lowerBound, 0))
        let made = try policies.map { try PolicyRegistry.make($0, parameters: $0 == "snapkv" ? ["window": String(window)] : [:]) }
        for layer in info.recordedLayers {
            // Read the layer once; re-use it for every policy and budget.
            let context = try LayerContext(trace: trace, layer: layer, budget: .fraction(budgets[0], recentShare: 0.5))
            let attention = try context.rows(evalRows)
            for (p, policy) in made.enumerated() {
                for (b, budget) in budgets.enumerated() {
                    let decision = try policy.decide(context.with(budget: .fraction(budget, recentShare: 0.5)))
                    recall[p][b] += layerRecall(decision, attention: attention, info: info)
                    keptRatio[p][b] += Double(decision.actual.reduce(0, +)) / Double(decision.heads.count * P)
                }
            }
        }

        // Average over layers (uniform weights) and draw one line per policy.
        let L = Double(info.recordedLayers.count)
        var curves: [Curve] = []
        for (p, id) in policies.enumerated() {
            let x = keptRatio[p].map { $0 / L }, y = recall[p].map { $0 / L }
            curves.append(Curve(policy: id, x: x, y: y))
            print(id.padding(toLength: 8, withPad: " ", startingAt: 0),
                  zip(budgets, y).map { String(format: "b=%.2f: %.3f", $0, $1) }.joined(separator: "  "))
        }
        let figure = CurvesFigure(
            curves: curves, metric: "attention_recall", title: "\(info.name): attention recall vs budget",
            subtitle: ["mean over layers, query heads and evaluation rows " + (proxy ? "(proxy: last prefill rows)" : "(recorded rows ≥ P)")
                + "; snapkv window \(window)" + (info.syntheticImageTokens ? "; pseudo-image tokens" : "")],
            yRange: 0 ... 1, reference: 1, size: Size(580, 330))
        let url = outDir.appendingPathComponent("budget-sweep-recall.png")
        try render(figure.build(), to: url, format: .png(scale: 2))
        print("wrote \(url.path)")
    }

    /// Mean over query heads and evaluation rows of
    /// Σ_{j kept by the head's KV head, or P ≤ j ≤ i} A[h,i,j] / Σ_{j ≤ i} A[h,i,j].
    static func layerRecall(_ d: LayerDecision, attention a: RowBlock, info: TraceInfo) -> Double {
        let P = d.prefill
        let keptMasks: [[Bool]] = d.heads.map { head in
            var mask = [Bool](repeating: false, count: P)
            for j in head.kept where j < P { mask[j] = true }
            return mask
        }
        var total = 0.0, n = 0
        for h in 0 ..< a.heads {
            let mask = keptMasks[info.shape.kvHeadOfQueryHead[h]]
            for (r, i) in a.positions.enumerated() {
                var seen = 0.0, all = 0.0
                for j in 0 ... min(i, a.columns - 1) {
                    let w = a[h, r, j]
                    all += w
                    if j >= P || mask[j] { seen += w }
                }
                if all > 0 { total += seen / all; n += 1 }
            }
        }
        return n > 0 ? total / Double(n) : 1
    }
}

do {
    try BudgetSweepExample.run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("BudgetSweep: \(error)\n".utf8))
    exit(1)
}
