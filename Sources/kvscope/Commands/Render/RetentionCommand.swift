import ArgumentParser
import Foundation
import KVPlot
import KVPolicies
import KVTrace

/// `kvscope render retention`: what each policy keeps, per layer and position.
struct RetentionCommand: ExampledCommand {
    static let examples: [HelpExample] = [
        HelpExample("render retention Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies h2o,snapkv,lookm --budget 0.2"),
        HelpExample(
            "render retention Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --policies lookm --hh-ratio 0.1 --recent-ratio 0.1 -o Output/retention-ratios.png",
            note: "at the setting of simulate --hh-ratio 0.1 --recent-ratio 0.1"),
    ]

    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Retention map: per policy, layers × positions coloured by the fraction of KV heads that keep each position.",
        discussion: """
            Each policy decides once per layer at the end of prefill (P). A cell is the fraction of the \
            layer's KV heads that keep the position (cividis, linear 0–1); positions ≥ P (generated) are \
            always present and count as kept. Orange ticks above a panel mark positions merged into a kept \
            slot in at least one layer and head. Panel titles give the nominal C and the mean actual C_act.
            """ + "\n\n" + HelpExample.section(examples)
    )

    @OptionGroup var trace: TraceOptions
    @OptionGroup var policy: RenderPolicyOptions
    @OptionGroup var layers: LayerOptions
    @OptionGroup var output: RenderOutputOptions

    func validate() throws {
        _ = try policy.ids(required: true)
    }

    func run() throws {
        let source = try trace.open()
        let info = source.info
        let ids = try policy.ids(required: true)
        let chosen = try layers.chosen(info)
        let runs = try RenderSupport.decide(ids, source: source, layers: chosen, policy: policy)
        let figure = Self.figure(
            runs: runs, info: info, layers: chosen, budget: policy.spec, fidelity: policy.fidelity,
            title: output.title, notes: policy.paramNote.map { [$0] } ?? [])
        try output.write(figure, defaultName: "retention-\(info.name)-\(policy.spec.fileTag)")
    }

    /// One panel per policy: `[layers × T]` kept fractions over KV heads.
    static func panel(_ run: PolicyRun, T: Int, fidelity: Fidelity) -> RetentionPanel {
        var kept = [Double](repeating: 1, count: run.decisions.count * T)
        var merged = Set<Int>()
        for (r, d) in run.decisions.enumerated() {
            let P = d.prefill
            let G = Double(max(d.heads.count, 1))
            var count = [Int](repeating: 0, count: P)
            for h in d.heads {
                for j in h.kept where j < P { count[j] += 1 }
                for m in h.merges { merged.insert(m.source) }
            }
            for j in 0 ..< min(P, T) { kept[r * T + j] = Double(count[j]) / G }
        }
        return RetentionPanel(title: run.label(fidelity: fidelity), kept: kept, rows: run.decisions.count, merged: merged.sorted())
    }

    static func figure(
        runs: [PolicyRun], info: TraceInfo, layers: [Int], budget: BudgetSpec, fidelity: Fidelity,
        title: (String) -> String, notes: [String] = []
    ) -> Figure {
        let T = info.shape.seqLen, P = info.shape.prefillLen
        var sub = ["cells: fraction of the \(info.shape.kvHeads) KV heads keeping each position; positions ≥ P are generated (always kept)"]
        sub.append(
            "layers \(RenderSupport.compactList(layers)) (row 0 = layer \(layers.first ?? 0)); orange ticks: merged into a kept slot somewhere"
        )
        sub += notes
        if let note = RenderSupport.pseudoNote(info) { sub.append(note) }
        let panels = runs.map { panel($0, T: T, fidelity: fidelity) }
        let fig = RetentionFigure(
            panels: panels, tokens: T, prefillLength: P, bands: RenderSupport.bands(info),
            title: title("\(RenderSupport.traceTitle(info)): which positions does each policy keep at budget \(budget.figureText)?"),
            subtitle: sub,
            rowLabel: "layer")
        return fig.build()
    }
}
