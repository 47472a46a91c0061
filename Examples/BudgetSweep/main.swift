// BudgetSweep: how much of the attention do H2O, SnapKV and LOOK-M still see at each budget?
//
//     swift run BudgetSweep [output-folder] [trace]
//
// For each policy and budget, every layer is compressed once at the end of prefill (P). The
// attention recall of a layer is the share of the evaluation rows' attention mass that falls on
// positions still in the cache (docs/metrics.md): kept prompt positions plus the generated ones. The
// evaluation rows are the recorded rows ≥ P (true future queries) when the trace has them, else
// the last 32 prefill rows (a proxy: those rows also fed the scores).

import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVSimulator
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

        // SnapKV scores the prompt with its last `window` prefill rows (32 by default). A window
        // trace records fewer; use the ones it has.
        let window = min(32, P - max(rows.lowerBound, 0))
        let metrics = try MetricCatalogue.select(["attention_recall", "kept_ratio"])

        // The simulator replays each policy at each budget on every layer and measures the recall
        // exactly as `kvscope sweep` does; the example only reads the all-layers values.
        var curves: [Curve] = []
        var proxy = false
        for id in policies {
            let configuration = try PolicyConfiguration.parse(id, parameters: id == "snapkv" ? ["window": String(window)] : [:])
            let policy = try configuration.make()
            var x: [Double] = [], y: [Double] = []
            for b in budgets {
                let result = try Replay(trace: trace).runSync(policy, budget: .fraction(b, recentShare: 0.5), metrics: metrics)
                proxy = result.evalRows == .proxy
                x.append(result.value("kept_ratio") ?? .nan)
                y.append(result.value("attention_recall") ?? .nan)
            }
            let d = configuration.declaration!
            curves.append(Curve(policy: id, style: .declared(color: d.color, merge: d.composition?.merge.rawValue), x: x, y: y))
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
}

do {
    try BudgetSweepExample.run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("BudgetSweep: \(error)\n".utf8))
    exit(1)
}
