// QuickStart: load a trace, replay LOOK-M at a 20 % budget, print what each layer keeps and draw
// the retention map.
//
//     swift run QuickStart [output-folder] [trace]
//
// Defaults: the shipped SmolLM2 trace and Output/examples/.

import Foundation
import KVCairo
import KVPlot
import KVPolicies
import KVTrace

enum QuickStartExample {
    static func run(_ args: [String]) throws {
        let outDir = URL(fileURLWithPath: args.count > 1 ? args[1] : "Output/examples")
        let tracePath = args.count > 2 ? args[2] : "Examples/traces/smollm2-pseudoimg2x64-gen16-w24"
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)

        // 1. Open the trace. Only the metadata is read now; layers are mapped one at a time.
        let trace = try TraceLoader.open(tracePath)
        let info = trace.info
        let P = info.shape.prefillLen, T = info.shape.seqLen
        print("\(info.name): \(info.shape.layers) layers, P = \(P), T = \(T), \(info.images.count) image(s)")

        // 2. The policy and the budget: LOOK-M keeps C = int(0.2 · P) tokens per KV head.
        let policy = try PolicyRegistry.make("lookm")
        let budget = BudgetSpec.fraction(0.2, recentShare: 0.5)

        // 3. Decide once per layer, at the end of prefill, and print the kept counts.
        print("policy \(policy.id), budget 0.2: C = int(0.2 · P) = \(budget.resolve(P).nominal)")
        print("layer  nominal  kept (per KV head)  merges")
        var decisions: [LayerDecision] = []
        for layer in info.recordedLayers {
            let context = try LayerContext(trace: trace, layer: layer, budget: budget)
            let decision = try policy.decide(context)
            decisions.append(decision)
            let kept = decision.actual.map(String.init).joined(separator: ",")
            print(pad(layer, 5), pad(decision.nominal, 7), kept.padding(toLength: 18, withPad: " ", startingAt: 0), pad(decision.mergeCount, 6), separator: "  ")
        }

        // 4. The retention map: one row per layer, one column per position; a cell is the
        //    fraction of KV heads keeping that position. Generated positions (≥ P) always stay.
        var kept = [Double](repeating: 1, count: decisions.count * T)
        for (row, d) in decisions.enumerated() {
            for j in 0 ..< P {
                let heads = d.heads.filter { $0.kept.contains(j) }.count
                kept[row * T + j] = Double(heads) / Double(d.heads.count)
            }
        }
        let merged = Set(decisions.flatMap { $0.heads.flatMap { $0.merges.map(\.source) } }).sorted()
        let meanKept = Double(decisions.flatMap(\.actual).reduce(0, +)) / Double(decisions.flatMap(\.actual).count)
        let panel = RetentionPanel(title: "lookm   C = \(decisions[0].nominal)   C_act = \(String(format: "%.1f", meanKept))",
                                   kept: kept, rows: decisions.count, merged: merged)
        let figure = RetentionFigure(
            panels: [panel], tokens: T, prefillLength: P, bands: bands(info),
            title: info.name + (info.syntheticImageTokens ? " (pseudo-images)" : "") + ": LOOK-M at budget 0.2",
            subtitle: ["cells: fraction of KV heads keeping each position; orange ticks: merged into a kept slot"])

        // 5. Render. The extension picks the format; the file is written atomically.
        let url = outDir.appendingPathComponent("quickstart-retention.png")
        try render(figure.build(), to: url, format: .png(scale: 2))
        print("wrote \(url.path)")
    }

    /// `n` right-aligned in `width` characters.
    static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }

    /// Modality strips: text and image runs of the prompt, then the generated positions.
    static func bands(_ info: TraceInfo) -> [ModalityBand] {
        var out: [ModalityBand] = []
        for run in info.modalityRuns {
            let r = run.positions.clamped(to: 0 ..< info.shape.prefillLen)
            if r.isEmpty { continue }
            out.append(ModalityBand(r, kind: run.modality == .text ? .text : .image,
                                    isPseudo: run.modality != .text && info.syntheticImageTokens))
        }
        out.append(ModalityBand(info.shape.prefillLen ..< info.shape.seqLen, kind: .generated, label: "gen"))
        return out
    }
}

do {
    try QuickStartExample.run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("QuickStart: \(error)\n".utf8))
    exit(1)
}
